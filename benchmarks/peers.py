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
      script for the POST body), DURATION_S per point.
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

    It starts its own redis-servers, gunicorns and TorchServe on free loopback ports and stops
    each by PID. Results go to benchmarks/results/peers.{md,json}, peers.png (throughput vs
    clients) and peers_latency.png (p50/p99 bars). It takes about 5-7 minutes (plus a one-time
    TorchServe install of about a minute).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import redis

import _bench_common as common

NAME = "peers"
CLIENTS = (1, 16, 64)
REPEATS = 3                 # redis-benchmark points: interleaved repeats, medians shown
RUN_SECONDS = 3.0           # target length of one redis-benchmark run (request count calibrated)
MAX_REQUESTS = 400_000
DURATION_S = 8              # one wrk run per HTTP point
WRK_TIMEOUT_S = 5
WARMUP_S = 2
THREADS = (1, 2)            # THREADS_PER_QUEUE values for our module
GOAL_VS_REST = 10.0
GOAL_VS_GET = 0.5
REF_TENSOR, REF_STRING = "ref", "ref_bytes"
PEER_DIR = Path(__file__).resolve().parent / "rest_peer"
WRK = shutil.which("wrk") or "/usr/bin/wrk"
VENV_BIN = Path(sys.executable).parent
TORCHSERVE_VERSION = "0.12.0"
TORCHSERVE_VENV = Path(os.environ.get(
    "REDISAI_PY_TORCHSERVE_VENV",
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "redisai_py_bench"
    / "torchserve-venv"))
# torchserve's own dependencies (installed without its resolver, so no CUDA torch comes along).
TORCHSERVE_DEPS = ("Pillow", "psutil", "packaging", "wheel", "pyyaml", "enum-compat")

SYSTEMS = {
    # key: (label, kind)
    "ours_torch_tpq1": ("redisai_py DAG, TORCH (TPQ 1)", "resp"),
    "ours_onnx_tpq1": ("redisai_py DAG, ONNX (TPQ 1)", "resp"),
    "get_tpq1": ("Redis GET 1 KB (TPQ 1 server)", "resp"),
    "ours_torch_tpq2": ("redisai_py DAG, TORCH (TPQ 2)", "resp"),
    "ours_onnx_tpq2": ("redisai_py DAG, ONNX (TPQ 2)", "resp"),
    "get_tpq2": ("Redis GET 1 KB (TPQ 2 server)", "resp"),
    "rest_onnx": ("Flask+gunicorn (2 workers), onnxruntime", "http"),
    "rest_torch": ("Flask+gunicorn (2 workers), torch", "http"),
    "torchserve": ("TorchServe 0.12 (2 workers), TorchScript", "http"),
}


@dataclass
class Point:
    """One system at one client count (medians over its runs)."""

    system: str
    label: str
    clients: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int              # requests in one run (redis-benchmark) or completed (wrk)
    errors: int = 0            # HTTP non-2xx + socket errors (wrk); 0 for redis-benchmark
    worker_us_per_call: float | None = None  # ours: AI.INFO duration / calls (model op only)
    cpu_us_per_request: dict[str, float] = field(default_factory=dict)  # by process (medians)
    runs: list[dict[str, Any]] = field(default_factory=list)


# --------------------------------------------------------------------------- inputs


def transaction() -> np.ndarray:
    """A 1x30 float32 transaction whose 120 bytes contain no NUL (a command-line argument)."""
    rng = np.random.default_rng(7)
    while True:
        tx = rng.standard_normal((1, common.TX_FEATURES)).astype(np.float32)
        if b"\0" not in tx.tobytes():
            return tx


TX = transaction()
_, REF = common.fraud_inputs()
EXPECTED = common.model_builders.mlp_reference(common.model_builders.mlp_weights(), TX, REF)
POST_BODY = json.dumps({"transaction": [float(v) for v in TX.reshape(-1)]})


def dag_command(model_key: str) -> list[bytes]:
    return [b"AI.DAGEXECUTE", b"LOAD", b"1", REF_TENSOR.encode(),
            b"|>", b"AI.TENSORSET", b"tx", b"FLOAT", b"1", b"30", b"BLOB", TX.tobytes(),
            b"|>", b"AI.MODELEXECUTE", model_key.encode(), b"INPUTS", b"2", b"tx",
            REF_TENSOR.encode(), b"OUTPUTS", b"1", b"score",
            b"|>", b"AI.TENSORGET", b"score", b"BLOB"]


def check_score(what: str, got: Any) -> None:
    got = np.asarray(got, dtype=np.float32).reshape(EXPECTED.shape)
    if not np.allclose(got, EXPECTED, atol=1e-5):
        raise RuntimeError(f"{what}: wrong score {got.tolist()}, expected {EXPECTED.tolist()}")


# --------------------------------------------------------------------------- processes


def stop_tree(proc: subprocess.Popen[Any], timeout_s: float = 20.0) -> None:
    """SIGTERM `proc` (ours, by PID); SIGKILL it if it lingers."""
    common.stop_pid(proc, timeout_s)


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def _stat_cpu_s(path: str) -> float:
    """utime + stime of a /proc/.../stat file, in seconds (0 if it is gone)."""
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu_s(pid: int) -> tuple[float, float]:
    """(main thread, all other threads) CPU seconds of a redis-server."""
    main = _stat_cpu_s(f"/proc/{pid}/task/{pid}/stat")
    return main, _stat_cpu_s(f"/proc/{pid}/stat") - main


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and all its live descendants."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += _stat_cpu_s(f"/proc/{p}/stat")
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            todo += children_of_task(p, int(tid))
    return total


def children_of_task(pid: int, tid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
    except OSError:
        return []


def reaped_children_cpu_s() -> float:
    """CPU seconds of this process's waited-for children (the load generators)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------- machine noise
# The machine may be shared. A run during which processes outside this one's process tree
# used more than QUIET_FRACTION of the CPU is redone after a short wait for quiet (at most
# MAX_TRIES tries per run and RETRY_BUDGET extra runs per invocation); the run with the
# least foreign CPU is kept, and its share is recorded with it.

QUIET_FRACTION = 0.10
MAX_TRIES = 3
RETRY_BUDGET = 12
QUIET_WAIT_S = 20.0


def _machine_busy_s() -> float:
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def _own_tree_cpu_s() -> float:
    """CPU of this process, its live descendants and the children they reaped."""
    total, todo = 0.0, [os.getpid()]
    while todo:
        pid = todo.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
        for tid in tids:
            todo += children_of_task(pid, int(tid))
    return total


class Noise:
    """Share of the machine's CPU that processes outside this process tree used since made."""

    def __init__(self) -> None:
        self.t0, self.busy0, self.own0 = time.monotonic(), _machine_busy_s(), _own_tree_cpu_s()

    def foreign(self) -> float:
        elapsed = max(time.monotonic() - self.t0, 1e-3)
        foreign = (_machine_busy_s() - self.busy0) - (_own_tree_cpu_s() - self.own0)
        return max(0.0, foreign / (elapsed * (os.cpu_count() or 1)))


def wait_quiet(max_wait_s: float = QUIET_WAIT_S) -> float:
    deadline = time.monotonic() + max_wait_s
    while True:
        noise = Noise()
        time.sleep(1.0)
        share = noise.foreign()
        if share < QUIET_FRACTION or time.monotonic() > deadline:
            return share


_retries_left = RETRY_BUDGET


def quiet_run(what: str, fn: Any) -> dict[str, Any]:
    """fn() -> a run's dict; redone while other processes disturbed it (see above)."""
    global _retries_left
    best: dict[str, Any] | None = None
    for attempt in range(MAX_TRIES):
        noise = Noise()
        run = fn()
        run["foreign_cpu"] = round(noise.foreign(), 4)
        if best is None or run["foreign_cpu"] < best["foreign_cpu"]:
            best = run
        if run["foreign_cpu"] < QUIET_FRACTION or attempt == MAX_TRIES - 1 or _retries_left <= 0:
            break
        _retries_left -= 1
        print(f"    {what}: other processes used {run['foreign_cpu']:.0%} of the CPU, "
              "running it again", flush=True)
        wait_quiet()
    assert best is not None
    return best


def wait_http(url: str, proc: subprocess.Popen[Any], timeout_s: float, body: str | None = None,
              log: Path | None = None) -> bytes:
    """Until `url` answers 200 (POST `body` if given); fail if `proc` exits first."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}: {tail}")
        try:
            req = urllib.request.Request(url, data=body.encode() if body else None,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=5) as resp:
                if resp.status == 200:
                    return resp.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last = repr(exc)
        time.sleep(0.3)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"{url} did not answer within {timeout_s}s ({last}) {tail}")


# --------------------------------------------------------------------------- redis-benchmark


def redis_benchmark(port: int, clients: int, requests: int, command: Sequence[bytes],
                    server_pid: int) -> dict[str, float]:
    argv = [common.REDIS_BENCHMARK, "-h", "127.0.0.1", "-p", str(port), "-c", str(clients),
            "-n", str(requests), "-P", "1", "--csv", "--precision", "3", *command]
    main0, other0 = server_cpu_s(server_pid)
    load0 = reaped_children_cpu_s()
    out = subprocess.run(argv, check=True, capture_output=True, timeout=120)
    main1, other1 = server_cpu_s(server_pid)
    cpu = {"redis main thread": main1 - main0, "redis other threads": other1 - other0,
           "redis-benchmark": reaped_children_cpu_s() - load0}
    # The CSV's first column repeats the command, binary blob included: read the numbers only.
    last = out.stdout.decode("latin-1").strip().splitlines()[-1]
    numbers = re.findall(r'"([0-9.]+)"', last)[-7:]
    rps, avg, p_min, p50, p95, p99, p_max = map(float, numbers)
    return {"rps": rps, "avg_ms": avg, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99,
            "max_ms": p_max, "requests": requests,
            "cpu_us_per_request": {k: v * 1e6 / requests for k, v in cpu.items()}}


def checked_resp_run(client: redis.Redis, server: common.Server, clients: int, requests: int,
                     command: Sequence[bytes], model_key: str | None) -> dict[str, Any]:
    client.config_resetstat()
    before = common.run_info(client, model_key) if model_key else None
    sample = redis_benchmark(server.port, clients, requests, command, server.proc.pid)
    name = command[0].decode()
    stats = common.command_stats(client, name)
    if stats["calls"] != requests or stats["failed_calls"] or stats["rejected_calls"]:
        raise RuntimeError(f"{name} c={clients}: expected {requests} clean calls, got {stats}")
    if model_key and before is not None:
        after = common.run_info(client, model_key)
        if after.calls - before.calls != requests or after.errors != before.errors:
            raise RuntimeError(f"{model_key}: AI.INFO went from {before} to {after} "
                               f"for {requests} requests")
        sample["worker_us_per_call"] = (after.duration_us - before.duration_us) / requests
    return sample


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
                                                    max(3000, probe["rps"] * RUN_SECONDS)))
        runs: dict[tuple[str, int], list[dict[str, Any]]] = {k: [] for k in counts}
        order = list(commands)
        for repeat in range(REPEATS):
            for clients in CLIENTS:
                rotated = order[repeat % len(order):] + order[:repeat % len(order)]
                for system in rotated:
                    command, model_key = commands[system]
                    runs[(system, clients)].append(quiet_run(
                        f"{system} c={clients}",
                        lambda: checked_resp_run(client, server, clients,
                                                 counts[(system, clients)], command, model_key)))
                print(f"  repeat {repeat + 1}/{REPEATS} c={clients:<2} " + "  ".join(
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


# --------------------------------------------------------------------------- wrk


def wrk(url: str, clients: int, duration_s: int, script: Path,
        pids: dict[str, int] | None = None) -> dict[str, Any]:
    """One wrk run; with `pids` ({name: pid}), also the CPU per request of those process
    trees (a redis-server counts its main thread only) and of wrk itself."""
    argv = [WRK, "-t", "1", "-c", str(clients), "-d", f"{duration_s}s", "--timeout",
            f"{WRK_TIMEOUT_S}s", "--latency", "-s", str(script), url]
    pids = pids or {}

    def sample() -> dict[str, float]:
        return {name: server_cpu_s(pid)[0] if name.startswith("redis") else tree_cpu_s(pid)
                for name, pid in pids.items()}

    before, load0 = sample(), reaped_children_cpu_s()
    out = subprocess.run(argv, check=True, capture_output=True, text=True,
                         timeout=duration_s + 60).stdout
    after, load1 = sample(), reaped_children_cpu_s()
    run = parse_wrk(out)
    if run["requests"]:
        cpu = {name: after[name] - before[name] for name in pids}
        cpu["wrk"] = load1 - load0
        run["cpu_us_per_request"] = {k: v * 1e6 / run["requests"] for k, v in cpu.items()}
    return run


_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text)
    if not match:
        raise RuntimeError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNIT_MS[match.group(2)]


def parse_wrk(out: str) -> dict[str, Any]:
    def find(pattern: str, default: str | None = None) -> str:
        match = re.search(pattern, out)
        if match is None:
            if default is not None:
                return default
            raise RuntimeError(f"unexpected wrk output (no {pattern!r}):\n{out}")
        return match.group(1)

    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                              r"timeout (\d+)", out)
    errors = {"non_2xx": int(find(r"Non-2xx or 3xx responses: (\d+)", "0"))}
    if socket_errors:
        errors.update(zip(("connect", "read", "write", "timeout"),
                          map(int, socket_errors.groups())))
    return {"rps": float(find(r"Requests/sec:\s+([0-9.]+)")),
            "p50_ms": _ms(find(r"\s50%\s+([0-9.]+[a-z]+)")),
            "p75_ms": _ms(find(r"\s75%\s+([0-9.]+[a-z]+)")),
            "p90_ms": _ms(find(r"\s90%\s+([0-9.]+[a-z]+)")),
            "p99_ms": _ms(find(r"\s99%\s+([0-9.]+[a-z]+)")),
            "requests": int(find(r"(\d+) requests in")),
            "errors": errors}


def lua_script(directory: Path) -> Path:
    path = directory / "post.lua"
    body = POST_BODY.replace("\\", "\\\\").replace('"', '\\"')
    path.write_text('wrk.method = "POST"\n'
                    f'wrk.body = "{body}"\n'
                    'wrk.headers["Content-Type"] = "application/json"\n')
    return path


def http_points(system: str, url: str, script: Path, pids: dict[str, int]) -> list[Point]:
    wrk(url, 16, WARMUP_S, script)  # every worker has loaded its model and connected
    points = []
    for clients in CLIENTS:
        run = quiet_run(f"{system} c={clients}",
                        lambda: wrk(url, clients, DURATION_S, script, pids))
        n_errors = sum(run["errors"].values())
        print(f"  {system:<12} c={clients:<2} {run['rps']:>9,.0f} req/s  p50 {run['p50_ms']:.2f} ms"
              f"  p99 {run['p99_ms']:.2f} ms  errors {run['errors']}", flush=True)
        points.append(Point(system=system, label=SYSTEMS[system][0], clients=clients,
                            rps=run["rps"], p50_ms=run["p50_ms"], p99_ms=run["p99_ms"],
                            requests=run["requests"], errors=n_errors, runs=[run],
                            cpu_us_per_request=run.get("cpu_us_per_request", {})))
    return points


def write_models(directory: Path) -> dict[str, Path]:
    paths = {"torch": directory / "fraud.pt", "onnx": directory / "fraud.onnx"}
    paths["torch"].write_bytes(common.model_builders.torch_mlp())
    paths["onnx"].write_bytes(common.model_builders.onnx_mlp())
    return paths


@contextmanager
def gunicorn(backend: str, model: Path, redis_port: int,
             workdir: Path) -> Iterator[tuple[str, int]]:
    port = common.free_port()
    log = workdir / f"gunicorn-{backend}.log"
    env = dict(os.environ, FRAUD_BACKEND=backend, FRAUD_MODEL=str(model),
               FRAUD_REDIS_PORT=str(redis_port), FRAUD_REF_KEY=REF_STRING,
               OMP_NUM_THREADS="1")
    argv = [str(VENV_BIN / "gunicorn"), "--workers", "2", "--worker-class", "sync",
            "--bind", f"127.0.0.1:{port}", "--chdir", str(PEER_DIR), "--backlog", "2048",
            "--log-level", "warning", "--error-logfile", str(log), "app:app"]
    proc = common.track(subprocess.Popen(argv, env=env, cwd=workdir,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
    url = f"http://127.0.0.1:{port}/predict"
    try:
        reply = wait_http(url, proc, 60, POST_BODY, log)
        check_score(f"REST peer ({backend})", json.loads(reply)["score"])
        yield url, proc.pid
    finally:
        stop_tree(proc)


def rest_phase(redis: common.Server, workdir: Path) -> list[Point]:
    models = write_models(workdir)
    script = lua_script(workdir)
    points: list[Point] = []
    for backend in ("onnx", "torch"):
        with gunicorn(backend, models[backend], redis.port, workdir) as (url, pid):
            print(f"REST peer ({backend}) at {url}", flush=True)
            points += http_points(f"rest_{backend}", url, script,
                                  {"gunicorn (all processes)": pid,
                                   "redis main thread": redis.proc.pid})
    return points


# --------------------------------------------------------------------------- TorchServe


def torchserve_setup() -> Path:
    """The TorchServe venv (made once): torchserve + archiver without their resolver, their
    small dependencies, and a .pth that reuses this venv's CPU torch, numpy and redis."""
    bin_dir = TORCHSERVE_VENV / "bin"
    stamp = TORCHSERVE_VENV / ".ready"
    if stamp.exists() and (bin_dir / "torchserve").exists():
        return bin_dir
    if (TORCHSERVE_VENV / "pyvenv.cfg").exists():  # a half-made venv from an interrupted setup
        shutil.rmtree(TORCHSERVE_VENV)
    if shutil.which("java") is None:
        raise RuntimeError("java is not installed (TorchServe needs Java 11+)")
    print(f"setting up TorchServe {TORCHSERVE_VERSION} in {TORCHSERVE_VENV} ...", flush=True)
    # The interpreter this venv was made from: the .pth below shares its compiled packages.
    python = getattr(sys, "_base_executable", None) or sys.executable
    steps = [
        [python, "-m", "venv", str(TORCHSERVE_VENV)],
        [str(bin_dir / "pip"), "install", "--quiet", "--no-deps",
         f"torchserve=={TORCHSERVE_VERSION}", f"torch-model-archiver=={TORCHSERVE_VERSION}"],
        [str(bin_dir / "pip"), "install", "--quiet", *TORCHSERVE_DEPS],
    ]
    for argv in steps:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise RuntimeError(f"`{' '.join(argv)}` failed ({out.returncode}): "
                               f"{(out.stderr or out.stdout).strip()[-1500:]}")
    purelib = subprocess.run([sys.executable, "-c",
                              "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    site = subprocess.run([str(bin_dir / "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "zz_redisai_py_main_venv.pth").write_text(purelib + "\n")
    check = subprocess.run([str(bin_dir / "python"), "-c",
                            "import torch, redis, yaml, ts; print(torch.__version__)"],
                           capture_output=True, text=True, timeout=120)
    if check.returncode != 0:
        raise RuntimeError(f"TorchServe venv cannot import its modules: {check.stderr[-1500:]}")
    stamp.write_text(check.stdout)
    return bin_dir


@contextmanager
def torchserve(redis_port: int, workdir: Path) -> Iterator[tuple[str, int]]:
    bin_dir = torchserve_setup()
    store = workdir / "model-store"
    store.mkdir()
    (workdir / "fraud.pt").write_bytes(common.model_builders.torch_mlp())
    (workdir / "settings.json").write_text(json.dumps({"redis_port": redis_port,
                                                       "ref_key": REF_STRING}))
    subprocess.run([str(bin_dir / "torch-model-archiver"), "--model-name", "fraud",
                    "--version", "1.0", "--serialized-file", str(workdir / "fraud.pt"),
                    "--handler", str(PEER_DIR / "torchserve_handler.py"),
                    "--extra-files", str(workdir / "settings.json"),
                    "--export-path", str(store)],
                   check=True, capture_output=True, timeout=120)
    ports = [common.free_port() for _ in range(3)]
    config = workdir / "config.properties"
    config.write_text("\n".join([
        f"inference_address=http://127.0.0.1:{ports[0]}",
        f"management_address=http://127.0.0.1:{ports[1]}",
        f"metrics_address=http://127.0.0.1:{ports[2]}",
        "default_workers_per_model=2",
        "disable_token_authorization=true",
        "install_py_dep_per_model=false",
        f"model_store={store}",
    ]) + "\n")
    log = workdir / "torchserve.log"
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ.get('PATH', '')}", OMP_NUM_THREADS="1")
    with open(log, "wb") as out:
        launcher = common.track(subprocess.Popen(
            [str(bin_dir / "torchserve"), "--start", "--foreground", "--ncs", "--ts-config",
             str(config), "--model-store", str(store), "--models", "fraud=fraud.mar",
             "--disable-token-auth"],
            cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT))
    url = f"http://127.0.0.1:{ports[0]}/predictions/fraud"
    try:
        reply = wait_http(url, launcher, 180, POST_BODY, log)
        check_score("TorchServe", json.loads(reply))
        yield url, launcher.pid
    finally:
        # The launcher waits on its Java frontend: stop Java (it stops its Python workers), so
        # that the launcher reaps it and exits; then the launcher itself if it is still there.
        for pid in children_of(launcher.pid):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            launcher.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        stop_tree(launcher)


def torchserve_phase(redis: common.Server, workdir: Path) -> tuple[list[Point], str | None]:
    try:
        with torchserve(redis.port, workdir) as (url, pid):
            print(f"TorchServe at {url}", flush=True)
            return http_points("torchserve", url, lua_script(workdir),
                               {"TorchServe (java + workers)": pid,
                                "redis main thread": redis.proc.pid}), None
    except Exception as exc:  # reported in the results, the rest of the run stands
        message = f"{type(exc).__name__}: {exc}"
        print(f"TorchServe not measured: {message}", flush=True)
        return [], message


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


def write_markdown(points: list[Point], rows: list[dict[str, Any]], env: dict[str, str],
                   torchserve_note: str | None) -> None:
    lines = [
        "# Fraud-detection loop: redisai_py vs REST peers, TorchServe and plain GET",
        "",
        *common.header_lines(env),
        f"- a run during which other processes used >= {QUIET_FRACTION:.0%} of the CPU is redone "
        f"after a short wait (at most {MAX_TRIES} tries per run, {RETRY_BUDGET} extra runs in all; "
        "the least disturbed is kept; each run's share is in the JSON); points that kept a "
        f"disturbed run: {env.get('runs_kept_although_disturbed', '?')}",
        f"- wrk {env.get('wrk', '?')}; {env.get('gunicorn', '?')}; Flask {env.get('flask', '?')}; "
        f"torch {env.get('torch', '?')}; onnxruntime {env.get('onnxruntime', '?')}; "
        f"java: {env.get('java', '?')}",
        "- request: score one 1x30 float32 transaction against a 1x256 float32 reference (1 KB) "
        "kept in Redis, with the fraud MLP of tests/model_builders.py",
        "- ours: `AI.DAGEXECUTE LOAD 1 ref |> AI.TENSORSET tx FLOAT 1 30 BLOB <120 bytes> "
        "|> AI.MODELEXECUTE fraud INPUTS 2 tx ref OUTPUTS 1 score |> AI.TENSORGET score BLOB`; "
        f"`redis-benchmark -P 1`, ~{RUN_SECONDS:g} s per run, {REPEATS} interleaved repeats, medians; "
        "TPQ = THREADS_PER_QUEUE, each on a fresh server; GET of the 1 KB reference string on "
        "the same server is the ceiling",
        f"- REST peer: benchmarks/rest_peer/app.py under gunicorn, 2 sync workers, one framework "
        f"thread each, GET of the reference from the same Redis per request; TorchServe: "
        f"benchmarks/rest_peer/torchserve_handler.py, 2 workers, same loop; load: "
        f"`wrk -t 1 --timeout {WRK_TIMEOUT_S}s -d {DURATION_S}s` with a POST of the 30 floats as JSON, "
        f"one run per point after a {WARMUP_S} s warm-up (gunicorn's sync workers close the "
        "connection after each response, so wrk connects anew per request: part of that "
        "peer's cost as deployed this way)",
        "- model us/call: AI.INFO duration / calls during the runs: the worker's time in the "
        "model op (adapter + framework), not the whole DAG",
        "- errors: HTTP non-2xx plus socket errors (connect/read/write/timeout) that wrk saw; "
        "redis-benchmark runs are checked for zero failed calls",
        "- everything on this machine's loopback, one system at a time; produced by "
        "`.venv/bin/python benchmarks/peers.py`",
        "",
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
    common.write_markdown(NAME, lines)


def write_charts(points: list[Point], env: dict[str, str]) -> None:
    plt = common.pyplot()
    if plt is None:
        return
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
    fig.tight_layout()
    fig.savefig(common.RESULTS_DIR / f"{NAME}.png", dpi=110)
    plt.close(fig)

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
    fig.tight_layout()
    fig.savefig(common.RESULTS_DIR / f"{NAME}_latency.png", dpi=110)
    plt.close(fig)


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
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 1 repeat, 1 s redis-benchmark runs, 2 s wrk runs")
    args = parser.parse_args()
    if args.quick:
        global REPEATS, RUN_SECONDS, DURATION_S, WARMUP_S
        REPEATS, RUN_SECONDS, DURATION_S, WARMUP_S = 1, 1.0, 2, 1
    for tool in (WRK, common.REDIS_BENCHMARK):
        if not Path(tool).exists():
            print(f"{tool} is missing (apt-get install wrk redis-tools)", file=sys.stderr)
            return 2
    quiet_before = common.wait_for_quiet()
    meter = Noise()
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
    during = meter.foreign()
    disturbed = [f"{p.system} c={p.clients}" for p in points
                 if any(r.get("foreign_cpu", 0) >= QUIET_FRACTION for r in p.runs)]
    env.update({"foreign_cpu_before": f"{quiet_before:.1%}", "foreign_cpu_during": f"{during:.1%}",
                "runs_kept_although_disturbed": ", ".join(disturbed) or "none"})
    rows = ratios(points)
    print()
    print("\n".join(results_table(points)))
    print()
    print("\n".join(ratio_table(rows)))
    print("\n".join(verdicts(rows)))
    if torchserve_note:
        print(f"TorchServe: {torchserve_note}")
    write_markdown(points, rows, env, torchserve_note)
    common.write_json(NAME, {"environment": env, "clients": list(CLIENTS), "repeats": REPEATS,
                             "goal_vs_rest": GOAL_VS_REST, "goal_vs_get": GOAL_VS_GET,
                             "torchserve_note": torchserve_note,
                             "points": [asdict(p) for p in points], "ratios": rows})
    write_charts(points, env)
    print(f"wrote {common.RESULTS_DIR}/{NAME}.{{md,json,png}} and {NAME}_latency.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
