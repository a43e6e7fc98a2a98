"""What the peers benchmark's parts share (not a benchmark itself; see peers.py).

The settings (--quick shortens them), the systems and their labels, the request every system
answers (one transaction, the reference, the expected score), a measured point, the retry of
disturbed runs, and the HTTP load (wrk) that the REST peer and TorchServe both get.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import _bench_common as common


@dataclass
class Settings:
    repeats: int = 3            # redis-benchmark points: interleaved repeats, medians shown
    run_seconds: float = 3.0    # target length of one redis-benchmark run (request count calibrated)
    duration_s: int = 8         # one wrk run per HTTP point
    warmup_s: int = 2

    def quick(self) -> None:
        """A smoke run: 1 repeat, 1 s redis-benchmark runs, 2 s wrk runs."""
        self.repeats, self.run_seconds, self.duration_s, self.warmup_s = 1, 1.0, 2, 1


S = Settings()
CLIENTS = (1, 16, 64)
MAX_REQUESTS = 400_000
WRK_TIMEOUT_S = 5
THREADS = (1, 2)            # THREADS_PER_QUEUE values for our module
REF_TENSOR, REF_STRING = common.REF_KEY, "ref_bytes"
PEER_DIR = Path(__file__).resolve().parent / "rest_peer"
WRK = shutil.which("wrk") or "/usr/bin/wrk"
QUIET = common.QuietRetry(max_tries=3, budget=12)

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


TX = common.nul_free_transaction()
_, REF = common.fraud_inputs()
EXPECTED = common.model_builders.mlp_reference(common.model_builders.mlp_weights(), TX, REF)
POST_BODY = json.dumps({"transaction": [float(v) for v in TX.reshape(-1)]})


def check_score(what: str, got: Any) -> None:
    got = np.asarray(got, dtype=np.float32).reshape(EXPECTED.shape)
    if not np.allclose(got, EXPECTED, atol=1e-5):
        raise RuntimeError(f"{what}: wrong score {got.tolist()}, expected {EXPECTED.tolist()}")



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



# --------------------------------------------------------------------------- wrk


def wrk(url: str, clients: int, duration_s: int, script: Path,
        pids: dict[str, int] | None = None) -> dict[str, Any]:
    """One wrk run; with `pids` ({name: pid}), also the CPU per request of those process
    trees (a redis-server counts its main thread only) and of wrk itself."""
    argv = [WRK, "-t", "1", "-c", str(clients), "-d", f"{duration_s}s", "--timeout",
            f"{WRK_TIMEOUT_S}s", "--latency", "-s", str(script), url]
    pids = pids or {}

    def sample() -> dict[str, float]:
        return {name: common.server_cpu_s(pid)[0] if name.startswith("redis")
                else common.tree_cpu_s(pid) for name, pid in pids.items()}

    before, load0 = sample(), common.reaped_children_cpu_s()
    out = subprocess.run(argv, check=True, capture_output=True, text=True,
                         timeout=duration_s + 60).stdout
    after, load1 = sample(), common.reaped_children_cpu_s()
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
    wrk(url, 16, S.warmup_s, script)  # every worker has loaded its model and connected
    points = []
    for clients in CLIENTS:
        run = QUIET.run(f"{system} c={clients}",
                        lambda: wrk(url, clients, S.duration_s, script, pids))
        n_errors = sum(run["errors"].values())
        print(f"  {system:<12} c={clients:<2} {run['rps']:>9,.0f} req/s  p50 {run['p50_ms']:.2f} ms"
              f"  p99 {run['p99_ms']:.2f} ms  errors {run['errors']}", flush=True)
        points.append(Point(system=system, label=SYSTEMS[system][0], clients=clients,
                            rps=run["rps"], p50_ms=run["p50_ms"], p99_ms=run["p99_ms"],
                            requests=run["requests"], errors=n_errors, runs=[run],
                            cpu_us_per_request=run.get("cpu_us_per_request", {})))
    return points
