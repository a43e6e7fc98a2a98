"""Runs every benchmark script in benchmarks/, one after the other (what `make bench` calls).

A benchmark script is any benchmarks/*.py whose name does not start with "_" (shared
helpers such as _bench_common.py), other than this file. Each runs with this interpreter,
from the repository root, with a time limit, and writes its own results under
benchmarks/results/. A script that fails or overruns is reported and the next one still
runs; the exit status is non-zero if any failed.

How to run
    .venv/bin/python benchmarks/run_all.py [--only NAME ...] [--skip NAME ...] [--list]

    NAME is a script name without ".py" (e.g. peers). Extra arguments for one script can be
    given as NAME:ARG, e.g. --arg peers:--skip-torchserve.

    vs_redisai compares with the original RedisAI 1.2.7 only when REDISAI_PEER_DIR names a
    build of it; otherwise it says how to build one and counts as ok.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
TIME_LIMIT_S = 30 * 60  # per script
# Cheap, self-contained ones first; the long peer comparison last.
ORDER = ("tensor_ops", "model_overhead", "model_throughput", "main_thread_health", "batching",
         "dag_vs_commands", "vs_redisai", "peers")


def scripts() -> list[str]:
    names = [p.stem for p in BENCH_DIR.glob("*.py")
             if not p.name.startswith("_") and p.name != Path(__file__).name]
    return sorted(names, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def run(name: str, extra: list[str]) -> tuple[int | None, float]:
    """Run one script in its own process group; stop the group if it overruns."""
    argv = [sys.executable, str(BENCH_DIR / f"{name}.py"), *extra]
    print(f"\n=== {name}: {' '.join(argv[1:])}", flush=True)
    start = time.monotonic()
    proc = subprocess.Popen(argv, cwd=REPO_ROOT, start_new_session=True)
    try:
        code: int | None = proc.wait(timeout=TIME_LIMIT_S)
    except subprocess.TimeoutExpired:
        print(f"=== {name}: over {TIME_LIMIT_S} s, stopping it", flush=True)
        os.killpg(proc.pid, signal.SIGTERM)  # the group of the script we started
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        code = None
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        raise
    return code, time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", default=[], metavar="NAME")
    parser.add_argument("--skip", nargs="*", default=[], metavar="NAME")
    parser.add_argument("--arg", action="append", default=[], metavar="NAME:ARG",
                        help="pass ARG to script NAME (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the scripts and exit")
    args = parser.parse_args()
    names = scripts()
    unknown = [n for n in args.only + args.skip if n not in names]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {names}")
    if args.list:
        print("\n".join(names))
        return 0
    selected = [n for n in names if (not args.only or n in args.only) and n not in args.skip]
    extra: dict[str, list[str]] = {}
    for item in args.arg:
        name, _, value = item.partition(":")
        extra.setdefault(name, []).append(value)
    outcomes = []
    for name in selected:
        code, seconds = run(name, extra.get(name, []))
        outcomes.append((name, code, seconds))
    print("\n=== summary")
    for name, code, seconds in outcomes:
        status = "ok" if code == 0 else ("timed out" if code is None else f"failed ({code})")
        print(f"  {name:<20} {status:<12} {seconds:6.0f} s")
    print(f"results in {BENCH_DIR / 'results'}")
    return 0 if all(code == 0 for _, code, _ in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
