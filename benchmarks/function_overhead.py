"""What an in-server Python function costs: a trivial AI.FCALL against GET and PING.

What it measures
    One library with one function, `one`, that returns 1 (flag no-writes), loaded with
    AI.FUNCTION LOAD on a private server with FUNCTION_THREADS 1.

    * Single client: ONE loop of N_CALLS iterations (after WARMUP_CALLS) times, with
      time.perf_counter_ns and one redis-py connection, a PING, a GET of a 16-byte value and
      `AI.FCALL one 0`; the order rotates every iteration, so drifts of the machine hit all
      three alike. overhead = p50(AI.FCALL) - p50(PING): the hand-over to the function thread,
      its Python call and the hand-back. Goal (issue 14): <= 40 us.
    * 16 clients: redis-benchmark -c 16 -P 1 of GET, then of `AI.FCALL one 0`, each checked
      in commandstats (every call clean). ratio = FCALL req/s / GET req/s. Goal: >= 0.3.
      GET never leaves the main thread; a call goes to the one function thread and back, so
      the ratio says what the hand-over costs when clients pile up.

How to run
    .venv/bin/python benchmarks/function_overhead.py [--quick]

    It starts its own redis-server on a free loopback port and stops it by PID. Results go to
    benchmarks/results/function_overhead.{md,json} (--quick: benchmarks/results/quick/).
"""

from __future__ import annotations

import sys
from typing import Any

import _bench_common as common

NAME = "function_overhead"
N_CALLS, WARMUP_CALLS = 5000, 500
CLIENTS, REQUESTS = 16, 100_000
OVERHEAD_GOAL_US, RATIO_GOAL = 40.0, 0.3
LIBRARY = """#!python name=bench
from redisai_py.functions import register_function

def one(keys, args):
    return 1

register_function("one", one, flags=["no-writes"])
"""
FCALL = ("AI.FCALL", "one", "0")


def single_client(client: Any, calls: int, warmup: int) -> dict[str, dict[str, float]]:
    steps = {
        "PING": lambda: client.ping(),
        "GET": lambda: client.get("k"),
        "AI.FCALL": lambda: client.execute_command(*FCALL),
    }
    return {name: common.percentiles_us(ns) for name, ns in
            common.interleaved(steps, calls, warmup).items()}


def many_clients(client: Any, port: int, requests: int) -> dict[str, common.BenchSample]:
    return {
        "GET": common.checked_benchmark(client, port, CLIENTS, requests, ("GET", "k")),
        "AI.FCALL": common.checked_benchmark(client, port, CLIENTS, requests, FCALL),
    }


def report_lines(single: dict[str, dict[str, float]], many: dict[str, common.BenchSample]) -> list[str]:
    overhead = single["AI.FCALL"]["p50"] - single["PING"]["p50"]
    ratio = many["AI.FCALL"].rps / many["GET"].rps
    lines = ["| one client | p50 us | p99 us |", "| --- | ---: | ---: |"]
    lines += [f"| {name} | {s['p50']:.1f} | {s['p99']:.1f} |" for name, s in single.items()]
    lines += ["", f"| {CLIENTS} clients | req/s | p50 ms | p99 ms |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {name} | {s.rps:,.0f} | {s.p50_ms:.3f} | {s.p99_ms:.3f} |" for name, s in many.items()]
    lines += [
        "",
        f"overhead over PING (one client): {overhead:.1f} us (goal <= {OVERHEAD_GOAL_US:g} us: "
        f"{'met' if overhead <= OVERHEAD_GOAL_US else 'missed'})",
        f"AI.FCALL / GET throughput at {CLIENTS} clients: {ratio:.2f} (goal >= {RATIO_GOAL}: "
        f"{'met' if ratio >= RATIO_GOAL else 'missed'})",
    ]
    return lines


def main() -> int:
    args = common.parse_args(__doc__, quick="500 single-client calls, 5,000 requests per benchmark")
    calls, warmup, requests = (500, 50, 5_000) if args.quick else (N_CALLS, WARMUP_CALLS, REQUESTS)
    watch = common.Watch()
    with common.running_server(["FUNCTION_THREADS", "1"]) as server:
        client = server.client()
        client.set("k", "v" * 16)
        client.execute_command("AI.FUNCTION", "LOAD", LIBRARY)
        env = common.environment(client)
        single = single_client(client, calls, warmup)
        many = many_clients(client, server.port, requests)
    env.update(watch.fields())
    lines = report_lines(single, many)
    common.show(lines)
    common.write_report(
        NAME, title="In-server functions: a trivial AI.FCALL against GET and PING", env=env,
        about=[f"- one client: {calls:,} interleaved PING / GET / `{' '.join(FCALL)}` (redis-py); "
               f"{CLIENTS} clients: redis-benchmark -P 1 -n {requests:,}, FUNCTION_THREADS 1"],
        body=lines,
        data={"single_client_us": single, "many_clients": {k: vars(v) for k, v in many.items()}},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
