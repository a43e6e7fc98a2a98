"""`python -m redisai_py serve` (what `make run` runs), on either server.

User story: an operator runs `make run` (Redis) or `make run SERVER=valkey`,
then stores and reads a tensor with redis-cli; the server that answers is the
one asked for, with the module loaded and its data under --dir. The server is
stopped by its PID. This runs for both servers whatever `--server` says: it
tests the command line, not the server under test.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from conftest import free_port


def serve(server: str, port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "redisai_py", "serve", "--server", server, "--port", str(port),
         "--dir", str(data_dir), "--", "THREADS_PER_QUEUE", "2", "--save", ""],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for_ping(client: redis.Redis, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            if client.ping():
                return
        except (redis.ConnectionError, redis.BusyLoadingError):
            time.sleep(0.05)
    raise AssertionError("the served server never answered PING")


@pytest.mark.parametrize("server", ["redis", "valkey"])
def test_serve_runs_the_asked_for_server_with_the_module(server, tmp_path):
    port = free_port()
    proc = serve(server, port, tmp_path / "data")
    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
        wait_for_ping(client, proc)
        info = client.info("server")
        assert info.get("server_name", "redis") == server  # Valkey names itself; Redis 7.0 doesn't
        assert (tmp_path / "data").is_dir() and client.config_get("dir")["dir"] == \
            str((tmp_path / "data").resolve())
        assert client.execute_command("AI.TENSORSET", "t", "FLOAT", 2, "VALUES", 1, 2) == b"OK"
        assert client.execute_command("AI.TENSORGET", "t", "VALUES") == [b"1", b"2"]
        # The arguments after `--`: a module argument, then a server option.
        assert client.info("modules")["ai_threads_per_queue"] == 2
        assert client.config_get("save") == {"save": ""}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
