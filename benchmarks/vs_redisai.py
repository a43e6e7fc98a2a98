"""redisai_py next to the original RedisAI 1.2.7, side by side in one run (fraud MLP).

What it measures
    Two redis-servers run at the same time on this machine, both with THREADS_PER_QUEUE 1: one
    with our module, one with the original RedisAI 1.2.7 (a build of it that REDISAI_PEER_DIR
    points at: the folder with redisai.so and backends/). Each gets the fraud MLP of
    tests/model_builders.py as TorchScript (``fraud``) and as ONNX (``fraud_onnx``), the tensors
    ``tx`` 1x30 and ``ref`` 1x256, and ``ref_bytes``, the same 1 KB as a string.

    Throughput: ``redis-benchmark -c 16 -P 1`` of

    * ``GET ref_bytes`` (plain Redis on the same server: the yardstick)
    * ``AI.MODELEXECUTE fraud_onnx INPUTS 2 tx ref OUTPUTS 1 score`` and the same for ``fraud``
    * the fraud loop as one command, for each model:
      ``AI.DAGEXECUTE LOAD 1 ref |> AI.TENSORSET tx FLOAT 1 30 BLOB <120 bytes>
      |> AI.MODELEXECUTE <model> INPUTS 2 tx ref OUTPUTS 1 score |> AI.TENSORGET score BLOB``

    Each command runs on both servers back to back (which goes first alternates), the commands'
    order rotating between REPEATS repeats; each run is sized to about RUN_SECONDS. A command's
    rate is given as a ratio of GET's on its own server in the same repeat, and ours / original
    as the median of the per-repeat ratios of the two servers' rates. After every run the
    server must show exactly the requests sent, none failed (commandstats), and AI.INFO must
    count a model run for each with no error.

    Where the CPU goes, per request, for every run: the server's main thread and all its
    threads (/proc), its worker (INFO's ai_queue_CPU_bthread_n1_used_cpu_total, both modules
    report it), the rest of its threads (backend thread pools), and redis-benchmark. From those
    and the run's length: how busy the main thread and the worker were, and how full the
    machine's cores were, which says what limits the figure. The worker's time per call
    (AI.INFO) is set against each backend called back to back in this process (the floor).

    Single-client latency: one redis-py connection to each server, no pipelining; every
    iteration times PING, MODELEXECUTE ONNX and MODELEXECUTE TORCH on both servers, the six in a
    rotating order. In-server time = p50(EXECUTE) - p50(PING) on the same server; AI.INFO
    (reset after the warm-up) splits it into the worker's time per call and the rest (thread
    hand-offs, parsing, output key, reply).

    The speed goals of issue 15 for ours: every throughput figure >= 1.15x the original's, and
    single-client in-server time <= 0.65x the original's, for both backends.

    Batching across clients: the same DAG loop on models stored with BATCHSIZE 16, at 32
    clients, against GET at 32 clients on the same server (issue 15: ours >= 0.65x GET).

How to run
    REDISAI_PEER_DIR=/tmp/redisai-peer/install .venv/bin/python benchmarks/vs_redisai.py [--quick]

    REDISAI_PEER_DIR is what the peer build script (shared/peer/build_redisai_peer.sh beside the
    project, not part of it) prints last; nothing of RedisAI is in this repository. Without
    REDISAI_PEER_DIR the script says how to build the peer and exits 0 (so `make bench` passes
    it by). It starts both redis-servers on free loopback ports and stops them by PID. Results
    go to benchmarks/results/vs_redisai.{md,json,png}. It takes about 2 minutes.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import redis

import _bench_common as common
from model_overhead import hot_loop, onnx_raw_call, torch_raw_call

NAME = "vs_redisai"
PEER_ENV = "REDISAI_PEER_DIR"
PEER_FILES = ("redisai.so", "backends/redisai_torch/redisai_torch.so",
              "backends/redisai_onnxruntime/redisai_onnxruntime.so")
CLIENTS = 16
THREADS_PER_QUEUE = 1
REPEATS = 3
RUN_SECONDS = 2.5
PROBE_REQUESTS = 3000
MAX_REQUESTS = 400_000
LATENCY_CALLS = 4000
LATENCY_WARMUP = 400
RAW_CALLS = 3000
RATE_GOAL = 1.15       # ours / original, every throughput figure
LATENCY_GOAL = 0.65    # ours / original, in-server single-client time
SATURATED = 0.85       # a thread busier than this share of one core limits the figure
MODEL_KEYS = {"TORCH": "fraud", "ONNX": "fraud_onnx"}
BATCHED_KEYS = {"TORCH": "fraud_b16", "ONNX": "fraud_onnx_b16"}
BATCH_SIZE = 16
BATCH_CLIENTS = 32
BATCH_REQUESTS = 60_000
BATCH_GOAL = 0.65      # ours x GET, the fraud DAG loop with BATCHSIZE 16 at 32 clients
REF_STRING = "ref_bytes"
WORKER_FIELD = "ai_queue_CPU_bthread_n1_used_cpu_total"
SIDES = ("ours", "original")
LABELS = ("GET", "MODELEXECUTE ONNX", "MODELEXECUTE TORCH", "DAG loop ONNX", "DAG loop TORCH")
MODEL_OF = {"MODELEXECUTE ONNX": "fraud_onnx", "MODELEXECUTE TORCH": "fraud",
            "DAG loop ONNX": "fraud_onnx", "DAG loop TORCH": "fraud"}
QUIET = common.QuietRetry(max_tries=2, budget=8, wait_s=10.0)

TX = common.nul_free_transaction()
_, REF = common.fraud_inputs()
EXPECTED = common.model_builders.mlp_reference(common.model_builders.mlp_weights(), TX, REF)


def commands() -> dict[str, list[bytes]]:
    return {"GET": [b"GET", REF_STRING.encode()],
            "MODELEXECUTE ONNX": [a.encode() for a in common.execute_args("fraud_onnx")],
            "MODELEXECUTE TORCH": [a.encode() for a in common.execute_args("fraud")],
            "DAG loop ONNX": common.dag_loop_args("fraud_onnx", TX.tobytes()),
            "DAG loop TORCH": common.dag_loop_args("fraud", TX.tobytes())}


# --------------------------------------------------------------------------- the two servers


@dataclass
class Side:
    """One of the two servers, ready to measure."""

    name: str
    server: common.Server
    client: redis.Redis
    module: Path
    info: dict[str, str] = field(default_factory=dict)

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far: main thread, whole process, worker thread."""
        main, others = common.server_cpu_s(self.server.proc.pid)
        worker = float(self.client.info("ai_cpu")[WORKER_FIELD])
        return {"main": main, "process": main + others, "worker": worker}


def peer_dir() -> Path | None:
    value = os.environ.get(PEER_ENV, "").strip()
    return Path(value).expanduser().resolve() if value else None


def skip_note() -> str:
    return (f"{NAME}: skipped, {PEER_ENV} is not set. It names a build of the original RedisAI "
            "1.2.7 (the folder with redisai.so and backends/). Build one outside the project with "
            "the steering folder's peer/build_redisai_peer.sh (its header says what it needs: "
            "bare git mirrors of RedisAI/RedisAI, RedisAI/dlpack and yalue/onnxruntime_go, and "
            "the torch CPU wheel), e.g.\n"
            "  REDISAI_GIT_DIR=... DLPACK_GIT_DIR=... ORTGO_GIT_DIR=... WORK=/tmp/redisai-peer "
            "bash ../shared/peer/build_redisai_peer.sh\n"
            f"then run: {PEER_ENV}=/tmp/redisai-peer/install .venv/bin/python benchmarks/{NAME}.py")


def prepare(side: Side) -> None:
    """Backends, models, tensors and the GET string; every command's answer checked."""
    client = side.client
    if side.name == "original":
        for backend, lib in (("TORCH", "redisai_torch/redisai_torch.so"),
                             ("ONNX", "redisai_onnxruntime/redisai_onnxruntime.so")):
            reply = client.execute_command("AI.CONFIG", "LOADBACKEND", backend, lib)
            assert common.ok(reply), f"original: LOADBACKEND {backend}: {reply!r}"
    # ONNX is stored before any INFO of the module's sections: 1.2.7 crashes in INFO when its
    # ONNX backend is loaded but no ONNX model was stored yet (its allocator is made lazily).
    common.store_fraud_models(client, MODEL_KEYS)
    assert client.set(REF_STRING, REF.tobytes())
    for label, command in commands().items():
        reply = client.execute_command(*command)
        if label == "GET":
            assert reply == REF.tobytes(), f"{side.name}: GET did not return the reference"
        elif label.startswith("DAG"):
            assert reply[:2] == [b"OK", b"OK"], f"{side.name} {label}: {reply!r}"
            score = np.frombuffer(reply[2], dtype=np.float32).reshape(EXPECTED.shape)
            assert np.allclose(score, EXPECTED, atol=1e-5), f"{side.name} {label}: {score}"
        else:
            assert common.ok(reply), f"{side.name} {label}: {reply!r}"
    info = client.info("everything")
    side.info = {k[3:]: str(v) for k, v in info.items()
                 if k in ("ai_git_sha", "ai_Torch_version", "ai_onnxruntime_version",
                          "ai_threads_per_queue", "ai_intra_op_parallelism",
                          "ai_inter_op_parallelism")}
    if WORKER_FIELD not in info:
        raise RuntimeError(f"{side.name}: INFO has no {WORKER_FIELD}")


@contextmanager
def both_servers(peer: Path) -> Iterator[dict[str, Side]]:
    tpq = ("THREADS_PER_QUEUE", str(THREADS_PER_QUEUE))
    with ExitStack() as stack:
        ours = stack.enter_context(common.running_server(tpq))
        original = stack.enter_context(common.running_server(
            (*tpq, "BACKENDSPATH", str(peer / "backends")), module=str(peer / "redisai.so")))
        sides = {"ours": Side("ours", ours, ours.client(), Path(common.module_path())),
                 "original": Side("original", original, original.client(), peer / "redisai.so")}
        for side in sides.values():
            stack.callback(side.client.close)
            prepare(side)
        yield sides


# --------------------------------------------------------------------------- throughput


def timed_run(side: Side, label: str, requests: int) -> dict[str, Any]:
    """One redis-benchmark run of `label` on `side`, checked, with the CPU it cost."""
    model_key = MODEL_OF.get(label)
    before = common.run_info(side.client, model_key) if model_key else None
    cpu0, load0 = side.cpu(), common.reaped_children_cpu_s()
    sample = common.checked_benchmark(side.client, side.server.port, CLIENTS, requests,
                                      commands()[label])
    cpu1, load1 = side.cpu(), common.reaped_children_cpu_s()
    run: dict[str, Any] = {"rps": sample.rps, "p50_ms": sample.p50_ms, "p99_ms": sample.p99_ms,
                           "requests": requests}
    if model_key and before is not None:
        after = common.run_info(side.client, model_key)
        if after.calls - before.calls != requests or after.errors != before.errors:
            raise RuntimeError(f"{side.name} {label}: AI.INFO went from {before} to {after} "
                               f"for {requests} requests")
        run["worker_us_per_call"] = (after.duration_us - before.duration_us) / requests
    seconds = requests / sample.rps
    used = {k: cpu1[k] - cpu0[k] for k in cpu0}
    cpu = {"main thread": used["main"], "worker": used["worker"],
           "other threads": max(0.0, used["process"] - used["main"] - used["worker"]),
           "redis-benchmark": load1 - load0}
    run["cpu_us_per_request"] = {k: v * 1e6 / requests for k, v in cpu.items()}
    run["busy"] = {"main thread": cpu["main thread"] / seconds, "worker": cpu["worker"] / seconds,
                   "cores": sum(cpu.values()) / seconds / (os.cpu_count() or 1)}
    return run


def calibrate(sides: dict[str, Side]) -> dict[tuple[str, str], int]:
    """Requests per run for about RUN_SECONDS (the probes warm everything up, too)."""
    counts = {}
    for label in LABELS:
        for name, side in sides.items():
            probe = timed_run(side, label, PROBE_REQUESTS)
            counts[(name, label)] = int(min(MAX_REQUESTS,
                                            max(PROBE_REQUESTS, probe["rps"] * RUN_SECONDS)))
    return counts


def throughput(sides: dict[str, Side]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    counts = calibrate(sides)
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {k: [] for k in counts}
    for repeat in range(REPEATS):
        order = LABELS[repeat % len(LABELS):] + LABELS[:repeat % len(LABELS)]
        for i, label in enumerate(order):
            names = SIDES if (repeat + i) % 2 == 0 else SIDES[::-1]

            def pair() -> dict[str, Any]:
                return {n: timed_run(sides[n], label, counts[(n, label)]) for n in names}

            got = QUIET.run(f"{label} (repeat {repeat + 1})", pair)
            for name in SIDES:
                runs[(name, label)].append({**got[name], "foreign_cpu": got["foreign_cpu"]})
        print(f"  repeat {repeat + 1}/{REPEATS}  " + "  ".join(
            f"{label}: {runs[('ours', label)][-1]['rps']:,.0f} / "
            f"{runs[('original', label)][-1]['rps']:,.0f}" for label in LABELS)
            + "  (ours / original req/s)", flush=True)
    return runs


def batched_dag_loops(sides: dict[str, Side]) -> dict[str, dict[str, Any]]:
    """The fraud DAG loop at BATCH_CLIENTS clients on models stored with BATCHSIZE
    BATCH_SIZE, as a ratio of GET at as many clients on the same server (issue 15's goal for
    ours: >= BATCH_GOAL x GET). Per backend and side: req/s and x GET per repeat, and medians."""
    blobs = {"TORCH": common.model_builders.torch_mlp(), "ONNX": common.model_builders.onnx_mlp()}
    for side in sides.values():
        for backend, key in BATCHED_KEYS.items():
            reply = side.client.execute_command("AI.MODELSTORE", key, backend, "CPU", "BATCHSIZE",
                                                BATCH_SIZE, "BLOB", blobs[backend])
            assert common.ok(reply), f"{side.name}: AI.MODELSTORE {key}: {reply!r}"
    get = [b"GET", REF_STRING.encode()]
    loops = {backend: common.dag_loop_args(key, TX.tobytes()) for backend, key in BATCHED_KEYS.items()}
    out: dict[str, dict[str, Any]] = {}
    for repeat in range(REPEATS):
        for name in SIDES if repeat % 2 == 0 else SIDES[::-1]:
            side = sides[name]
            get_rps = common.checked_benchmark(side.client, side.server.port, BATCH_CLIENTS,
                                               BATCH_REQUESTS, get).rps
            for backend, command in loops.items():
                before = common.run_info(side.client, BATCHED_KEYS[backend])
                rps = common.checked_benchmark(side.client, side.server.port, BATCH_CLIENTS,
                                               BATCH_REQUESTS, command).rps
                after = common.run_info(side.client, BATCHED_KEYS[backend])
                if after.calls - before.calls != BATCH_REQUESTS or after.errors != before.errors:
                    raise RuntimeError(f"{name} {backend} batched DAG: AI.INFO went from "
                                       f"{before} to {after}")
                row = out.setdefault(f"{name} {backend}", {"rps": [], "vs_get": []})
                row["rps"].append(rps)
                row["vs_get"].append(rps / get_rps)
    for row in out.values():
        row["median_rps"] = statistics.median(row["rps"])
        row["median_vs_get"] = statistics.median(row["vs_get"])
    return out


def batched_lines(batched: dict[str, dict[str, Any]]) -> list[str]:
    lines = [f"| DAG loop, BATCHSIZE {BATCH_SIZE}, {BATCH_CLIENTS} clients | ours req/s | ours x GET "
             f"| original req/s | original x GET | ours / original | goal ours x GET >= {BATCH_GOAL} |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for backend in BATCHED_KEYS:
        o, p = batched[f"ours {backend}"], batched[f"original {backend}"]
        lines.append(f"| {backend} | {o['median_rps']:,.0f} | {o['median_vs_get']:.3f} | "
                     f"{p['median_rps']:,.0f} | {p['median_vs_get']:.3f} | "
                     f"{o['median_rps'] / p['median_rps']:.2f} | "
                     f"{'met' if o['median_vs_get'] >= BATCH_GOAL else 'NOT met'} |")
    return lines


def limit_of(busy: dict[str, float], label: str) -> str:
    """What bounds a 16-client figure, from how busy the threads and cores were (`others`: the
    share of the cores that processes not ours took meanwhile)."""
    if busy["worker"] >= SATURATED and label != "GET":
        return f"worker saturated ({busy['worker']:.0%})"
    if busy["main thread"] >= SATURATED:
        return f"main thread saturated ({busy['main thread']:.0%})"
    if busy["cores"] >= SATURATED:
        return f"both cores full ({busy['cores']:.0%}, with redis-benchmark)"
    if busy["cores"] + busy["others"] >= SATURATED:
        return (f"both cores full, {busy['others']:.0%} of them taken by other processes "
                f"(ours {busy['cores']:.0%})")
    return (f"hand-offs (no thread saturated: main {busy['main thread']:.0%}, worker "
            f"{busy['worker']:.0%}; cores {busy['cores']:.0%})")


@dataclass
class Figure:
    """One command on one server: medians over the repeats."""

    side: str
    label: str
    rps: float
    vs_get: float                        # median of per-repeat rps / GET rps (same server)
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: dict[str, float]
    busy: dict[str, float]
    limit: str
    worker_us_per_call: float | None
    vs_get_per_repeat: list[float]


def figures(runs: dict[tuple[str, str], list[dict[str, Any]]]) -> list[Figure]:
    out = []
    for side in SIDES:
        gets = runs[(side, "GET")]
        for label in LABELS:
            rs = runs[(side, label)]
            per_repeat = [r["rps"] / g["rps"] for r, g in zip(rs, gets)]
            busy = {k: statistics.median(r["busy"][k] for r in rs) for k in rs[0]["busy"]}
            busy["others"] = statistics.median(r["foreign_cpu"] for r in rs)
            out.append(Figure(
                side=side, label=label, rps=statistics.median(r["rps"] for r in rs),
                vs_get=statistics.median(per_repeat),
                p50_ms=statistics.median(r["p50_ms"] for r in rs),
                p99_ms=statistics.median(r["p99_ms"] for r in rs),
                cpu_us_per_request={k: statistics.median(r["cpu_us_per_request"][k] for r in rs)
                                    for k in rs[0]["cpu_us_per_request"]},
                busy=busy, limit=limit_of(busy, label),
                worker_us_per_call=statistics.median(r["worker_us_per_call"] for r in rs)
                if "worker_us_per_call" in rs[0] else None,
                vs_get_per_repeat=[round(x, 4) for x in per_repeat]))
    return out


def rate_ratios(runs: dict[tuple[str, str], list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """ours / original per command: median of the per-repeat ratios of the two rates."""
    out = {}
    for label in LABELS:
        per_repeat = [o["rps"] / p["rps"] for o, p in zip(runs[("ours", label)],
                                                         runs[("original", label)])]
        out[label] = {"median": statistics.median(per_repeat),
                      "per_repeat": [round(x, 4) for x in per_repeat]}
    return out


# --------------------------------------------------------------------------- latency


def latency(sides: dict[str, Side]) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Percentiles (us) of the six interleaved steps, and AI.INFO's worker time per call."""
    steps: dict[str, Callable[[], object]] = {}
    for name, side in sides.items():
        execute = side.client.execute_command
        steps[f"{name} PING"] = lambda execute=execute: execute("PING")
        for backend, key in MODEL_KEYS.items():
            args = common.execute_args(key)

            def run(execute: Any = execute, args: tuple[str, ...] = args) -> object:
                reply = execute(*args)
                if not common.ok(reply):
                    raise RuntimeError(f"{' '.join(args)} replied {reply!r}")
                return reply

            steps[f"{name} EXECUTE {backend}"] = run

    def reset() -> None:
        for side in sides.values():
            for key in MODEL_KEYS.values():
                common.reset_run_info(side.client, key)

    cpu0 = {name: side.cpu()["worker"] for name, side in sides.items()}
    samples = common.interleaved(steps, LATENCY_CALLS, LATENCY_WARMUP, reset)
    n = len(next(iter(samples.values())))
    workers = {}
    for name, side in sides.items():
        # The worker's CPU per EXECUTE over the whole loop, its idle time included: what a
        # worker that polls its queue between requests costs.
        calls = (LATENCY_CALLS + LATENCY_WARMUP) * len(MODEL_KEYS)
        workers[f"{name} CPU"] = (side.cpu()["worker"] - cpu0[name]) * 1e6 / calls
        for backend, key in MODEL_KEYS.items():
            info = common.run_info(side.client, key)
            if info.calls != n or info.errors:
                raise RuntimeError(f"{name} AI.INFO {key}: expected {n} clean calls, got {info}")
            workers[f"{name} {backend}"] = info.duration_us / info.calls
    return {k: common.percentiles_us(v) for k, v in samples.items()}, workers


def latency_rows(stats: dict[str, dict[str, float]],
                 workers: dict[str, float]) -> list[dict[str, Any]]:
    rows = []
    for backend in MODEL_KEYS:
        row: dict[str, Any] = {"backend": backend}
        for side in SIDES:
            in_server = stats[f"{side} EXECUTE {backend}"]["p50"] - stats[f"{side} PING"]["p50"]
            row[side] = {"execute_p50": stats[f"{side} EXECUTE {backend}"]["p50"],
                         "execute_p99": stats[f"{side} EXECUTE {backend}"]["p99"],
                         "ping_p50": stats[f"{side} PING"]["p50"], "in_server": in_server,
                         "worker_mean": workers[f"{side} {backend}"],
                         "rest": in_server - workers[f"{side} {backend}"]}
        row["ratio"] = row["ours"]["in_server"] / row["original"]["in_server"]
        row["worker_cpu"] = {side: workers[f"{side} CPU"] for side in SIDES}
        rows.append(row)
    return rows


def raw_calls() -> dict[str, float]:
    """p50 (us) of each backend called back to back in this process, the lowest of three
    loops (other processes' bursts only ever add): the floor a worker's time per call is
    measured against."""
    makers = {"TORCH": (torch_raw_call, common.model_builders.torch_mlp),
              "ONNX": (onnx_raw_call, common.model_builders.onnx_mlp)}
    floors = {}
    for backend, (make, blob) in makers.items():
        call = make(blob())
        floors[backend] = min(common.percentiles_us(hot_loop(call, RAW_CALLS))["p50"]
                              for _ in range(3))
    return floors


def worker_lines(figs: list[Figure], raw: dict[str, float]) -> list[str]:
    """Worker time per call (AI.INFO, 16 clients) over the raw back-to-back call."""
    out = []
    for backend in MODEL_KEYS:
        parts = []
        for side in SIDES:
            f = figure_of(figs, side, f"MODELEXECUTE {backend}")
            if f.worker_us_per_call is not None:
                parts.append(f"{side} {f.worker_us_per_call:.1f} us "
                             f"({f.worker_us_per_call - raw[backend]:+.1f})")
        out.append(f"- {backend}: raw back-to-back call {raw[backend]:.1f} us; worker time per "
                   f"MODELEXECUTE at {CLIENTS} clients: " + ", ".join(parts))
    return out


# --------------------------------------------------------------------------- reports


def figure_of(figs: list[Figure], side: str, label: str) -> Figure:
    return next(f for f in figs if f.side == side and f.label == label)


def throughput_table(figs: list[Figure], ratios: dict[str, dict[str, Any]]) -> list[str]:
    lines = [f"| command | ours req/s | ours x GET | original req/s | original x GET | "
             f"**ours / original** | goal >= {RATE_GOAL} |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for label in LABELS:
        o, p = figure_of(figs, "ours", label), figure_of(figs, "original", label)
        ratio = ratios[label]["median"]
        goal = "" if label == "GET" else ("met" if ratio >= RATE_GOAL else "NOT met")
        lines.append(f"| {label} | {o.rps:,.0f} | {o.vs_get:.3f} | {p.rps:,.0f} | "
                     f"{p.vs_get:.3f} | **{ratio:.2f}** | {goal} |")
    return lines


def cpu_table(figs: list[Figure]) -> list[str]:
    lines = ["| command | server | CPU us/request: main / worker / other threads / "
             "redis-benchmark | worker us/call (AI.INFO) | busy: main / worker / cores (other "
             "processes) | "
             "limited by |",
             "|---|---|---:|---:|---:|---|"]
    for label in LABELS:
        for side in SIDES:
            f = figure_of(figs, side, label)
            c = f.cpu_us_per_request
            worker = "" if f.worker_us_per_call is None else f"{f.worker_us_per_call:.1f}"
            lines.append(
                f"| {label} | {side} | {c['main thread']:.1f} / {c['worker']:.1f} / "
                f"{c['other threads']:.1f} / {c['redis-benchmark']:.1f} | {worker} | "
                f"{f.busy['main thread']:.0%} / {f.busy['worker']:.0%} / {f.busy['cores']:.0%} "
                f"({f.busy['others']:.0%}) | "
                f"{f.limit} |")
    return lines


def latency_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| backend | ours EXECUTE p50 - PING p50 | original EXECUTE p50 - PING p50 | "
             f"**ours / original** | goal <= {LATENCY_GOAL} | ours: worker + rest | "
             "original: worker + rest | EXECUTE p99 ours / original | worker CPU per EXECUTE, "
             "idle included: ours / original |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        o, p = r["ours"], r["original"]
        lines.append(f"| {r['backend']} | {o['in_server']:.1f} | {p['in_server']:.1f} | "
                     f"**{r['ratio']:.2f}** | {'met' if r['ratio'] <= LATENCY_GOAL else 'NOT met'} | "
                     f"{o['worker_mean']:.1f} + {o['rest']:.1f} | "
                     f"{p['worker_mean']:.1f} + {p['rest']:.1f} | "
                     f"{o['execute_p99']:.0f} / {p['execute_p99']:.0f} | "
                     f"{r['worker_cpu']['ours']:.0f} / {r['worker_cpu']['original']:.0f} |")
    return lines


def glue_free_lines(figs: list[Figure], raw: dict[str, float]) -> list[str]:
    """What ours / original could be at most if our worker cost only the raw call.

    With both cores full the rate is the inverse of the CPU a request costs everyone
    (server and redis-benchmark), so the bound is the original's CPU per request over ours
    with the worker's share replaced by the raw back-to-back call."""
    out = []
    for label in LABELS:
        if label == "GET":
            continue
        o, p = figure_of(figs, "ours", label), figure_of(figs, "original", label)
        total_o, total_p = sum(o.cpu_us_per_request.values()), sum(p.cpu_us_per_request.values())
        backend = "TORCH" if label.endswith("TORCH") else "ONNX"
        glue_free = total_o - o.cpu_us_per_request["worker"] + raw[backend]
        out.append(f"- {label}: CPU per request ours {total_o:.1f} us, original {total_p:.1f} us; "
                   f"ours with the worker at the raw call ({raw[backend]:.1f} us) {glue_free:.1f} us: "
                   f"ours / original at most {total_p / glue_free:.2f}")
    return out


def ping_line(stats: dict[str, dict[str, float]]) -> str:
    return ("PING p50 (the round trip both subtract): " + ", ".join(
        f"{side} {stats[f'{side} PING']['p50']:.1f} us" for side in SIDES))


def verdicts(ratios: dict[str, dict[str, Any]], rows: list[dict[str, Any]],
             batched: dict[str, dict[str, Any]]) -> list[str]:
    rates = [f"{label} {ratios[label]['median']:.2f}" for label in LABELS if label != "GET"]
    met = all(ratios[label]["median"] >= RATE_GOAL for label in LABELS if label != "GET")
    lat_met = all(r["ratio"] <= LATENCY_GOAL for r in rows)
    return [f"- throughput, ours / original >= {RATE_GOAL} for all four: "
            f"{'met' if met else 'NOT met'} ({'; '.join(rates)})",
            f"- single-client in-server time, ours / original <= {LATENCY_GOAL}: "
            f"{'met' if lat_met else 'NOT met'} ("
            + "; ".join(f"{r['backend']} {r['ratio']:.2f}" for r in rows) + ")",
            f"- DAG loop with BATCHSIZE {BATCH_SIZE} at {BATCH_CLIENTS} clients, ours >= "
            f"{BATCH_GOAL}x GET: " + "; ".join(
                f"{b} {batched[f'ours {b}']['median_vs_get']:.2f} "
                f"({'met' if batched[f'ours {b}']['median_vs_get'] >= BATCH_GOAL else 'NOT met'})"
                for b in BATCHED_KEYS)]


def draw_chart(plt: Any, figs: list[Figure], ratios: dict[str, dict[str, Any]],
               rows: list[dict[str, Any]], env: dict[str, str]) -> Any:
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [3, 2]})
    labels = [label for label in LABELS if label != "GET"]
    xs = np.arange(len(labels))
    width = 0.38
    for offset, side in ((-width / 2, "ours"), (width / 2, "original")):
        values = [figure_of(figs, side, label).vs_get for label in labels]
        bars = left.bar(xs + offset, values, width,
                        label="redisai_py" if side == "ours" else "RedisAI 1.2.7")
        texts = [f"{v:.2f}" + (f"\n{ratios[label]['median']:.2f}x" if side == "ours" else "")
                 for v, label in zip(values, labels)]
        common.annotate_bars(left, bars, texts, fontsize=8)
    left.set_xticks(xs, [label.replace(" ", "\n", 1) for label in labels], fontsize=9)
    left.set_ylabel("req/s as a ratio of GET on the same server (median)")
    left.set_title(f"{CLIENTS} clients, THREADS_PER_QUEUE {THREADS_PER_QUEUE} "
                   "(ours / original under ours)", fontsize=10)
    left.set_ylim(0, max(f.vs_get for f in figs if f.label != "GET") * 1.35)
    left.legend(fontsize=8)
    xs = np.arange(len(rows))
    for offset, side in ((-width / 2, "ours"), (width / 2, "original")):
        bars = right.bar(xs + offset, [r[side]["in_server"] for r in rows], width,
                         label="redisai_py" if side == "ours" else "RedisAI 1.2.7")
        common.annotate_bars(right, bars, [f"{r[side]['in_server']:.0f}" for r in rows])
    right.set_xticks(xs, [f"MODELEXECUTE {r['backend']}\nours/original {r['ratio']:.2f}"
                          for r in rows], fontsize=9)
    right.set_ylabel("p50(EXECUTE) - p50(PING), microseconds")
    right.set_title(f"single client, interleaved (goal <= {LATENCY_GOAL}x)", fontsize=10)
    right.legend(fontsize=8)
    fig.suptitle(f"redisai_py vs RedisAI 1.2.7, fraud MLP - redis {env['redis_version']}, "
                 f"nproc={env['nproc']}", fontsize=11)
    return fig


def peer_environment(side: Side) -> dict[str, str]:
    stat = side.module.stat()
    built = dt.datetime.fromtimestamp(stat.st_mtime, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return {"original_module": f"{side.module} (built {built})",
            **{f"original_{k}": v for k, v in side.info.items()}}


# --------------------------------------------------------------------------- main


def main() -> int:
    global REPEATS, RUN_SECONDS, LATENCY_CALLS, LATENCY_WARMUP, PROBE_REQUESTS
    args = common.parse_args(__doc__, quick="1 repeat of 0.5 s runs, 500 latency iterations")
    peer = peer_dir()
    if peer is None:
        print(skip_note())
        return 0
    missing = [f for f in PEER_FILES if not (peer / f).is_file()]
    if missing:
        print(f"{PEER_ENV}={peer} lacks {', '.join(missing)}: it must be the install folder of "
              "a RedisAI 1.2.7 build (what the peer build script prints last)", file=sys.stderr)
        return 2
    if args.quick:
        REPEATS, RUN_SECONDS, LATENCY_CALLS, LATENCY_WARMUP, PROBE_REQUESTS = 1, 0.5, 500, 100, 1000
    watch = common.Watch()
    with both_servers(peer) as sides:
        env = common.environment(sides["ours"].client)
        env.update(peer_environment(sides["original"]))
        print(f"ours on 127.0.0.1:{sides['ours'].server.port}, RedisAI 1.2.7 on "
              f"127.0.0.1:{sides['original'].server.port}; {CLIENTS} clients, "
              f"THREADS_PER_QUEUE {THREADS_PER_QUEUE}", flush=True)
        runs = throughput(sides)
        print(f"  DAG loops with BATCHSIZE {BATCH_SIZE} at {BATCH_CLIENTS} clients ...", flush=True)
        batched = batched_dag_loops(sides)
        print("  single-client latency ...", flush=True)
        ours = sides["ours"].client
        spin_us = int(ours.execute_command("AI.CONFIG", "GET", "WORKER_SPIN_US"))
        stats, workers = latency(sides)
        # The same loop with our worker sleeping as soon as its queue is empty, as the original's does.
        ours.execute_command("AI.CONFIG", "WORKER_SPIN_US", 0)
        stats_still, workers_still = latency(sides)
        ours.execute_command("AI.CONFIG", "WORKER_SPIN_US", spin_us)
    raw = raw_calls()
    env.update(watch.fields())
    env["runs_kept_although_disturbed"] = ", ".join(sorted({
        f"{label} #{i + 1}" for (side, label), rs in runs.items()
        for i, r in enumerate(rs) if r["foreign_cpu"] >= common.QUIET_FRACTION})) or "none"
    figs = figures(runs)
    ratios = rate_ratios(runs)
    rows = latency_rows(stats, workers)
    rows_still = latency_rows(stats_still, workers_still)
    common.show(throughput_table(figs, ratios), "", cpu_table(figs), worker_lines(figs, raw),
                "", batched_lines(batched),
                glue_free_lines(figs, raw), "", latency_table(rows), ping_line(stats), "",
                latency_table(rows_still), ping_line(stats_still), verdicts(ratios, rows, batched))
    common.write_report(
        NAME, title="redisai_py vs the original RedisAI 1.2.7, side by side (fraud MLP)",
        env=env,
        about=[
            f"- original: {env['original_module']}, git {env.get('original_git_sha', '?')[:8]}, "
            f"torch {env.get('original_Torch_version', '?')} (1.2.7's INFO says NA; the peer "
            "build script takes libtorch from the torch CPU wheel), onnxruntime "
            f"{env.get('original_onnxruntime_version', '?')}; ours: torch "
            f"{sides['ours'].info.get('Torch_version', '?')}, onnxruntime "
            f"{sides['ours'].info.get('onnxruntime_version', '?')}; both THREADS_PER_QUEUE "
            f"{THREADS_PER_QUEUE}, INTRA/INTER_OP_PARALLELISM 0 (the backends' defaults), both "
            "servers up for the whole run",
            f"- throughput: `redis-benchmark -c {CLIENTS} -P 1`, ~{RUN_SECONDS:g} s per run, each "
            f"command on both servers back to back, {REPEATS} repeats in rotating order, medians; "
            "x GET = median of per-repeat ratios to GET on the same server; ours / original = "
            "median of per-repeat ratios of the two rates",
            "- MODELEXECUTE: `AI.MODELEXECUTE <fraud|fraud_onnx> INPUTS 2 tx ref OUTPUTS 1 score`; "
            "DAG loop: `AI.DAGEXECUTE LOAD 1 ref |> AI.TENSORSET tx FLOAT 1 30 BLOB <120 bytes> "
            "|> AI.MODELEXECUTE <model> INPUTS 2 tx ref OUTPUTS 1 score |> AI.TENSORGET score BLOB`; "
            "GET: a 1 KB string",
            f"- latency: one redis-py connection per server, {LATENCY_CALLS} iterations after "
            f"{LATENCY_WARMUP} warm-up ones, PING and both MODELEXECUTEs on both servers in a "
            "rotating order",
            QUIET.note() + f"; runs kept although disturbed: {env['runs_kept_although_disturbed']}",
        ],
        body=[
            "## Throughput, 16 clients",
            "",
            *throughput_table(figs, ratios),
            "",
            "per-repeat ours / original: " + "; ".join(
                f"{label}: {ratios[label]['per_repeat']}" for label in LABELS),
            "",
            "## Where the CPU goes (per request, medians over the repeats)",
            "",
            "main = the redis-server main thread, worker = the queue's worker thread (INFO "
            f"`{WORKER_FIELD}`), other threads = the rest of the server's process (backend "
            "thread pools); /proc's counters tick every 10 ms. busy = CPU seconds / run seconds "
            "(main, worker: of one core; cores: server + redis-benchmark over all "
            f"{os.cpu_count()} cores; other processes' share measured over the pair of runs). "
            f"A thread at >= {SATURATED:.0%} limits the figure; else, with the cores full (ours "
            "plus other processes'), the sum of the costs does; else the thread hand-offs (idle "
            "waits) do.",
            "",
            *cpu_table(figs),
            "",
            "Worker time per call against the backend's own floor (the raw call back to back in "
            "the benchmark process, as in model_overhead.py; the issue's goal for ours: at most "
            "2 us over it):",
            "",
            *worker_lines(figs, raw),
            "",
            "What the throughput goal asks of the worker: with both cores full, a request's rate "
            "is the inverse of the CPU it costs everyone (server and redis-benchmark). Replacing "
            "our worker's CPU per request with the backend's raw back-to-back call (as if our "
            "glue cost nothing) bounds what ours / original can reach while the backend is "
            "called from Python:",
            "",
            *glue_free_lines(figs, raw),
            "",
            f"## Batching across clients: the fraud DAG loop, BATCHSIZE {BATCH_SIZE}, "
            f"{BATCH_CLIENTS} clients",
            "",
            *batched_lines(batched),
            "",
            f"The same DAG loop as above on models stored with BATCHSIZE {BATCH_SIZE} "
            f"(`fraud_b16`, `fraud_onnx_b16`), `redis-benchmark -c {BATCH_CLIENTS} -P 1 -n "
            f"{BATCH_REQUESTS:,}`; x GET = against GET at {BATCH_CLIENTS} clients on the same "
            f"server in the same repeat; medians of {REPEATS} repeats (the servers' order "
            "alternating). Per repeat, x GET: " + "; ".join(
                f"{k}: {[round(x, 3) for x in v['vs_get']]}" for k, v in batched.items()),
            "",
            "## Single-client latency (microseconds)",
            "",
            f"Ours as configured (WORKER_SPIN_US {spin_us}: the worker polls its queue that long "
            "before it sleeps):",
            "",
            *latency_table(rows),
            "",
            ping_line(stats) + ".",
            "",
            "The same loop right after, ours with WORKER_SPIN_US 0 (its worker sleeps as soon as "
            "the queue is empty, as the original's does):",
            "",
            *latency_table(rows_still),
            "",
            ping_line(stats_still) + ". in-server = p50(EXECUTE) - p50(PING); worker = AI.INFO duration "
            "/ calls during the loop (the backend call and its glue on the worker); rest = "
            "in-server - worker: the two thread hand-offs (main thread -> worker, worker -> main "
            "thread through Redis's unblock path), parsing, output key and reply. worker CPU per "
            "EXECUTE = the worker thread's CPU over the whole loop (warm-up and idle time "
            "included) / EXECUTEs: a polling worker's cost shows there. Both servers share the "
            "2 cores, so a polling worker keeps the machine's cores awake for the original too.",
            "",
            "## Goals (issue 15)",
            "",
            *verdicts(ratios, rows, batched),
            "",
        ],
        data={"clients": CLIENTS, "threads_per_queue": THREADS_PER_QUEUE, "repeats": REPEATS,
              "run_seconds": RUN_SECONDS, "rate_goal": RATE_GOAL, "latency_goal": LATENCY_GOAL,
              "ours_over_original": ratios,
              "figures": [f.__dict__ for f in figs],
              "batched_dag_loops": batched, "worker_spin_us": spin_us, "latency_us": stats, "latency": rows,
              "latency_us_spin_0": stats_still, "latency_spin_0": rows_still,
              "raw_back_to_back_p50_us": raw,
              "runs": {f"{side} {label}": rs for (side, label), rs in runs.items()}},
        charts={"": lambda plt: draw_chart(plt, figs, ratios, rows, env)},
        command=f"{PEER_ENV}=/tmp/redisai-peer/install .venv/bin/python benchmarks/{NAME}.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
