"""Error replies byte for byte as RedisAI sends them, where the reference has the text.

Clients compare error texts (RedisAI's own tests do, and so do users' retry and
alerting rules), so each story reads the reply line exactly as it goes over the
wire: `-` then the text then CRLF, with or without RedisAI's `ERR ` prefix.

- A TF blob that is neither a frozen GraphDef nor an archive holding a
  saved_model.pb gets `-Invalid GraphDef`: random bytes, a TorchScript file sent
  as TF by mistake, a SavedModel directory archived without its saved_model.pb.
  Only an archive that does hold a saved_model.pb may fail with a SavedModel
  wording, and a real SavedModel archive still stores and runs.
- A script that does not compile gets TorchScript's own message with each newline
  made a space and every other character kept (RedisAI's way of putting an error
  on one line), however many spaces that leaves in a row.
- AI.CONFIG LOADBACKEND with RedisAI's library paths (relative to BACKENDSPATH,
  or absolute) answers `+OK` when the framework imports, logs that the path was
  ignored, and lists the backend in INFO; the official client's loadbackend works.
- A server whose venv lacks a framework (a real venv without onnxruntime, no
  mocks) answers RedisAI's texts: `-ERR error loading backend` for LOADBACKEND,
  `-ERR Could not load backend` for a model that needs it, and a start with that
  backend named in the module arguments fails, saying why.

Every bad-input story ends with the keyspace unchanged and the server answering.
"""

from __future__ import annotations

import functools
import io
import random
import shutil
import socket
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest
import redis

import model_builders as mb
from conftest import RedisServer, ServerFactory
from keyspace import assert_intact, snapshot
from redisai_py import module_path

INVALID_GRAPHDEF = b"-Invalid GraphDef\r\n"
ERROR_LOADING_BACKEND = b"-ERR error loading backend\r\n"
COULD_NOT_LOAD_BACKEND = b"-ERR Could not load backend\r\n"
TF_NAMES = ("INPUTS", 2, "a", "b", "OUTPUTS", 1, "mul")
SAVED_MODEL_NAMES = ("INPUTS", 2, "x", "y", "OUTPUTS", 2, "sum", "scaled")
CLIENT_PYTHON = Path(__file__).resolve().parent.parent / ".venv-client" / "bin" / "python"


def resp(*args: object) -> bytes:
    """A command in RESP, as any client sends it."""
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def reply_line(server: RedisServer, *command: object) -> bytes:
    """The first line of the reply, bytes as sent (an error reply is that one line)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=120) as sock:
        sock.sendall(resp(*command))
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data[:data.index(b"\r\n") + 2] if b"\r\n" in data else data


def backends_info(client: redis.Redis) -> dict[str, str]:
    """The ai_backends_info section of INFO MODULES, fields in order."""
    conn = client.connection_pool.get_connection()
    try:  # the raw text: redis-py's INFO parser would merge the sections
        conn.send_command("INFO", "MODULES")
        text = conn.read_response().decode()
    finally:
        client.connection_pool.release(conn)
    section = text.split("# ai_backends_info")[1].split("#")[0]
    return dict(line.split(":", 1) for line in section.split() if line)


# ---------------------------------------------------------------------------
# blobs


@functools.cache
def tf_mul() -> bytes:
    return mb.tf_graph_def_mul()


@functools.cache
def saved_model(archive_format: str) -> bytes:
    return mb.tf_saved_model_archive(archive_format)


def saved_model_without_its_pb(archive_format: str) -> bytes:
    """The SavedModel directory archived again, in the same format, without its saved_model.pb."""
    original, buffer, dropped = io.BytesIO(saved_model(archive_format)), io.BytesIO(), []
    if archive_format == "zip":
        with zipfile.ZipFile(original) as source, zipfile.ZipFile(buffer, "w") as target:
            for info in source.infolist():
                if PurePosixPath(info.filename).name == "saved_model.pb":
                    dropped.append(info.filename)
                else:
                    target.writestr(info, source.read(info))
    else:
        mode = "w:gz" if archive_format == "tar.gz" else "w"
        with tarfile.open(fileobj=original, mode="r:*") as source, \
                tarfile.open(fileobj=buffer, mode=mode) as target:
            for member in source.getmembers():
                if PurePosixPath(member.name).name == "saved_model.pb":
                    dropped.append(member.name)
                else:
                    target.addfile(member, source.extractfile(member) if member.isfile() else None)
    assert dropped == ["scaler/saved_model.pb"]
    return buffer.getvalue()


NOT_TF_MODELS = {
    "random-bytes": lambda: random.Random(20240607).randbytes(4096),
    "torchscript-zip": mb.torch_add,
    "savedmodel-dir-without-pb-tar": lambda: saved_model_without_its_pb("tar"),
    "savedmodel-dir-without-pb-tar-gz": lambda: saved_model_without_its_pb("tar.gz"),
    "savedmodel-dir-without-pb-zip": lambda: saved_model_without_its_pb("zip"),
}


# ---------------------------------------------------------------------------
# fixtures


@pytest.fixture
def r(shared_server: RedisServer, request: pytest.FixtureRequest) -> redis.Redis:
    """The shared server, emptied, holding a working TF model `m` and tensors `a`, `b`."""
    request.node.redis_servers = [shared_server]
    client = shared_server.client(socket_timeout=120)
    client.flushall()
    assert client.execute_command("AI.MODELSTORE", "m", "TF", "CPU", "TAG", "keep", *TF_NAMES,
                                  "BLOB", tf_mul()) == b"OK"
    for key, values in (("a", [1, 2]), ("b", [3, 5])):
        client.execute_command("AI.TENSORSET", key, "FLOAT", 2, "VALUES", *values)
    return client


def assert_m_serves(client: redis.Redis) -> None:
    assert client.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "b",
                                  "OUTPUTS", 1, "c") == b"OK"
    assert client.execute_command("AI.TENSORGET", "c", "VALUES") == [b"3", b"10"]


# ---------------------------------------------------------------------------
# TF blobs that are not TF models


@pytest.mark.parametrize("kind", list(NOT_TF_MODELS))
def test_a_tf_blob_that_is_no_tf_model_is_an_invalid_graphdef(
        shared_server: RedisServer, r: redis.Redis, kind: str) -> None:
    blob = NOT_TF_MODELS[kind]()
    before = snapshot(r)
    for key in ("m", "new"):  # over the stored model, and under a new key
        assert reply_line(shared_server, "AI.MODELSTORE", key, "TF", "CPU", *TF_NAMES,
                          "BLOB", blob) == INVALID_GRAPHDEF
        assert reply_line(shared_server, "AI.MODELSET", key, "TF", "CPU",
                          "INPUTS", "a", "b", "OUTPUTS", "mul", "BLOB", blob) == INVALID_GRAPHDEF
    assert_intact(r, before)
    assert_m_serves(r)


def test_a_damaged_archive_that_holds_a_saved_model_says_so(
        shared_server: RedisServer, r: redis.Redis) -> None:
    """The cut falls after saved_model.pb's header: this was meant as a SavedModel,
    and RedisAI, which has no SavedModels, has no text for it."""
    archive = saved_model("tar")
    cut = archive[:len(archive) // 2]
    before = snapshot(r)
    line = reply_line(shared_server, "AI.MODELSTORE", "new", "TF", "CPU", *SAVED_MODEL_NAMES,
                      "BLOB", cut)
    assert line.startswith(b"-ERR Invalid SavedModel archive: ") and line.count(b"\r\n") == 1
    assert_intact(r, before)


def saved_model_without_its_variables() -> bytes:
    """The SavedModel archived again as tar with its saved_model.pb but not its variables."""
    original, buffer = io.BytesIO(saved_model("tar")), io.BytesIO()
    with tarfile.open(fileobj=original, mode="r:*") as source, \
            tarfile.open(fileobj=buffer, mode="w") as target:
        for member in source.getmembers():
            if "variables" not in PurePosixPath(member.name).parts:
                target.addfile(member, source.extractfile(member) if member.isfile() else None)
    return buffer.getvalue()


def test_a_saved_model_that_fails_to_load_does_not_show_the_servers_paths(
        shared_server: RedisServer, r: redis.Redis) -> None:
    before = snapshot(r)
    line = reply_line(shared_server, "AI.MODELSTORE", "new", "TF", "CPU", *SAVED_MODEL_NAMES,
                      "BLOB", saved_model_without_its_variables())
    assert line.startswith(b"-ERR ") and line.count(b"\r\n") == 1
    assert b"<SavedModel>" in line
    assert b"redisai-savedmodel-" not in line and b"/tmp" not in line
    assert_intact(r, before)


@pytest.mark.parametrize("archive_format", ["tar", "tar.gz", "zip"])
def test_a_real_saved_model_archive_still_stores_and_runs(
        shared_server: RedisServer, r: redis.Redis, archive_format: str) -> None:
    assert reply_line(shared_server, "AI.MODELSTORE", "sm", "TF", "CPU", *SAVED_MODEL_NAMES,
                      "BLOB", saved_model(archive_format)) == b"+OK\r\n"
    r.execute_command("AI.TENSORSET", "x", "FLOAT", 1, 3, "VALUES", 1, 2, 3)
    r.execute_command("AI.TENSORSET", "y", "FLOAT", 1, 3, "VALUES", 10, 20, 30)
    assert r.execute_command("AI.MODELEXECUTE", "sm", "INPUTS", 2, "x", "y",
                             "OUTPUTS", 2, "s", "d") == b"OK"
    assert r.execute_command("AI.TENSORGET", "s", "VALUES") == [b"11", b"22", b"33"]
    assert r.execute_command("AI.TENSORGET", "d", "VALUES") == [b"2", b"4", b"6"]


# ---------------------------------------------------------------------------
# scripts that do not compile


def torchscript_message(source: str) -> str:
    """What TorchScript itself says about `source` (the same torch the server runs)."""
    import torch

    with pytest.raises(RuntimeError) as raised:
        torch.jit.CompilationUnit().define(source)
    return str(raised.value)


@pytest.mark.parametrize("source", [
    pytest.param("def bar(tensors: List[Tensor], keys: List[str], args: List[str]):\n"
                 "    return nowhere\n", id="undefined-name"),
    pytest.param("def bar(tensors: List[Tensor], keys: List[str], args: List[str]):\n"
                 "    return (\n", id="syntax-error"),
    pytest.param("this is not python\n", id="not-python"),
])
def test_a_compile_error_is_torchscripts_message_on_one_line(
        shared_server: RedisServer, r: redis.Redis, source: str) -> None:
    message = torchscript_message(source)
    expected = b"-" + message.replace("\r", " ").replace("\n", " ").encode() + b"\r\n"
    # The message's indentation and line breaks leave runs of spaces: all are kept.
    assert b"   " in expected
    before = snapshot(r)
    assert reply_line(shared_server, "AI.SCRIPTSTORE", "s", "CPU", "ENTRY_POINTS", 1, "bar",
                      "SOURCE", source) == expected
    assert reply_line(shared_server, "AI.SCRIPTSET", "s", "CPU", "SOURCE", source) == expected
    assert_intact(r, before)
    assert_m_serves(r)


# ---------------------------------------------------------------------------
# AI.CONFIG LOADBACKEND with RedisAI's library paths


def test_loadbackend_with_redisai_paths_loads_the_framework_and_logs_the_path_ignored(
        server: RedisServer) -> None:
    import onnxruntime
    import torch

    client = server.client()
    assert backends_info(client) == {}
    assert reply_line(server, "AI.CONFIG", "LOADBACKEND", "TORCH",
                      "backends/redisai_torch/redisai_torch.so") == b"+OK\r\n"
    assert backends_info(client) == {"ai_Torch_version": torch.__version__}
    absolute = "/usr/lib/redis/modules/backends/redisai_onnxruntime/redisai_onnxruntime.so"
    assert reply_line(server, "AI.CONFIG", "LOADBACKEND", "ONNX", absolute) == b"+OK\r\n"
    assert backends_info(client) == {"ai_Torch_version": torch.__version__,
                                     "ai_onnxruntime_version": onnxruntime.__version__,
                                     "ai_onnxruntime_maximum_run_sessions_number": "1"}
    # RedisAI's answer to loading a backend that is loaded already.
    assert reply_line(server, "AI.CONFIG", "LOADBACKEND", "TORCH",
                      "backends/redisai_torch/redisai_torch.so") == ERROR_LOADING_BACKEND
    backends_path = client.execute_command("AI.CONFIG", "GET", "BACKENDSPATH").decode()
    log = server.log()
    assert (f"AI.CONFIG LOADBACKEND TORCH: path {backends_path}/backends/redisai_torch/redisai_torch.so "
            "ignored (it names a RedisAI C library; the TORCH backend here is a Python adapter)") in log
    assert f"AI.CONFIG LOADBACKEND ONNX: path {absolute} ignored" in log
    assert client.ping()


def test_backend_paths_in_the_module_arguments_are_logged_as_ignored(
        server_factory: ServerFactory) -> None:
    server = server_factory(module_args=["BACKENDSPATH", "/opt/redisai/backends",
                                         "TORCH", "redisai_torch/redisai_torch.so"])
    import torch

    assert backends_info(server.client()) == {"ai_Torch_version": torch.__version__}
    assert ("module argument TORCH: path /opt/redisai/backends/redisai_torch/redisai_torch.so "
            "ignored") in server.log()


@pytest.mark.skipif(not CLIENT_PYTHON.exists(), reason=".venv-client missing: run make install")
def test_the_official_clients_loadbackend_works(server: RedisServer) -> None:
    code = ("import sys, redisai\n"
            "con = redisai.Client(host='127.0.0.1', port=int(sys.argv[1]))\n"
            "print(con.loadbackend('TORCH', 'backends/redisai_torch/redisai_torch.so'))\n")
    out = subprocess.run([str(CLIENT_PYTHON), "-c", code, str(server.port)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "OK\n"
    assert list(backends_info(server.client())) == ["ai_Torch_version"]


# ---------------------------------------------------------------------------
# a server whose venv has no onnxruntime


class VenvServer(RedisServer):
    """A RedisServer that loads the shim from another venv's site-packages."""

    def __init__(self, workdir: Path, module: Path, module_args: list[str] | None = None) -> None:
        super().__init__(workdir, module_args or [], [])
        self.module = module

    def argv(self) -> list[str]:
        argv = super().argv()
        argv[argv.index("--loadmodule") + 1] = str(self.module)
        return argv


def shim_prefix(server: RedisServer) -> Path:
    """The venv a VenvServer's shim runs in (its sys.prefix)."""
    assert isinstance(server, VenvServer)
    return server.module.parents[4]


@pytest.fixture(scope="module")
def shim_without_onnxruntime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shim installed in a venv of its own that has every package of ours but onnxruntime.

    The shim finds its venv by walking up from its own (real) path, so the
    redisai_py package is copied there; every other package is a link to our
    venv's copy, so nothing is downloaded or built.
    """
    installed = module_path().parent  # <venv>/lib/python3.X/site-packages/redisai_py
    site_packages = installed.parent
    real_venv = Path(sys.prefix)
    venv = tmp_path_factory.mktemp("venv-without-onnxruntime")
    target = venv / site_packages.relative_to(real_venv)
    target.mkdir(parents=True)
    (venv / "bin").mkdir()
    (venv / "bin" / "python").symlink_to(Path(sys.executable).resolve())
    shutil.copy2(real_venv / "pyvenv.cfg", venv / "pyvenv.cfg")
    for entry in site_packages.iterdir():
        if entry == installed:
            shutil.copytree(entry, target / entry.name, ignore=shutil.ignore_patterns("__pycache__"))
        elif entry.name.split("-")[0] != "onnxruntime":  # the package and its dist-info
            (target / entry.name).symlink_to(entry)
    assert not (target / "onnxruntime").exists()
    return target / installed.name / module_path().name


@pytest.fixture
def venv_server(request: pytest.FixtureRequest, tmp_path: Path,
                shim_without_onnxruntime: Path) -> Iterator[RedisServer]:
    server = VenvServer(tmp_path, shim_without_onnxruntime)
    request.node.redis_servers = [server]
    server.start()
    yield server
    server.stop()


def test_loadbackend_of_a_missing_framework_is_redisais_error(venv_server: RedisServer) -> None:
    client = venv_server.client(socket_timeout=120)
    assert f"(prefix {shim_prefix(venv_server)})" in venv_server.log()
    client.execute_command("AI.TENSORSET", "a", "FLOAT", 2, "VALUES", 1, 2)
    before = snapshot(client)
    assert reply_line(venv_server, "AI.CONFIG", "LOADBACKEND", "ONNX",
                      "backends/redisai_onnxruntime/redisai_onnxruntime.so") == ERROR_LOADING_BACKEND
    assert backends_info(client) == {}
    assert "backend ONNX is not installed: No module named 'onnxruntime'" in venv_server.log()
    # A model that needs it: RedisAI's lazy-load failure, and no key.
    assert reply_line(venv_server, "AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB",
                      mb.onnx_add()) == COULD_NOT_LOAD_BACKEND
    assert_intact(client, before)
    # The frameworks that are there still load.
    import torch

    assert reply_line(venv_server, "AI.CONFIG", "LOADBACKEND", "TORCH",
                      "backends/redisai_torch/redisai_torch.so") == b"+OK\r\n"
    assert backends_info(client) == {"ai_Torch_version": torch.__version__}
    assert client.execute_command("AI.MODELSTORE", "t", "TORCH", "CPU", "BLOB", mb.torch_add()) == b"OK"


def test_a_missing_framework_named_at_load_fails_the_start(
        request: pytest.FixtureRequest, tmp_path: Path, shim_without_onnxruntime: Path) -> None:
    server = VenvServer(tmp_path, shim_without_onnxruntime,
                        module_args=["ONNX", "redisai_onnxruntime/redisai_onnxruntime.so"])
    request.node.redis_servers = [server]
    try:
        with pytest.raises(RuntimeError, match="redis-server exited"):
            server.start()
    finally:
        server.stop()
    assert ("ERR error processing argument: ONNX redisai_onnxruntime/redisai_onnxruntime.so"
            in server.log())
    assert "No module named 'onnxruntime'" in server.log()
