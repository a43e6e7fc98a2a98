"""The peers benchmark's Redis part (see peers.py): our fraud DAG, TORCH and ONNX, and plain GET
of the same 1 KB on the same server, under redis-benchmark, with the CPU each request cost."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import redis

import _bench_common as common
from _peers_common import (CLIENTS, MAX_REQUESTS, QUIET, REF, REF_STRING, REF_TENSOR, S, SYSTEMS,
                           TX, Point, check_score)


def dag_command(model_key: str) -> list[bytes]:
    return common.dag_loop_args(model_key, TX.tobytes())


def checked_resp_run(client: redis.Redis, server: common.Server, clients: int, requests: int,
                     command: Sequence[bytes], model_key: str | None) -> dict[str, Any]:
    """One checked redis-benchmark run, with the CPU per request of the server's main thread,
    its other threads and redis-benchmark, and for a model the worker's time per call."""
    before = common.run_info(client, model_key) if model_key else None
    main0, other0 = common.server_cpu_s(server.proc.pid)
    load0 = common.reaped_children_cpu_s()
    sample = common.checked_benchmark(client, server.port, clients, requests, command,
                                      timeout_s=120)
    main1, other1 = common.server_cpu_s(server.proc.pid)
    cpu = {"redis main thread": main1 - main0, "redis other threads": other1 - other0,
           "redis-benchmark": common.reaped_children_cpu_s() - load0}
    run: dict[str, Any] = {**asdict(sample), "requests": requests,
                           "cpu_us_per_request": {k: v * 1e6 / requests for k, v in cpu.items()}}
    if model_key and before is not None:
        after = common.run_info(client, model_key)
        if after.calls - before.calls != requests or after.errors != before.errors:
            raise RuntimeError(f"{model_key}: AI.INFO went from {before} to {after} "
                               f"for {requests} requests")
        run["worker_us_per_call"] = (after.duration_us - before.duration_us) / requests
    return run


def resp_phase(threads: int) -> tuple[list[Point], dict[str, str]]:
    """GET and both DAGs on a fresh server with THREADS_PER_QUEUE `threads`."""
    suffix = f"tpq{threads}"
    with common.running_server(("THREADS_PER_QUEUE", str(threads))) as server:
        client = server.client()
        keys = {"TORCH": "fraud", "ONNX": "fraud_onnx"}
        common.store_fraud_models(client, keys)
        assert client.execute_command("AI.TENSORSET", REF_TENSOR, "FLOAT", 1,
                                      common.REF_FEATURES, "BLOB", REF.tobytes()) == b"OK"
        assert client.set(REF_STRING, REF.tobytes())
        commands = {f"ours_torch_{suffix}": (dag_command("fraud"), "fraud"),
                    f"ours_onnx_{suffix}": (dag_command("fraud_onnx"), "fraud_onnx"),
                    f"get_{suffix}": ([b"GET", REF_STRING.encode()], None)}
        for system, (command, _) in commands.items():
            reply = client.execute_command(*command)
            if system.startswith("ours"):
                assert reply[:2] == [b"OK", b"OK"], reply
                check_score(system, np.frombuffer(reply[2], dtype=np.float32))
            else:
                assert reply == REF.tobytes(), "GET did not return the reference bytes"
        env = common.environment(client)
        print(f"THREADS_PER_QUEUE {threads}: redis-server {env['redis_version']} on "
              f"127.0.0.1:{server.port}", flush=True)
        # Calibrate each command's request count to about RUN_SECONDS per run (also warms up).
        counts: dict[tuple[str, int], int] = {}
        for system, (command, model_key) in commands.items():
            for clients in CLIENTS:
                probe = checked_resp_run(client, server, clients, 3000, command, model_key)
                counts[(system, clients)] = int(min(MAX_REQUESTS,
                                                    max(3000, probe["rps"] * S.run_seconds)))
        runs: dict[tuple[str, int], list[dict[str, Any]]] = {k: [] for k in counts}
        order = list(commands)
        for repeat in range(S.repeats):
            for clients in CLIENTS:
                rotated = order[repeat % len(order):] + order[:repeat % len(order)]
                for system in rotated:
                    command, model_key = commands[system]
                    runs[(system, clients)].append(QUIET.run(
                        f"{system} c={clients}",
                        lambda: checked_resp_run(client, server, clients,
                                                 counts[(system, clients)], command, model_key)))
                print(f"  repeat {repeat + 1}/{S.repeats} c={clients:<2} " + "  ".join(
                    f"{s} {runs[(s, clients)][-1]['rps']:>9,.0f}" for s in order), flush=True)
        client.close()
    points = [Point(system=s, label=SYSTEMS[s][0], clients=c,
                    rps=statistics.median(r["rps"] for r in runs[(s, c)]),
                    p50_ms=statistics.median(r["p50_ms"] for r in runs[(s, c)]),
                    p99_ms=statistics.median(r["p99_ms"] for r in runs[(s, c)]),
                    requests=counts[(s, c)], runs=runs[(s, c)],
                    worker_us_per_call=statistics.median(r["worker_us_per_call"]
                                                         for r in runs[(s, c)])
                    if s.startswith("ours") else None,
                    cpu_us_per_request={k: statistics.median(r["cpu_us_per_request"][k]
                                                             for r in runs[(s, c)])
                                        for k in runs[(s, c)][0]["cpu_us_per_request"]})
              for s in commands for c in CLIENTS]
    return points, env
