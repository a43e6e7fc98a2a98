"""Loading the module, configuring it, and reading what it reports."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis

from conftest import REDIS_SERVER, RedisServer, ServerFactory, free_port
from redisai_py import module_path


def info_sections(client: redis.Redis) -> list[tuple[str, dict[str, str]]]:
    """INFO MODULES split the way RedisAI's own tests split it: on '#'."""
    conn = client.connection_pool.get_connection()
    try:  # the raw reply: redis-py's INFO parser would hide the section order
        conn.send_command("INFO", "MODULES")
        text = conn.read_response().decode()
    finally:
        client.connection_pool.release(conn)
    sections = []
    for chunk in text.split("#")[1:]:
        lines = [line for line in chunk.strip().splitlines() if line]
        fields = dict(line.split(":", 1) for line in lines[1:])
        sections.append((lines[0].strip(), fields))
    return sections


def signal_masks(pid: int) -> dict[str, str]:
    status = Path(f"/proc/{pid}/status").read_text()
    return dict(re.findall(r"^(Sig(?:Cgt|Ign)):\s+(\S+)$", status, re.M))


def run_failing_load(tmp_path: Path, module: Path, *module_args: str) -> str:
    """Starts redis-server with the module and expects the load to fail:
    returns the server's output, which must explain why."""
    proc = subprocess.run(
        [REDIS_SERVER, "--port", str(free_port()), "--bind", "127.0.0.1", "--save", "",
         "--dir", str(tmp_path), "--loadmodule", str(module), *module_args],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    return proc.stdout + proc.stderr


def test_info_modules_has_redisais_five_sections_in_order_then_ours(r):
    """RedisAI's five sections in RedisAI's order; ours (the inference cache, loaded sessions,
    functions and triggers) come after them."""
    sections = info_sections(r)
    assert [name for name, _ in sections] == [
        "Modules", "ai_versions", "ai_git", "ai_load_time_configs", "ai_backends_info", "ai_cpu",
        "ai_cache", "ai_sessions", "ai_functions",
    ]
    fields = dict(sections)
    assert list(fields["ai_versions"]) == [
        "ai_RedisAI_version", "ai_low_level_API_version", "ai_rdb_version"]
    assert fields["ai_versions"]["ai_RedisAI_version"] == "1.2.7"
    assert fields["ai_versions"]["ai_rdb_version"] == "4"
    assert list(fields["ai_git"]) == ["ai_git_sha"]
    assert fields["ai_load_time_configs"] == {
        "ai_threads_per_queue": "1",
        "ai_inter_op_parallelism": "0",
        "ai_intra_op_parallelism": "0",
        "ai_model_execution_timeout": "5000",
        "ai_backend_memory_limit": "0",
    }
    assert fields["ai_backends_info"] == {}
    cpu = fields["ai_cpu"]
    for name in ("self_used_cpu_sys", "self_used_cpu_user", "children_used_cpu_sys",
                 "children_used_cpu_user", "main_thread_used_cpu_sys",
                 "main_thread_used_cpu_user"):
        assert re.fullmatch(r"\d+\.\d{6}", cpu[f"ai_{name}"])


def test_load_time_arguments_show_in_info(server_factory: ServerFactory):
    server = server_factory(module_args=[
        "THREADS_PER_QUEUE", "4", "INTRA_OP_PARALLELISM", "2", "INTER_OP_PARALLELISM", "3",
        "MODEL_EXECUTION_TIMEOUT", "2000", "BACKEND_MEMORY_LIMIT", "512",
        "MODEL_CHUNK_SIZE", "1024", "BACKENDSPATH", "/opt/backends",
    ])
    client = server.client()
    configs = dict(info_sections(client))["ai_load_time_configs"]
    assert configs == {
        "ai_threads_per_queue": "4",
        "ai_inter_op_parallelism": "3",
        "ai_intra_op_parallelism": "2",
        "ai_model_execution_timeout": "2000",
        "ai_backend_memory_limit": "512",
    }
    assert client.execute_command("AI.CONFIG", "GET", "MODEL_CHUNK_SIZE") == 1024
    assert client.execute_command("AI.CONFIG", "GET", "BACKENDSPATH") == b"/opt/backends"


def test_default_backendspath_is_next_to_the_module(r):
    expected = str(module_path().parent / "backends").encode()
    assert r.execute_command("AI.CONFIG", "GET", "BACKENDSPATH") == expected


@pytest.mark.parametrize("args, logged", [
    (["THREADS_PER_QUEUE"], "Even number of arguments provided to module"),
    (["THREADS_PER_QUEUE", "0"], "ERR error processing argument: THREADS_PER_QUEUE 0"),
    (["THREADS_PER_QUEUE", "many"], "ERR error processing argument: THREADS_PER_QUEUE many"),
    (["INTRA_OP_PARALLELISM", "0"], "ERR error processing argument: INTRA_OP_PARALLELISM 0"),
    (["INTER_OP_PARALLELISM", "-1"], "ERR error processing argument: INTER_OP_PARALLELISM -1"),
    (["MODEL_EXECUTION_TIMEOUT", "999"],
     "ERR error processing argument: MODEL_EXECUTION_TIMEOUT 999"),
    (["BACKEND_MEMORY_LIMIT", "0"], "ERR error processing argument: BACKEND_MEMORY_LIMIT 0"),
    (["MODEL_CHUNK_SIZE", "0"], "ERR error processing argument: MODEL_CHUNK_SIZE 0"),
    (["WORKER_SPIN_US", "-1"], "ERR error processing argument: WORKER_SPIN_US -1"),
    (["WORKER_SPIN_US", "1000001"], "ERR error processing argument: WORKER_SPIN_US 1000001"),
    (["NO_SUCH_KEY", "1"], "ERR error processing argument: NO_SUCH_KEY 1"),
])
def test_bad_load_arguments_fail_the_load_with_a_clear_line(tmp_path, args, logged):
    output = run_failing_load(tmp_path, module_path(), *args)
    assert logged in output
    assert "Can't load module from" in output


def test_a_module_file_with_no_venv_above_it_fails_to_load_cleanly(tmp_path):
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    copy = lonely / "redisai_shim.so"
    shutil.copy2(module_path(), copy)
    output = run_failing_load(tmp_path, copy)
    assert "redisai_py cannot start Python: no Python venv (pyvenv.cfg) found above" in output
    assert "Segmentation fault" not in output and "crashed" not in output


def test_module_unload_is_refused_and_the_server_keeps_serving(r):
    r.execute_command("AI.TENSORSET", "t", "INT8", 2, "VALUES", 1, 2)
    with pytest.raises(redis.ResponseError):
        r.execute_command("MODULE", "UNLOAD", "ai")
    assert r.execute_command("AI.TENSORGET", "t", "VALUES") == [1, 2]


def test_loading_python_and_a_backend_leaves_redis_signal_handlers_alone(
        server: RedisServer, tmp_path: Path):
    """Redis owns SIGTERM/SIGINT and its crash reporter: the embedded interpreter
    and a framework imported by LOADBACKEND must not install handlers."""
    plain = subprocess.Popen([REDIS_SERVER, "--port", str(free_port()), "--bind", "127.0.0.1",
                              "--save", "", "--dir", str(tmp_path)],
                             stdout=subprocess.DEVNULL)
    try:
        plain_port = int(plain.args[2])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # handlers are installed once it serves
            try:
                if redis.Redis(port=plain_port).ping():
                    break
            except redis.ConnectionError:
                time.sleep(0.02)
        client = server.client()
        assert client.ping()
        plain_masks = signal_masks(plain.pid)
        assert signal_masks(server.proc.pid) == plain_masks
        assert client.execute_command("AI.CONFIG", "LOADBACKEND", "TORCH", "libtorch.so") == b"OK"
        assert signal_masks(server.proc.pid) == plain_masks
    finally:
        plain.terminate()
        plain.wait(10)


def test_sigterm_still_shuts_the_server_down(server: RedisServer):
    server.client().execute_command("AI.TENSORSET", "t", "INT8", 1, "VALUES", 1)
    assert server.stop() == 0
    assert "ready to exit, bye bye" in server.log()


class TestConfigCommand:
    def test_loadbackend_torch_reports_its_version_in_info(self, r):
        assert r.execute_command("AI.CONFIG", "LOADBACKEND", "TORCH", "redisai_torch.so") == b"OK"
        backends = dict(info_sections(r))["ai_backends_info"]
        assert list(backends) == ["ai_Torch_version"]
        import torch
        assert backends["ai_Torch_version"] == torch.__version__

    def test_loading_a_backend_twice_is_an_error(self, r):
        r.execute_command("AI.CONFIG", "LOADBACKEND", "ONNX", "x")
        with pytest.raises(redis.ResponseError, match="^error loading backend$"):
            r.execute_command("AI.CONFIG", "LOADBACKEND", "ONNX", "x")

    def test_backends_named_at_load_time_are_loaded_before_serving(
            self, server_factory: ServerFactory):
        client = server_factory(module_args=["ONNX", "redisai_onnxruntime.so"]).client()
        backends = dict(info_sections(client))["ai_backends_info"]
        import onnxruntime
        assert backends == {"ai_onnxruntime_version": onnxruntime.__version__,
                            # one CPU queue with one worker
                            "ai_onnxruntime_maximum_run_sessions_number": "1"}

    @pytest.mark.parametrize("args, error", [
        (["LOADBACKEND", "CAFFE", "x"], "unsupported backend"),
        (["BACKENDSPATH"], "BACKENDSPATH: missing path argument"),
        (["MODEL_CHUNK_SIZE"], "MODEL_CHUNK_SIZE: missing chunk size"),
        (["MODEL_CHUNK_SIZE", "0"], "MODEL_CHUNK_SIZE: invalid chunk size"),
        (["MODEL_CHUNK_SIZE", "big"], "MODEL_CHUNK_SIZE: invalid chunk size"),
        (["REBOOT"], "unsupported subcommand"),
    ])
    def test_bad_subcommands_are_refused(self, r, args, error):
        with pytest.raises(redis.ResponseError, match=f"^{error}$"):
            r.execute_command("AI.CONFIG", *args)
        assert r.execute_command("AI.CONFIG", "GET", "MODEL_CHUNK_SIZE") == 535822336

    @pytest.mark.parametrize("args", [[], ["LOADBACKEND", "TORCH"], ["GET"]])
    def test_wrong_arity_echoes_the_command_as_typed(self, r, args):
        with pytest.raises(redis.ResponseError,
                           match=r"^wrong number of arguments for 'ai\.Config' command$"):
            r.execute_command("ai.Config", *args)

    def test_settings_change_at_run_time(self, r):
        assert r.execute_command("AI.CONFIG", "MODEL_CHUNK_SIZE", "4096") == b"OK"
        assert r.execute_command("AI.CONFIG", "GET", "MODEL_CHUNK_SIZE") == 4096
        assert r.execute_command("AI.CONFIG", "BACKENDSPATH", "/srv/ai") == b"OK"
        assert r.execute_command("AI.CONFIG", "GET", "BACKENDSPATH") == b"/srv/ai"
        assert r.execute_command("AI.CONFIG", "GET", "NO_SUCH_SETTING") is None

    def test_loadbackend_inside_multi_is_refused(self, r):
        pipe = r.pipeline(transaction=True)
        pipe.execute_command("AI.CONFIG", "LOADBACKEND", "TORCH", "x")
        with pytest.raises(redis.ResponseError,
                           match="Cannot run RedisAI command within a transaction"):
            pipe.execute()
        assert dict(info_sections(r))["ai_backends_info"] == {}
