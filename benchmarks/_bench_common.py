"""Shared plumbing for the benchmark scripts in benchmarks/.

Not a benchmark itself. It starts a private redis-server with the redisai_py module (or another
module, e.g. the original RedisAI) on a free loopback port and stops it by PID, runs bounded
redis-benchmark jobs, reads the CPU time of processes and threads from /proc, watches how much
CPU other processes take from a run (and redoes disturbed runs), stores the fraud-detection MLP
from tests/model_builders.py, and holds the skeleton every script's main() shares: the command
line (--quick), the report (Markdown + JSON + PNG chart) and its header. Everything stays on
127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
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


# --------------------------------------------------------------------------- CPU of processes
# utime + stime from /proc (clock ticks, 10 ms): precise enough over runs of a few seconds.

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _stat_fields(path: str) -> list[str] | None:
    """The fields of a /proc/.../stat file after the command name (None if it is gone)."""
    try:
        return Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _stat_cpu_s(path: str) -> float:
    """utime + stime of a /proc/.../stat file, in seconds (0 if it is gone)."""
    fields = _stat_fields(path)
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


def thread_cpu_s(pid: int, tid: int) -> float:
    """CPU seconds of one thread of process `pid`."""
    return _stat_cpu_s(f"/proc/{pid}/task/{tid}/stat")


def process_cpu_s(pid: int) -> float:
    """CPU seconds of process `pid`, all its threads together."""
    return _stat_cpu_s(f"/proc/{pid}/stat")


def server_cpu_s(pid: int) -> tuple[float, float]:
    """(main thread, all other threads) CPU seconds of a redis-server."""
    main = thread_cpu_s(pid, pid)
    return main, process_cpu_s(pid) - main


def _thread_role(pid: int, tid: int) -> str:
    """What a redis-server thread does, from its name: the module names its run
    queues' workers ai:<QUEUE>.<n> (threads they start, such as a backend's
    intra-op pool, inherit the name); Redis's own and the libraries' others."""
    if tid == pid:
        return "main"
    try:
        name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
    except OSError:
        return "other"
    return name[3:].rsplit(".", 1)[0] if name.startswith("ai:") else "other"


def server_thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds of a redis-server's threads by role: "main", each run queue
    by its name ("CPU", "FUNCTIONS", "LOADER", ...) and "other"."""
    roles: dict[str, float] = {}
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return roles
    for tid in tids:
        role = _thread_role(pid, tid)
        roles[role] = roles.get(role, 0.0) + thread_cpu_s(pid, tid)
    return roles


def children_of(pid: int, tid: int | None = None) -> list[int]:
    """Child processes that thread `tid` (default: the main thread) of `pid` started."""
    try:
        text = Path(f"/proc/{pid}/task/{tid or pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _descendants(pid: int) -> Iterator[int]:
    """`pid` and every live process below it."""
    todo = [pid]
    while todo:
        p = todo.pop()
        yield p
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            todo += children_of(p, int(tid))


def tree_cpu_s(pid: int, reaped: bool = False) -> float:
    """CPU seconds of a process and all its live descendants; with `reaped`, also of the
    children each of them has waited for."""
    last = 15 if reaped else 13
    total = 0.0
    for p in _descendants(pid):
        fields = _stat_fields(f"/proc/{p}/stat")
        if fields is not None:
            total += sum(int(x) for x in fields[11:last]) / _TICKS_PER_S
    return total


def reaped_children_cpu_s() -> float:
    """CPU seconds of this process's waited-for children (e.g. finished load generators)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------- machine noise
# The machine may be shared: other work steals CPU from both server and client. These say how
# much CPU went to processes that are not ours: not this process, nor anything it started
# (servers, load generators, client pools, their children), live or reaped.

QUIET_FRACTION = 0.10
QUIET_MAX_WAIT_S = 60.0


def track(proc: subprocess.Popen[Any]) -> subprocess.Popen[Any]:
    """Mark `proc` as ours. Every process this one starts already counts as ours (CpuMeter
    walks the process tree); kept so that callers can say so where they start one."""
    return proc


def _machine_busy_s() -> float:
    """CPU seconds, all CPUs together, spent not idle since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    return (sum(values) - values[3] - values[4]) / _TICKS_PER_S  # minus idle and iowait


def _own_cpu_s() -> float:
    """CPU seconds used by this process, its live descendants and the children they reaped."""
    return tree_cpu_s(os.getpid(), reaped=True)


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


def wait_for_quiet(max_wait_s: float | None = None, window_s: float = 2.0,
                   verbose: bool = True) -> float:
    """Wait (at most `max_wait_s`, default QUIET_MAX_WAIT_S) until other processes use
    < QUIET_FRACTION of the CPU over `window_s`; return the last share measured."""
    deadline = time.monotonic() + (QUIET_MAX_WAIT_S if max_wait_s is None else max_wait_s)
    while True:
        meter = CpuMeter()
        time.sleep(window_s)
        share = meter.foreign_fraction()
        if share < QUIET_FRACTION or time.monotonic() > deadline:
            break
        if verbose:
            print(f"waiting for a quieter machine: other processes use {share:.0%} of the CPU",
                  flush=True)
    if share >= QUIET_FRACTION and verbose:
        print(f"note: starting anyway, other processes use {share:.0%} of the CPU", flush=True)
    return share


def noise_fields(before: float, meter: CpuMeter) -> dict[str, str]:
    """env entries for the CPU share other processes used before and during the run."""
    during = meter.foreign_fraction()
    if during >= QUIET_FRACTION:
        print(f"WARNING: other processes used {during:.0%} of the machine's CPU during the run; "
              "the numbers are disturbed, rerun on a quiet machine", flush=True)
    return {"foreign_cpu_before": f"{before:.1%}", "foreign_cpu_during": f"{during:.1%}"}


class QuietRetry:
    """Runs that other processes disturbed are redone after a short wait for quiet.

    run(what, fn) calls fn() (which returns a run's dict) and records the CPU share other
    processes used meanwhile as run["foreign_cpu"]. At or above QUIET_FRACTION the run is redone,
    at most `max_tries` times per run and `budget` extra runs per script; the least disturbed
    run is kept.
    """

    def __init__(self, max_tries: int, budget: int, wait_s: float = 20.0) -> None:
        self.max_tries, self.budget, self.left, self.wait_s = max_tries, budget, budget, wait_s

    def run(self, what: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        best: dict[str, Any] | None = None
        for attempt in range(self.max_tries):
            meter = CpuMeter()
            run = fn()
            run["foreign_cpu"] = round(meter.foreign_fraction(), 4)
            if best is None or run["foreign_cpu"] < best["foreign_cpu"]:
                best = run
            if (run["foreign_cpu"] < QUIET_FRACTION or attempt == self.max_tries - 1
                    or self.left <= 0):
                break
            self.left -= 1
            print(f"    {what}: other processes used {run['foreign_cpu']:.0%} of the CPU, "
                  "running it again", flush=True)
            wait_for_quiet(self.wait_s, window_s=1.0, verbose=False)
        assert best is not None
        return best

    def note(self) -> str:
        """The Markdown bullet that says how disturbed runs were handled."""
        return (f"- a run during which other processes used >= {QUIET_FRACTION:.0%} of the CPU "
                f"is redone after a short wait (at most {self.max_tries} tries per run, "
                f"{self.budget} extra runs in all; the least disturbed is kept)")


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
def running_server(module_args: Sequence[str] = (), module: str | None = None) -> Iterator[Server]:
    """A redis-server with `module` (default: this project's shim) and `module_args`, in a
    temporary directory."""
    module = module or module_path()
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


def nul_free_transaction(seed: int = 7) -> np.ndarray:
    """A 1x30 float32 transaction whose 120 bytes contain no NUL, so that redis-benchmark can
    take them as a command-line argument."""
    rng = np.random.default_rng(seed)
    while True:
        tx = rng.standard_normal((1, TX_FEATURES)).astype(np.float32)
        if b"\0" not in tx.tobytes():
            return tx


def dag_loop_args(model_key: str, tx: bytes, reply: str = "BLOB") -> list[bytes]:
    """The seeds' fraud loop as one command: set the transaction, run the model against the
    stored reference, read the score (as BLOB or VALUES), all inside one AI.DAGEXECUTE."""
    return [b"AI.DAGEXECUTE", b"LOAD", b"1", REF_KEY.encode(),
            b"|>", b"AI.TENSORSET", b"tx", b"FLOAT", b"1", str(TX_FEATURES).encode(), b"BLOB", tx,
            b"|>", b"AI.MODELEXECUTE", model_key.encode(), b"INPUTS", b"2", b"tx",
            REF_KEY.encode(), b"OUTPUTS", b"1", b"score",
            b"|>", b"AI.TENSORGET", b"score", reply.encode()]


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


Arg = str | bytes


def parse_benchmark_csv(text: str) -> BenchSample:
    """Read redis-benchmark 7's --csv output (a header line, one data line).

    The data line's first column repeats the command, binary arguments included, so only its
    last seven quoted numbers are read: rps, avg, min, p50, p95, p99, max.
    """
    lines = text.strip().splitlines()
    numbers = re.findall(r'"([0-9.]+)"', lines[-1]) if len(lines) >= 2 else []
    if not lines[0].startswith('"test","rps"') or len(numbers) < 7:
        raise RuntimeError(f"unexpected redis-benchmark output:\n{text[:500]}")
    rps, avg, _, p50, p95, p99, p_max = map(float, numbers[-7:])
    return BenchSample(rps=rps, avg_ms=avg, p50_ms=p50, p95_ms=p95, p99_ms=p99, max_ms=p_max)


def benchmark_argv(port: int, clients: int, requests: int, command: Sequence[Arg],
                   keyspace: int | None = None) -> list[Arg]:
    """redis-benchmark's argv; `keyspace` (-r) makes __rand_int__ in `command` vary."""
    return [REDIS_BENCHMARK, "-h", "127.0.0.1", "-p", str(port), "-c", str(clients),
            "-n", str(requests), "-P", "1", "--csv", "--precision", "3",
            *(["-r", str(keyspace)] if keyspace else []), *command]


def run_benchmark(port: int, clients: int, requests: int, command: Sequence[Arg],
                  timeout_s: float = 90.0, keyspace: int | None = None) -> BenchSample:
    """One bounded redis-benchmark run (fails on a non-zero exit or a timeout). `command` may
    hold bytes (a blob without NUL)."""
    out = subprocess.run(benchmark_argv(port, clients, requests, command, keyspace), check=True,
                         capture_output=True, timeout=timeout_s)
    return parse_benchmark_csv(out.stdout.decode("latin-1"))


def checked_benchmark(client: redis.Redis, port: int, clients: int, requests: int,
                      command: Sequence[Arg], timeout_s: float = 90.0,
                      keyspace: int | None = None) -> BenchSample:
    """run_benchmark after CONFIG RESETSTAT; the server must then show exactly `requests`
    calls of the command, none failed or rejected."""
    client.config_resetstat()
    sample = run_benchmark(port, clients, requests, command, timeout_s, keyspace)
    name = command[0].decode() if isinstance(command[0], bytes) else command[0]
    stats = command_stats(client, name)
    if stats["calls"] != requests or stats["failed_calls"] or stats["rejected_calls"]:
        raise RuntimeError(f"{name} c={clients}: expected {requests} clean calls, "
                           f"commandstats {stats}")
    return sample


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


def interleaved(steps: dict[str, Callable[[], object]], n: int, warmup: int,
                on_warm: Callable[[], None] = lambda: None,
                time_limit_s: float = 120.0) -> dict[str, np.ndarray]:
    """Time every step once per iteration, the order rotating every iteration, so that slow
    drifts of the machine hit all steps alike; `on_warm` runs after `warmup` iterations.
    Returns nanoseconds per step (fewer than `n` if `time_limit_s` ran out)."""
    names = list(steps)
    calls = [steps[k] for k in names]
    k = len(calls)
    clock = time.perf_counter_ns
    for i in range(warmup):
        for j in range(k):
            calls[(i + j) % k]()
    on_warm()
    out = np.zeros((k, n), dtype=np.int64)
    deadline = time.monotonic() + time_limit_s
    done = n
    for i in range(n):
        for j in range(k):
            idx = (i + j) % k
            t0 = clock()
            calls[idx]()
            out[idx, i] = clock() - t0
        if (i & 255) == 0 and time.monotonic() > deadline:
            done = i + 1
            print(f"note: loop time limit reached after {done} iterations")
            break
    return {name: out[idx, :done] for idx, name in enumerate(names)}


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


def save_chart(name: str, draw: Callable[[Any], Any]) -> Path | None:
    """results/<name>.png from draw(pyplot) -> Figure; skipped (None) without matplotlib."""
    plt = pyplot()
    if plt is None:
        return None
    fig = draw(plt)
    fig.tight_layout()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def annotate_bars(ax: Any, bars: Any, texts: Sequence[str], fontsize: int = 9) -> None:
    """Write texts[i] just above the top of bars[i]."""
    for bar, text in zip(bars, texts):
        ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=fontsize)


# --------------------------------------------------------------------------- a script's main()


def parse_args(doc: str | None, quick: str | None = None,
               parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """The script's command line. With `quick` (what a smoke run cuts), --quick is offered: it
    says so and sends the results to benchmarks/results/quick/ (ignored by git), so that a
    smoke run never replaces the real results."""
    global RESULTS_DIR, QUIET_MAX_WAIT_S
    parser = parser or argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    if quick:
        parser.add_argument("--quick", action="store_true",
                            help=f"a smoke run ({quick}); results go to benchmarks/results/quick/")
    args = parser.parse_args()
    if getattr(args, "quick", False):
        RESULTS_DIR = RESULTS_DIR / "quick"
        QUIET_MAX_WAIT_S = 4.0
        print(f"--quick: a smoke run ({quick}); the numbers say nothing; results in {RESULTS_DIR}",
              flush=True)
    return args


class Watch:
    """What main() does around its measurement: wait for a quiet machine, then meter the CPU
    share other processes take until fields() is called."""

    def __init__(self) -> None:
        self.before = wait_for_quiet()
        self.meter = CpuMeter()

    def fields(self) -> dict[str, str]:
        return noise_fields(self.before, self.meter)


def show(*blocks: Sequence[str] | str) -> None:
    """Print tables (lists of lines) and verdicts (strings) after a blank line."""
    print()
    for block in blocks:
        print(block if isinstance(block, str) else "\n".join(block))


def write_report(name: str, *, title: str, env: dict[str, str], about: Sequence[str],
                 body: Sequence[str], data: dict[str, Any],
                 charts: dict[str, Callable[[Any], Any]] | None = None,
                 command: str | None = None) -> None:
    """results/<name>.md (title, where it ran, `about` bullets, how to reproduce, `body`),
    results/<name>.json ({"environment": env, **data}) and a PNG per chart (name + suffix)."""
    produced_by = command or f".venv/bin/python benchmarks/{name}.py"
    write_markdown(name, [f"# {title}", "", *header_lines(env), *about,
                          f"- produced by `{produced_by}`", "", *body])
    write_json(name, {"environment": env, **data})
    pngs = [save_chart(name + suffix, draw) for suffix, draw in (charts or {}).items()]
    extra = [p.name for p in pngs[1:] if p is not None]
    print(f"wrote {RESULTS_DIR}/{name}.{{md,json{',png' if pngs and pngs[0] else ''}}}"
          + (f" and {', '.join(extra)}" if extra else ""))
