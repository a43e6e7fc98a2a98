"""Shared plumbing for the model benchmarks (model_overhead, model_throughput, main_thread_health).

Not a benchmark itself. It starts a private redis-server with the redisai_py module on a free
loopback port, stops it by PID, runs bounded redis-benchmark jobs, stores the fraud-detection
MLP from tests/model_builders.py, and writes result files. Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import redis

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_BENCHMARK = shutil.which("redis-benchmark") or "/usr/bin/redis-benchmark"
PORT_RANGE = (20000, 45000)  # below 55535, as the project asks

# The fraud-detection MLP: transaction [1, 30], reference [1, 256] -> [1, 2] (softmax).
TX_KEY, REF_KEY, SCORE_KEY = "tx", "ref", "score"
TX_FEATURES, REF_FEATURES = 30, 256

if str(REPO_ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "tests"))
import model_builders  # noqa: E402  (tests/model_builders.py)


# --------------------------------------------------------------------------- machine noise
# The machine may be shared: other work steals CPU from both server and client. These say how
# much CPU went to processes that are not ours (this one, its servers, its redis-benchmarks).

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_tracked: list[subprocess.Popen[Any]] = []
QUIET_FRACTION = 0.10
QUIET_MAX_WAIT_S = 60.0


def track(proc: subprocess.Popen[Any]) -> subprocess.Popen[Any]:
    """Count `proc` (a process we started and will reap) as ours in CpuMeter."""
    _tracked.append(proc)
    return proc


def _machine_busy_s() -> float:
    """CPU seconds, all CPUs together, spent not idle since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    return (sum(values) - values[3] - values[4]) / _TICKS_PER_S  # minus idle and iowait


def _own_cpu_s() -> float:
    """CPU seconds used by this process, its reaped children and its unreaped tracked ones."""
    t = os.times()
    total = t.user + t.system + t.children_user + t.children_system
    for proc in _tracked:
        if proc.returncode is not None:  # reaped: already in the children times
            continue
        try:
            stat = Path(f"/proc/{proc.pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # fields[11], [12]: utime, stime
        total += (int(fields[11]) + int(fields[12])) / _TICKS_PER_S
    return total


class CpuMeter:
    """Share of the machine's CPU that other processes used since the meter was made."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()
        self._busy0 = _machine_busy_s()
        self._own0 = _own_cpu_s()

    def foreign_fraction(self) -> float:
        elapsed = max(time.monotonic() - self._t0, 1e-3)
        foreign = (_machine_busy_s() - self._busy0) - (_own_cpu_s() - self._own0)
        return max(0.0, foreign / (elapsed * (os.cpu_count() or 1)))


def wait_for_quiet() -> float:
    """Wait (at most QUIET_MAX_WAIT_S) until other processes use < QUIET_FRACTION of the CPU
    over 2 s; return the last share measured."""
    deadline = time.monotonic() + QUIET_MAX_WAIT_S
    while True:
        meter = CpuMeter()
        time.sleep(2.0)
        share = meter.foreign_fraction()
        if share < QUIET_FRACTION or time.monotonic() > deadline:
            break
        print(f"waiting for a quieter machine: other processes use {share:.0%} of the CPU",
              flush=True)
    if share >= QUIET_FRACTION:
        print(f"note: starting anyway, other processes use {share:.0%} of the CPU", flush=True)
    return share


def noise_fields(before: float, meter: CpuMeter) -> dict[str, str]:
    """env entries for the CPU share other processes used before and during the run."""
    during = meter.foreign_fraction()
    if during >= QUIET_FRACTION:
        print(f"WARNING: other processes used {during:.0%} of the machine's CPU during the run; "
              "the numbers are disturbed, rerun on a quiet machine", flush=True)
    return {"foreign_cpu_before": f"{before:.1%}", "foreign_cpu_during": f"{during:.1%}"}


# --------------------------------------------------------------------------- server


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(200):
        port = rng.randrange(*PORT_RANGE)
        if port_is_free(port):
            return port
    raise RuntimeError("no free loopback port in %d-%d" % PORT_RANGE)


def module_path() -> str:
    out = subprocess.run([sys.executable, "-m", "redisai_py", "module-path"],
                         check=True, capture_output=True, text=True, timeout=60)
    return out.stdout.strip()


@dataclass
class Server:
    """A running private redis-server."""

    proc: subprocess.Popen[bytes]
    port: int
    workdir: Path
    module_args: tuple[str, ...]

    def client(self, timeout_s: float = 30.0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=timeout_s)

    def log_tail(self, lines: int = 30) -> str:
        path = self.workdir / "redis.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _start(workdir: Path, port: int, module: str,
           module_args: Sequence[str]) -> subprocess.Popen[bytes]:
    argv = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(workdir),
            "--logfile", str(workdir / "redis.log"), "--loadmodule", module, *module_args]
    return track(subprocess.Popen(argv, cwd=workdir, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.STDOUT))


def _wait_ready(proc: subprocess.Popen[bytes], port: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {proc.returncode}")
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("redis-server did not answer PING in time")
    finally:
        client.close()


def stop_pid(proc: subprocess.Popen[Any], timeout_s: float = 10.0) -> None:
    """SIGTERM the process we started (by its PID), SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout_s)


@contextlib.contextmanager
def running_server(module_args: Sequence[str] = ()) -> Iterator[Server]:
    """A redis-server with the module (and `module_args`) in a temporary directory."""
    module = module_path()
    with tempfile.TemporaryDirectory(prefix="redisai_py_bench_") as tmp:
        port = free_port()
        proc = _start(Path(tmp), port, module, module_args)
        server = Server(proc, port, Path(tmp), tuple(module_args))
        try:
            _wait_ready(proc, port)
            yield server
        except BaseException:
            tail = server.log_tail()
            if tail:
                print(f"--- redis.log (last lines) ---\n{tail}", file=sys.stderr)
            raise
        finally:
            stop_pid(proc)


# --------------------------------------------------------------------------- models


def ok(reply: object) -> bool:
    return reply in (b"OK", "OK", True)


def fraud_inputs() -> tuple[np.ndarray, np.ndarray]:
    return model_builders.mlp_inputs(batch=1, in_features=TX_FEATURES, ref_features=REF_FEATURES)


def store_fraud_models(client: redis.Redis, keys: dict[str, str]) -> dict[str, bytes]:
    """Store the fraud MLP under keys[backend] for backend in TORCH/ONNX, plus tx and ref.

    Returns the model blobs by backend. Checks one run of each against the numpy reference.
    """
    blobs = {"TORCH": model_builders.torch_mlp(), "ONNX": model_builders.onnx_mlp()}
    tx, ref = fraud_inputs()
    assert ok(client.execute_command("AI.TENSORSET", TX_KEY, "FLOAT", 1, TX_FEATURES,
                                     "BLOB", tx.tobytes()))
    assert ok(client.execute_command("AI.TENSORSET", REF_KEY, "FLOAT", 1, REF_FEATURES,
                                     "BLOB", ref.tobytes()))
    expected = model_builders.mlp_reference(model_builders.mlp_weights(), tx, ref)
    for backend, key in keys.items():
        reply = client.execute_command("AI.MODELSTORE", key, backend, "CPU", "BLOB", blobs[backend])
        assert ok(reply), f"AI.MODELSTORE {key} {backend}: {reply!r}"
        reply = client.execute_command(*execute_args(key))
        assert ok(reply), f"AI.MODELEXECUTE {key}: {reply!r}"
        got = np.frombuffer(client.execute_command("AI.TENSORGET", SCORE_KEY, "BLOB"),
                            dtype=np.float32).reshape(expected.shape)
        assert np.allclose(got, expected, atol=1e-5), f"{key}: {got} != {expected}"
    return blobs


def execute_args(model_key: str) -> tuple[str, ...]:
    return ("AI.MODELEXECUTE", model_key, "INPUTS", "2", TX_KEY, REF_KEY, "OUTPUTS", "1", SCORE_KEY)


@dataclass(frozen=True)
class RunInfo:
    duration_us: int
    calls: int
    errors: int
    samples: int


def run_info(client: redis.Redis, model_key: str) -> RunInfo:
    reply = client.execute_command("AI.INFO", model_key)
    fields = {reply[i].decode(): reply[i + 1] for i in range(0, len(reply), 2)}
    return RunInfo(int(fields["duration"]), int(fields["calls"]), int(fields["errors"]),
                   int(fields["samples"]))


def reset_run_info(client: redis.Redis, model_key: str) -> None:
    assert ok(client.execute_command("AI.INFO", model_key, "RESETSTAT"))


# --------------------------------------------------------------------------- redis-benchmark


@dataclass
class BenchSample:
    """One redis-benchmark run, as its --csv line reports it."""

    rps: float
    avg_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


def parse_benchmark_csv(text: str) -> BenchSample:
    """Read redis-benchmark 7's --csv output (a header line, one data line)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if len(rows) != 1:
        raise RuntimeError(f"unexpected redis-benchmark output:\n{text[:500]}")
    row = rows[0]
    return BenchSample(rps=float(row["rps"]), avg_ms=float(row["avg_latency_ms"]),
                       p50_ms=float(row["p50_latency_ms"]), p95_ms=float(row["p95_latency_ms"]),
                       p99_ms=float(row["p99_latency_ms"]), max_ms=float(row["max_latency_ms"]))


def benchmark_argv(port: int, clients: int, requests: int, command: Sequence[str]) -> list[str]:
    return [REDIS_BENCHMARK, "-h", "127.0.0.1", "-p", str(port), "-c", str(clients),
            "-n", str(requests), "-P", "1", "--csv", "--precision", "3", *command]


def run_benchmark(port: int, clients: int, requests: int, command: Sequence[str],
                  timeout_s: float = 90.0) -> BenchSample:
    """One bounded redis-benchmark run (fails on a non-zero exit or a timeout)."""
    out = subprocess.run(benchmark_argv(port, clients, requests, command), check=True,
                         capture_output=True, text=True, timeout=timeout_s)
    return parse_benchmark_csv(out.stdout)


def command_stats(client: redis.Redis, command: str) -> dict[str, int]:
    name = f"cmdstat_{command.lower()}"
    stats = client.info("commandstats").get(name, {})
    return {k: int(stats.get(k, 0)) for k in ("calls", "failed_calls", "rejected_calls")}


# --------------------------------------------------------------------------- stats and reports


def percentiles_us(samples_ns: Sequence[int] | np.ndarray) -> dict[str, float]:
    """p50/p90/p99/max/mean of nanosecond samples, in microseconds."""
    a = np.asarray(samples_ns, dtype=np.float64) / 1000.0
    return {"n": int(a.size), "p50": float(np.percentile(a, 50)),
            "p90": float(np.percentile(a, 90)), "p99": float(np.percentile(a, 99)),
            "max": float(a.max()), "mean": float(a.mean())}


def environment(client: redis.Redis) -> dict[str, str]:
    so = Path(module_path())
    stat = so.stat()
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "loadavg_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "redis_version": str(client.info("server")["redis_version"]),
        "redis_benchmark": subprocess.run([REDIS_BENCHMARK, "--version"], capture_output=True,
                                          text=True, timeout=10).stdout.strip(),
        "module": str(so),
        "module_mtime": dt.datetime.fromtimestamp(stat.st_mtime, dt.timezone.utc)
                        .strftime("%Y-%m-%d %H:%M:%S UTC"),
        "git_head": subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
                                   capture_output=True, text=True, timeout=10).stdout.strip(),
    }


def header_lines(env: dict[str, str]) -> list[str]:
    """The Markdown bullet lines that say where and on what a result was measured."""
    return [
        f"- date: {env['date']}; machine: nproc={env['nproc']}, load average at start "
        f"{env['loadavg_at_start']}",
        f"- redis-server {env['redis_version']}, {env['redis_benchmark']}",
        f"- module: {env['module']} (built {env['module_mtime']}), git HEAD {env['git_head']}",
        f"- CPU used by other processes on this machine: {env.get('foreign_cpu_before', '?')} "
        f"just before, {env.get('foreign_cpu_during', '?')} during the run (above "
        f"{QUIET_FRACTION:.0%} the numbers are disturbed)",
    ]


def write_json(name: str, doc: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def write_markdown(name: str, lines: Sequence[str]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def pyplot() -> Any | None:
    """matplotlib.pyplot on the Agg backend, or None (with a note) when it is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib is not installed; skipping the PNG chart")
        return None
    return plt
