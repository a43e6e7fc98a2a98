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
    .venv/bin/python benchmarks/tensor_ops.py

    It starts its own redis-server on a random free loopback port, in its own
    temporary directory, and stops it by PID at the end.  Results go to
    benchmarks/results/tensor_ops.{md,json,png} (the chart needs matplotlib;
    without it that step is skipped with a note).  It takes about 1-2 minutes.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import shutil
import statistics
import struct
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import redis

import _bench_common as common

REDIS_BENCHMARK = shutil.which("redis-benchmark") or "/usr/bin/redis-benchmark"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
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


@dataclass
class Sample:
    """One redis-benchmark run, as its --csv line reports it."""

    rps: float
    avg_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


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


def parse_csv(text: str) -> Sample:
    """Read redis-benchmark 7's --csv output (a header line, one data line)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if len(rows) != 1:
        raise RuntimeError(f"unexpected redis-benchmark output:\n{text[:500]}")
    row = rows[0]
    return Sample(rps=float(row["rps"]), avg_ms=float(row["avg_latency_ms"]),
                  p50_ms=float(row["p50_latency_ms"]), p95_ms=float(row["p95_latency_ms"]),
                  p99_ms=float(row["p99_latency_ms"]))


def command_stats(client: redis.Redis, command: str) -> dict[str, int]:
    stats = client.info("commandstats").get(f"cmdstat_{command.lower()}", {})
    return {k: int(stats.get(k, 0)) for k in ("calls", "failed_calls", "rejected_calls")}


def run_benchmark(client: redis.Redis, port: int, clients: int, requests: int,
                  command: tuple[str, ...]) -> Sample:
    """One bounded redis-benchmark run; every request must have succeeded."""
    client.config_resetstat()
    argv = [REDIS_BENCHMARK, "-h", "127.0.0.1", "-p", str(port), "-c", str(clients),
            "-n", str(requests), "-P", "1", "--csv", "--precision", "3", *command]
    out = subprocess.run(argv, check=True, capture_output=True, text=True,
                         timeout=RUN_TIMEOUT_S)
    stats = command_stats(client, command[0])
    if stats["calls"] != requests or stats["failed_calls"] or stats["rejected_calls"]:
        raise RuntimeError(f"{command[0]}: expected {requests} clean calls, got {stats}")
    return parse_csv(out.stdout)


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


def environment(client: redis.Redis) -> dict[str, str]:
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, timeout=10).stdout.strip()
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": nproc,
        "redis_version": str(client.info("server")["redis_version"]),
        "redis_benchmark": subprocess.run([REDIS_BENCHMARK, "--version"], capture_output=True,
                                          text=True, timeout=10).stdout.strip(),
    }


def verdict(rows: list[Row]) -> str:
    worst = min(rows, key=lambda r: r.ratio)
    ok = worst.ratio >= TARGET_RATIO
    return (f"target module/plain >= {TARGET_RATIO}: {'met' if ok else 'NOT met'} "
            f"(lowest ratio {worst.ratio:.3f}: {worst.operation}, {worst.clients} clients)")


def write_markdown(path: Path, rows: list[Row], env: dict[str, str]) -> None:
    text = [
        "# Tensor ops vs plain Redis strings",
        "",
        f"- date: {env['date']}",
        f"- machine: nproc={env['nproc']}",
        f"- redis-server {env['redis_version']}, {env['redis_benchmark']}",
        f"- payload: 1 KB (256 float32) per value; `-P 1`, no `--threads`; "
        f"{REPEATS} interleaved repeats, medians shown",
        "- requests per run: " + ", ".join(f"{REQUESTS[c]:,} at {c} client(s)" for c in CLIENTS),
        "- produced by `.venv/bin/python benchmarks/tensor_ops.py`",
        "",
        *table(rows),
        "",
        "ratio = module req/s / plain req/s; per-repeat ratios: "
        + "; ".join(f"{r.operation} c={r.clients}: {r.ratio_per_repeat}" for r in rows),
        "",
        verdict(rows),
        "",
    ]
    path.write_text("\n".join(text))


def write_json(path: Path, rows: list[Row], env: dict[str, str]) -> None:
    doc = {"environment": env, "repeats": REPEATS, "payload_bytes": len(BLOB),
           "target_ratio": TARGET_RATIO, "rows": [asdict(r) for r in rows]}
    path.write_text(json.dumps(doc, indent=2) + "\n")


def write_chart(path: Path, rows: list[Row], env: dict[str, str]) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib is not installed; skipping the PNG chart")
        return
    labels = [f"{r.operation.split(' vs ')[0]} / {r.operation.split(' vs ')[1]}\n"
              f"{r.clients} client{'s' if r.clients > 1 else ''}" for r in rows]
    xs = range(len(rows))
    width = 0.38
    fig, ax = plt.subplots(figsize=(9, 5))
    ax.bar([x - width / 2 for x in xs], [r.plain_rps for r in rows], width, label="plain Redis")
    bars = ax.bar([x + width / 2 for x in xs], [r.module_rps for r in rows], width,
                  label="redisai_py module")
    for bar, r in zip(bars, rows):
        ax.annotate(f"{r.ratio:.2f}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=9)
    ax.set_xticks(list(xs), labels, fontsize=9)
    ax.set_ylabel("requests / second (median)")
    ax.set_title(f"1 KB SET/GET vs AI.TENSORSET/TENSORGET — redis {env['redis_version']}, "
                 f"nproc={env['nproc']}, -P 1", fontsize=10)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- main


def main() -> int:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    with common.running_server() as server:
        client = server.client()
        seed(client)
        env = environment(client)
        print(f"redis-server {env['redis_version']} on 127.0.0.1:{server.port}, "
              f"nproc={env['nproc']}", flush=True)
        rows = run_all(client, server.port)
        check_keys(client)
        client.close()
    lines = table(rows)
    print()
    print("\n".join(lines))
    print(verdict(rows))
    write_markdown(RESULTS_DIR / "tensor_ops.md", rows, env)
    write_json(RESULTS_DIR / "tensor_ops.json", rows, env)
    write_chart(RESULTS_DIR / "tensor_ops.png", rows, env)
    print(f"wrote {RESULTS_DIR}/tensor_ops.{{md,json,png}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
