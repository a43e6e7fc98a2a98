"""The peers benchmark's TorchServe peer (see peers.py): TorchServe 0.12 serving the TorchScript
model with a handler that reads the reference from Redis (benchmarks/rest_peer/
torchserve_handler.py), 2 workers, in a venv of its own; load from wrk."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import _bench_common as common
from _peers_common import (PEER_DIR, POST_BODY, REF_STRING, Point, check_score, http_points,
                           lua_script, wait_http)

TORCHSERVE_VERSION = "0.12.0"
TORCHSERVE_VENV = Path(os.environ.get(
    "REDISAI_PY_TORCHSERVE_VENV",
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "redisai_py_bench"
    / "torchserve-venv"))
# torchserve's own dependencies (installed without its resolver, so no CUDA torch comes along).
TORCHSERVE_DEPS = ("Pillow", "psutil", "packaging", "wheel", "pyyaml", "enum-compat")


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
        for pid in common.children_of(launcher.pid):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            launcher.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        common.stop_pid(launcher, 20.0)


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
