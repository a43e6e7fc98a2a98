"""Throughput of AI.TENSORSET / AI.TENSORGET next to plain SET / GET.

What it measures
    Requests per second (and p50 latency) that ``redis-benchmark`` gets from
    one redis-server with the redisai_py module loaded, for four commands on
    the same 1 KB payload:

    * ``SET s <1KB>``                          vs ``AI.TENSORSET t FLOAT 256 BLOB <1KB>``
    * ``GET s``                                vs ``AI.TENSORGET t BLOB``

    at 1 and 16 parallel clients, no pipelining (``-P 1``), one benchmark
    thread.  The payload is 256 float32 values whose bytes are all ``b"A"``
    (12.078431...), so it is a valid FLOAT tensor blob and also a NUL-free
    command-line argument.  Each plain/module pair runs back to back (the
    order alternates between repeats), every pair is repeated ``REPEATS``
    times, and the median is reported.  After each run the server's
    commandstats are checked: every request must have been served, none may
    have failed.  The project's target is module/plain >= 0.95.

How to run
    .venv/bin/python benchmarks/tensor_ops.py [--quick]

    It starts its own redis-server on a random free loopback port, in its own
    temporary directory, and stops it by PID at the end.  Results go to
    benchmarks/results/tensor_ops.{md,json,png} (the chart needs matplotlib;
    without it that step is skipped with a note).  It takes about 1-2 minutes.
"""

from __future__ import annotations

import statistics
import struct
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

import _bench_common as common

NAME = "tensor_ops"
TARGET_RATIO = 0.95

REPEATS = 3
CLIENTS = (1, 16)
# Requests per run, by client count: about 3 s per run on a 2-core machine.
REQUESTS = {1: 60_000, 16: 300_000}
WARMUP_REQUESTS = 10_000
RUN_TIMEOUT_S = 60.0

N_FLOATS = 256
PLAIN_KEY = "s"
TENSOR_KEY = "t"


def make_blob() -> bytes:
    """256 float32 values whose 1024 bytes are all b'A': no NUL, printable."""
    value = struct.unpack("<f", b"AAAA")[0]
    blob = struct.pack(f"<{N_FLOATS}f", *([value] * N_FLOATS))
    assert len(blob) == 1024 and b"\0" not in blob and blob.isascii()
    return blob


BLOB = make_blob()
BLOB_ARG = BLOB.decode("ascii")


@dataclass(frozen=True)
class Pair:
    """A plain Redis command and the module command it is compared with."""

    operation: str
    plain: tuple[str, ...]
    module: tuple[str, ...]


PAIRS = (
    Pair("SET vs AI.TENSORSET",
         ("SET", PLAIN_KEY, BLOB_ARG),
         ("AI.TENSORSET", TENSOR_KEY, "FLOAT", str(N_FLOATS), "BLOB", BLOB_ARG)),
    Pair("GET vs AI.TENSORGET",
         ("GET", PLAIN_KEY),
         ("AI.TENSORGET", TENSOR_KEY, "BLOB")),
)


Sample = common.BenchSample


@dataclass
class Row:
    """Medians over the repeats of one pair at one client count."""

    operation: str
    clients: int
    requests_per_run: int
    plain_rps: float
    module_rps: float
    ratio: float
    plain_p50_ms: float
    module_p50_ms: float
    plain_p99_ms: float
    module_p99_ms: float
    ratio_per_repeat: list[float] = field(default_factory=list)
    plain_samples: list[dict[str, float]] = field(default_factory=list)
    module_samples: list[dict[str, float]] = field(default_factory=list)


# --------------------------------------------------------------------------- benchmark


def seed(client: redis.Redis) -> None:
    """Store the 1 KB string and tensor, and check both read back intact."""
    assert client.set(PLAIN_KEY, BLOB)
    assert client.execute_command("AI.TENSORSET", TENSOR_KEY, "FLOAT", N_FLOATS,
                                  "BLOB", BLOB) in (b"OK", "OK", True)
    check_keys(client)


def check_keys(client: redis.Redis) -> None:
    assert client.get(PLAIN_KEY) == BLOB, "string value changed"
    assert client.execute_command("AI.TENSORGET", TENSOR_KEY, "BLOB") == BLOB, \
        "tensor blob changed"


def run_benchmark(client: redis.Redis, port: int, clients: int, requests: int,
                  command: tuple[str, ...]) -> Sample:
    """One bounded redis-benchmark run; every request must have succeeded."""
    return common.checked_benchmark(client, port, clients, requests, command, RUN_TIMEOUT_S)


def median_row(pair: Pair, clients: int, plain: list[Sample], module: list[Sample]) -> Row:
    plain_rps = statistics.median(s.rps for s in plain)
    module_rps = statistics.median(s.rps for s in module)
    return Row(
        operation=pair.operation, clients=clients, requests_per_run=REQUESTS[clients],
        plain_rps=plain_rps, module_rps=module_rps, ratio=module_rps / plain_rps,
        plain_p50_ms=statistics.median(s.p50_ms for s in plain),
        module_p50_ms=statistics.median(s.p50_ms for s in module),
        plain_p99_ms=statistics.median(s.p99_ms for s in plain),
        module_p99_ms=statistics.median(s.p99_ms for s in module),
        ratio_per_repeat=[round(m.rps / p.rps, 4) for p, m in zip(plain, module)],
        plain_samples=[asdict(s) for s in plain],
        module_samples=[asdict(s) for s in module],
    )


def run_all(client: redis.Redis, port: int) -> list[Row]:
    """Every pair at every client count, REPEATS times, plain/module interleaved."""
    for pair in PAIRS:  # warm the server, the allocator and the page cache
        for command in (pair.plain, pair.module):
            run_benchmark(client, port, 1, WARMUP_REQUESTS, command)
    samples: dict[tuple[int, int], tuple[list[Sample], list[Sample]]] = {
        (i, c): ([], []) for i in range(len(PAIRS)) for c in CLIENTS}
    for repeat in range(REPEATS):
        for clients in CLIENTS:
            for i, pair in enumerate(PAIRS):
                plain, module = samples[(i, clients)]
                order = [(pair.plain, plain), (pair.module, module)]
                for command, sink in (order if repeat % 2 == 0 else order[::-1]):
                    sink.append(run_benchmark(client, port, clients, REQUESTS[clients], command))
                print(f"  repeat {repeat + 1}/{REPEATS}  c={clients:<2}  {pair.operation:<20}"
                      f"  plain {plain[-1].rps:>10.0f}  module {module[-1].rps:>10.0f}",
                      flush=True)
    return [median_row(pair, c, *samples[(i, c)])
            for i, pair in enumerate(PAIRS) for c in CLIENTS]


# --------------------------------------------------------------------------- reports


def table(rows: list[Row]) -> list[str]:
    """Markdown table lines (also what is printed)."""
    lines = ["| operation | clients | plain req/s | module req/s | ratio | "
             "plain p50 ms | module p50 ms |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.operation} | {r.clients} | {r.plain_rps:,.0f} | "
                     f"{r.module_rps:,.0f} | {r.ratio:.3f} | {r.plain_p50_ms:.3f} | "
                     f"{r.module_p50_ms:.3f} |")
    return lines


def verdict(rows: list[Row]) -> str:
    worst = min(rows, key=lambda r: r.ratio)
    ok = worst.ratio >= TARGET_RATIO
    return (f"target module/plain >= {TARGET_RATIO}: {'met' if ok else 'NOT met'} "
            f"(lowest ratio {worst.ratio:.3f}: {worst.operation}, {worst.clients} clients)")


def draw_chart(plt: Any, rows: list[Row], env: dict[str, str]) -> Any:
    labels = [f"{r.operation.split(' vs ')[0]} / {r.operation.split(' vs ')[1]}\n"
              f"{r.clients} client{'s' if r.clients > 1 else ''}" for r in rows]
    xs = range(len(rows))
    width = 0.38
    fig, ax = plt.subplots(figsize=(9, 5))
    ax.bar([x - width / 2 for x in xs], [r.plain_rps for r in rows], width, label="plain Redis")
    bars = ax.bar([x + width / 2 for x in xs], [r.module_rps for r in rows], width,
                  label="redisai_py module")
    common.annotate_bars(ax, bars, [f"{r.ratio:.2f}x" for r in rows])
    ax.set_xticks(list(xs), labels, fontsize=9)
    ax.set_ylabel("requests / second (median)")
    ax.set_title(f"1 KB SET/GET vs AI.TENSORSET/TENSORGET — redis {env['redis_version']}, "
                 f"nproc={env['nproc']}, -P 1", fontsize=10)
    ax.legend()
    return fig


# --------------------------------------------------------------------------- main


def main() -> int:
    global REPEATS, REQUESTS
    args = common.parse_args(__doc__, quick="1 repeat, a tenth of the requests")
    if args.quick:
        REPEATS, REQUESTS = 1, {c: n // 10 for c, n in REQUESTS.items()}
    watch = common.Watch()
    with common.running_server() as server:
        client = server.client()
        seed(client)
        env = common.environment(client)
        print(f"redis-server {env['redis_version']} on 127.0.0.1:{server.port}, "
              f"nproc={env['nproc']}", flush=True)
        rows = run_all(client, server.port)
        check_keys(client)
        client.close()
    env.update(watch.fields())
    lines = table(rows)
    common.show(lines, verdict(rows))
    common.write_report(
        NAME, title="Tensor ops vs plain Redis strings", env=env,
        about=[
            f"- payload: 1 KB (256 float32) per value; `-P 1`, no `--threads`; "
            f"{REPEATS} interleaved repeats, medians shown",
            "- requests per run: " + ", ".join(f"{REQUESTS[c]:,} at {c} client(s)"
                                                for c in CLIENTS),
        ],
        body=[
            *lines,
            "",
            "ratio = module req/s / plain req/s; per-repeat ratios: "
            + "; ".join(f"{r.operation} c={r.clients}: {r.ratio_per_repeat}" for r in rows),
            "",
            verdict(rows),
            "",
        ],
        data={"repeats": REPEATS, "payload_bytes": len(BLOB), "target_ratio": TARGET_RATIO,
              "rows": [asdict(r) for r in rows]},
        charts={"": lambda plt: draw_chart(plt, rows, env)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
