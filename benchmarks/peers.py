"""The seeds' fraud-detection loop on redisai_py, next to the servers users would pick instead.

What it measures
    Each request scores one transaction (1x30 float32) against 1 KB of reference data
    (1x256 float32) that lives in Redis, with the fraud MLP of tests/model_builders.py
    (softmax(relu(cat(tx, ref) @ w1 + b1) @ w2 + b2) -> 1x2). Every system runs on this
    machine, one after the other, at 1, 16 and 64 concurrent clients:

    * redisai_py (ours): one command per request,
      ``AI.DAGEXECUTE LOAD 1 ref |> AI.TENSORSET tx FLOAT 1 30 BLOB <120 bytes>
      |> AI.MODELEXECUTE fraud INPUTS 2 tx ref OUTPUTS 1 score |> AI.TENSORGET score BLOB``,
      with the model stored as TorchScript (``fraud``) and as ONNX (``fraud_onnx``); load from
      ``redis-benchmark -P 1`` (the transaction's bytes are chosen without NUL so that they can
      travel as a command-line argument). Measured with THREADS_PER_QUEUE 1 (the default) and 2,
      each on a fresh server.
    * plain Redis: ``GET`` of the same reference data stored as a 1 KB string: the ceiling of any
      Redis command on this machine (same server, same redis-benchmark settings).
    * a common REST peer: Flask behind gunicorn, 2 sync workers (benchmarks/rest_peer/app.py),
      one variant with the model in onnxruntime and one in torch (TorchScript), one framework
      thread per worker. Each request POSTs the 30 floats as JSON; the handler GETs the
      reference from the same Redis and runs the model. Load from ``wrk`` (one thread, a Lua
      script for the POST body), 8 s per point.
    * TorchServe 0.12 serving the TorchScript model with a custom handler that also GETs the
      reference from Redis (benchmarks/rest_peer/torchserve_handler.py), 2 workers, installed
      with ``--no-deps`` into a venv of its own (TORCHSERVE_VENV) that reuses this project's
      CPU torch through a .pth file. If it cannot be installed or started, the results say
      why and the rest still runs.

    Before the load, every system's answer is checked against the numpy reference. After each
    redis-benchmark run the server must show exactly the requests sent, none failed
    (commandstats), and AI.INFO must count every run with no errors. wrk runs report HTTP
    errors and socket errors, which are shown in the table.

    Ratios: ours / REST peer (same framework), ours / GET (same server), ours / TorchServe.
    Goals: ours >= 10x the REST peer and >= 0.5x plain GET (RedisAI 1.2.7 did this DAG at
    0.36-0.46x GET on this machine; the REST peer measured ~2.6k req/s and TorchServe ~1.3k
    at 16 connections).

How to run
    .venv/bin/python benchmarks/peers.py [--skip-torchserve] [--quick]

    This file drives the run and writes the report; each peer lives in a file of its own:
    _peers_redis.py (ours and GET, redis-benchmark), _peers_rest.py (Flask + gunicorn),
    _peers_torchserve.py (TorchServe), with what they share in _peers_common.py (settings,
    inputs, wrk). The original RedisAI 1.2.7 as a peer is vs_redisai.py.

    It starts its own redis-servers, gunicorns and TorchServe on free loopback ports and stops
    each by PID. Results go to benchmarks/results/peers.{md,json}, peers.png (throughput vs
    clients) and peers_latency.png (p50/p99 bars). It takes about 5-7 minutes (plus a one-time
    TorchServe install of about a minute).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

import _bench_common as common
from _peers_common import (CLIENTS, QUIET, REF, REF_STRING, SYSTEMS, THREADS, WRK, WRK_TIMEOUT_S,
                           Point, S)
from _peers_redis import resp_phase
from _peers_rest import rest_phase
from _peers_torchserve import TORCHSERVE_DEPS, TORCHSERVE_VENV, TORCHSERVE_VERSION, torchserve_phase

NAME = "peers"
GOAL_VS_REST = 10.0
GOAL_VS_GET = 0.5


# --------------------------------------------------------------------------- reports


def point_of(points: list[Point], system: str, clients: int) -> Point | None:
    for p in points:
        if p.system == system and p.clients == clients:
            return p
    return None


def ratios(points: list[Point]) -> list[dict[str, Any]]:
    rows = []
    for clients in CLIENTS:
        row: dict[str, Any] = {"clients": clients}

        def ratio(a: str, b: str) -> float | None:
            """Median of per-repeat ratios where both ran in the same repeats (same server,
            back to back: cancels slow drifts of the machine), else the ratio of medians."""
            pa, pb = point_of(points, a, clients), point_of(points, b, clients)
            if not (pa and pb and pb.rps > 0):
                return None
            if len(pa.runs) == len(pb.runs) > 1:
                return statistics.median(x["rps"] / y["rps"] for x, y in zip(pa.runs, pb.runs))
            return pa.rps / pb.rps

        for t in THREADS:
            row[f"torch_tpq{t}_vs_rest_torch"] = ratio(f"ours_torch_tpq{t}", "rest_torch")
            row[f"onnx_tpq{t}_vs_rest_onnx"] = ratio(f"ours_onnx_tpq{t}", "rest_onnx")
            row[f"torch_tpq{t}_vs_get"] = ratio(f"ours_torch_tpq{t}", f"get_tpq{t}")
            row[f"onnx_tpq{t}_vs_get"] = ratio(f"ours_onnx_tpq{t}", f"get_tpq{t}")
            row[f"torch_tpq{t}_vs_torchserve"] = ratio(f"ours_torch_tpq{t}", "torchserve")
        rows.append(row)
    return rows


def fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def results_table(points: list[Point]) -> list[str]:
    lines = ["| system | clients | req/s | p50 ms | p99 ms | errors | model us/call |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for system in SYSTEMS:
        for clients in CLIENTS:
            p = point_of(points, system, clients)
            if p:
                worker = "" if p.worker_us_per_call is None else f"{p.worker_us_per_call:.1f}"
                lines.append(f"| {p.label} | {clients} | {p.rps:,.0f} | {p.p50_ms:.3f} | "
                             f"{p.p99_ms:.3f} | {p.errors} | {worker} |")
    return lines


def cpu_table(points: list[Point]) -> list[str]:
    lines = ["| system | clients | CPU us per request, by process | total CPU us/request | "
             "req/s the 2 cores allow at that cost |",
             "|---|---:|---|---:|---:|"]
    for system in SYSTEMS:
        for clients in CLIENTS:
            p = point_of(points, system, clients)
            if p and p.cpu_us_per_request:
                total = sum(p.cpu_us_per_request.values())
                parts = ", ".join(f"{k} {v:.1f}" for k, v in p.cpu_us_per_request.items())
                cap = (os.cpu_count() or 1) * 1e6 / total if total > 0 else float("nan")
                lines.append(f"| {p.label} | {clients} | {parts} | {total:.1f} | {cap:,.0f} |")
    return lines


def ratio_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| clients | TPQ | TORCH DAG / REST torch | ONNX DAG / REST onnx | TORCH DAG / GET | "
             "ONNX DAG / GET | TORCH DAG / TorchServe |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        for t in THREADS:
            lines.append(
                f"| {row['clients']} | {t} | **{fmt(row[f'torch_tpq{t}_vs_rest_torch'], 1)}x** | "
                f"{fmt(row[f'onnx_tpq{t}_vs_rest_onnx'], 1)}x | "
                f"**{fmt(row[f'torch_tpq{t}_vs_get'], 3)}** | {fmt(row[f'onnx_tpq{t}_vs_get'], 3)} | "
                f"{fmt(row[f'torch_tpq{t}_vs_torchserve'], 1)}x |")
    return lines


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for t in THREADS:
        vs_rest = [r[f"{b}_tpq{t}_vs_rest_{b}"] for r in rows for b in ("torch", "onnx")]
        vs_get = [r[f"{b}_tpq{t}_vs_get"] for r in rows for b in ("torch", "onnx")]
        vs_rest = [x for x in vs_rest if x is not None]
        vs_get = [x for x in vs_get if x is not None]
        if vs_rest:
            low = min(vs_rest)
            out.append(f"- THREADS_PER_QUEUE {t}: ours / REST peer (same framework) >= "
                       f"{GOAL_VS_REST:g}x: {'met' if low >= GOAL_VS_REST else 'NOT met'} "
                       f"(lowest {low:.1f}x over all client counts and both frameworks)")
        if vs_get:
            low = min(vs_get)
            out.append(f"- THREADS_PER_QUEUE {t}: ours / GET >= {GOAL_VS_GET}: "
                       f"{'met' if low >= GOAL_VS_GET else 'NOT met'} (lowest {low:.3f}, "
                       f"highest {max(vs_get):.3f}; RedisAI 1.2.7: 0.36-0.46)")
    return out


def about(env: dict[str, str]) -> list[str]:
    return [
        QUIET.note() + "; each run's share is in the JSON; points that kept a disturbed run: "
        f"{env.get('runs_kept_although_disturbed', '?')}",
        f"- wrk {env.get('wrk', '?')}; {env.get('gunicorn', '?')}; Flask {env.get('flask', '?')}; "
        f"torch {env.get('torch', '?')}; onnxruntime {env.get('onnxruntime', '?')}; "
        f"java: {env.get('java', '?')}",
        "- request: score one 1x30 float32 transaction against a 1x256 float32 reference (1 KB) "
        "kept in Redis, with the fraud MLP of tests/model_builders.py",
        "- ours: `AI.DAGEXECUTE LOAD 1 ref |> AI.TENSORSET tx FLOAT 1 30 BLOB <120 bytes> "
        "|> AI.MODELEXECUTE fraud INPUTS 2 tx ref OUTPUTS 1 score |> AI.TENSORGET score BLOB`; "
        f"`redis-benchmark -P 1`, ~{S.run_seconds:g} s per run, {S.repeats} interleaved repeats, "
        "medians; TPQ = THREADS_PER_QUEUE, each on a fresh server; GET of the 1 KB reference "
        "string on the same server is the ceiling",
        f"- REST peer: benchmarks/rest_peer/app.py under gunicorn, 2 sync workers, one framework "
        f"thread each, GET of the reference from the same Redis per request; TorchServe: "
        f"benchmarks/rest_peer/torchserve_handler.py, 2 workers, same loop; load: "
        f"`wrk -t 1 --timeout {WRK_TIMEOUT_S}s -d {S.duration_s}s` with a POST of the 30 floats as "
        f"JSON, one run per point after a {S.warmup_s} s warm-up (gunicorn's sync workers close "
        "the connection after each response, so wrk connects anew per request: part of that "
        "peer's cost as deployed this way)",
        "- model us/call: AI.INFO duration / calls during the runs: the worker's time in the "
        "model op (adapter + framework), not the whole DAG",
        "- errors: HTTP non-2xx plus socket errors (connect/read/write/timeout) that wrk saw; "
        "redis-benchmark runs are checked for zero failed calls",
        "- everything on this machine's loopback, one system at a time",
    ]


def body(points: list[Point], rows: list[dict[str, Any]], torchserve_note: str | None) -> list[str]:
    return [
        "## Results",
        "",
        *results_table(points),
        "",
        "## Ratios (req/s over req/s at the same client count)",
        "",
        "ours / GET: median of the per-repeat ratios (GET and the DAGs run back to back on the "
        "same server in each repeat); the others: ratio of the medians",
        "",
        *ratio_table(rows),
        "",
        *verdicts(rows),
        "",
        "## Where the CPU went",
        "",
        "CPU time (utime + stime from /proc, and the load generator's rusage) per request during "
        "the runs, medians over the repeats. On this 2-core machine the load generator, the "
        "server's main thread and its worker threads share the same two cores, so the sum bounds "
        "the throughput (last column) unless one thread is saturated first.",
        "",
        *cpu_table(points),
        "",
        "## TorchServe",
        "",
        (f"TorchServe {TORCHSERVE_VERSION} was installed with `pip install --no-deps torchserve "
         f"torch-model-archiver` plus {', '.join(TORCHSERVE_DEPS)} into {TORCHSERVE_VENV}, "
         "reusing this project's CPU torch through a .pth file, and ran on the machine's Java."
         if torchserve_note is None else
         f"TorchServe was **not measured**: {torchserve_note}"),
        "",
    ]


def draw_throughput(plt: Any, points: list[Point], env: dict[str, str]) -> Any:
    fig, ax = plt.subplots(figsize=(12, 5.5))
    styles = {"ours": "-o", "get": "--s", "rest": "-^", "torchserve": "-v"}
    for system, (label, _) in SYSTEMS.items():
        pts = [point_of(points, system, c) for c in CLIENTS]
        if not all(pts):
            continue
        style = next(v for k, v in styles.items() if system.startswith(k))
        ax.plot(CLIENTS, [p.rps for p in pts], style, label=label)  # type: ignore[union-attr]
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(CLIENTS, [str(c) for c in CLIENTS])
    ax.set_xlabel("concurrent clients / connections")
    ax.set_ylabel("requests / second (log)")
    ax.set_title(f"Fraud-detection loop throughput — nproc={env['nproc']}, redis "
                 f"{env['redis_version']}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def draw_latency(plt: Any, points: list[Point]) -> Any:
    fig, axes = plt.subplots(1, len(CLIENTS), figsize=(14, 5.5), sharey=True)
    systems = [s for s in SYSTEMS if any(p.system == s for p in points)]
    for ax, clients in zip(axes, CLIENTS):
        pts = [point_of(points, s, clients) for s in systems]
        xs = np.arange(len(systems))
        ax.bar(xs - 0.2, [p.p50_ms if p else 0 for p in pts], 0.4, label="p50")
        ax.bar(xs + 0.2, [p.p99_ms if p else 0 for p in pts], 0.4, label="p99")
        ax.set_xticks(xs, [SYSTEMS[s][0].replace(", ", "\n", 1) for s in systems],
                      rotation=60, ha="right", fontsize=7)
        ax.set_yscale("log")
        ax.set_title(f"{clients} client{'s' if clients > 1 else ''}", fontsize=10)
        ax.grid(True, axis="y", which="both", alpha=0.3)
    axes[0].set_ylabel("latency ms (log)")
    axes[0].legend()
    fig.suptitle("Fraud-detection loop latency percentiles", fontsize=11)
    return fig


def versions() -> dict[str, str]:
    def run(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return "?"
        return (out.stdout + out.stderr).strip().splitlines()[0] if (out.stdout + out.stderr).strip() else "?"

    import flask  # noqa: F401  (installed for the REST peer)
    import onnxruntime
    import torch
    from importlib.metadata import version

    return {"wrk": run([WRK, "--version"]).split(" [")[0],
            "gunicorn": f"gunicorn {version('gunicorn')}", "flask": version("flask"),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "java": run(["java", "-version"])}


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-torchserve", action="store_true")
    args = common.parse_args(None, quick="1 repeat, 1 s redis-benchmark runs, 2 s wrk runs",
                             parser=parser)
    if args.quick:
        S.quick()
    for tool in (WRK, common.REDIS_BENCHMARK):
        if not Path(tool).exists():
            print(f"{tool} is missing (apt-get install wrk redis-tools)", file=sys.stderr)
            return 2
    watch = common.Watch()
    points: list[Point] = []
    env: dict[str, str] = {}
    for threads in THREADS:
        got, env_t = resp_phase(threads)
        points += got
        env = env or env_t
    torchserve_note: str | None = "skipped (--skip-torchserve)" if args.skip_torchserve else None
    # HTTP peers: they fetch the reference from a redis-server of their own (with the module,
    # as in production; nothing else runs on it).
    with common.running_server() as server, \
            tempfile.TemporaryDirectory(prefix="peers_bench_") as tmp:
        client = server.client()
        assert client.set(REF_STRING, REF.tobytes())
        points += rest_phase(server, Path(tmp))
        if not args.skip_torchserve:
            ts_dir = Path(tmp) / "torchserve"
            ts_dir.mkdir()
            got, torchserve_note = torchserve_phase(server, ts_dir)
            points += got
        client.close()
    env.update(versions())
    env.update(watch.fields())
    disturbed = [f"{p.system} c={p.clients}" for p in points
                 if any(r.get("foreign_cpu", 0) >= common.QUIET_FRACTION for r in p.runs)]
    env["runs_kept_although_disturbed"] = ", ".join(disturbed) or "none"
    rows = ratios(points)
    common.show(results_table(points), "", ratio_table(rows), verdicts(rows))
    if torchserve_note:
        print(f"TorchServe: {torchserve_note}")
    common.write_report(
        NAME, title="Fraud-detection loop: redisai_py vs REST peers, TorchServe and plain GET",
        env=env, about=about(env), body=body(points, rows, torchserve_note),
        data={"clients": list(CLIENTS), "repeats": S.repeats, "goal_vs_rest": GOAL_VS_REST,
              "goal_vs_get": GOAL_VS_GET, "torchserve_note": torchserve_note,
              "points": [asdict(p) for p in points], "ratios": rows},
        charts={"": lambda plt: draw_throughput(plt, points, env),
                "_latency": lambda plt: draw_latency(plt, points)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
