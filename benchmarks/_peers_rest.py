"""The peers benchmark's REST peer (see peers.py): Flask behind gunicorn (benchmarks/rest_peer/
app.py), 2 sync workers, the model in onnxruntime or torch, the reference read from Redis per
request; load from wrk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import _bench_common as common
from _peers_common import (PEER_DIR, POST_BODY, REF_STRING, Point, check_score, http_points,
                           lua_script, wait_http)

VENV_BIN = Path(sys.executable).parent


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
        common.stop_pid(proc, 20.0)


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
