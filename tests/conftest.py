"""Real redis-server processes with the module loaded, on free loopback ports.

Every test that talks to Redis gets its own server (function scope): stories
stay independent, and a server that a bad-input test might have hurt cannot
leak into the next test. When a test fails, the server's log is attached to
the report.

Which server loads the module is one setting: `--server redis|valkey` (or the
environment variable REDISAI_TEST_SERVER), Debian's Redis 7.0 by default;
valkey is the pinned valkey-server that `make install` puts into the venv.
Tests that check what the server itself says (its error texts, log lines,
DUMP bytes) take its form from `server_says` or ask the server; tests of our
own texts do not.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from redisai_py import module_path
from redisai_py.servers import SERVERS, ServerKind, server_binary

SERVER_ENV = "REDISAI_TEST_SERVER"
# Set from --server / $REDISAI_TEST_SERVER before any test module is imported
# (pytest_configure); test modules read them from here.
SERVER_KIND: ServerKind = "redis"
DEBIAN_REDIS = "/usr/bin/redis-server"
REDIS_SERVER = DEBIAN_REDIS  # the executable, whichever server it is
# Loopback ports we draw from: below 55535 as the project requires, and low
# enough that port + 10000 (a cluster node's bus port) is valid too.
PORT_RANGE = (20000, 45000)


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(bus: bool = False) -> int:
    """A loopback port (and, with bus=True, port + 10000) nobody listens on."""
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(1000):
        port = rng.randrange(*PORT_RANGE)
        if _port_is_free(port) and (not bus or _port_is_free(port + 10000)):
            return port
    raise RuntimeError("no free loopback port")


class RedisServer:
    """One server process (redis-server or valkey-server) with the module, stopped by its PID."""

    def __init__(self, workdir: Path, module_args: list[str], server_args: list[str],
                 port: int | None = None, executable: str | None = None) -> None:
        self.executable = executable or REDIS_SERVER  # the server under test unless told
        self.workdir = workdir
        self.module_args = list(module_args)
        self.server_args = list(server_args)
        self.port = port or free_port()
        self.log_path = workdir / f"redis-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        return [
            self.executable,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.workdir),
            "--logfile", str(self.log_path),
            "--save", "",
            "--enable-debug-command", "yes",
            *self.server_args,
            "--loadmodule", str(module_path()), *self.module_args,
        ]

    def start(self, wait: bool = True) -> RedisServer:
        self.proc = subprocess.Popen(self.argv(), cwd=self.workdir,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if self.client(socket_timeout=1).ping():
                    return
            except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
                time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} did not answer:\n{self.log()}")

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log file)"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        """Signals the process by PID and waits for it; SIGKILL if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout)

    def restart(self) -> RedisServer:
        """SIGTERM (which saves if persistence is on), then start on the same port and dir."""
        self.stop()
        return self.start()


ServerFactory = Callable[..., RedisServer]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--server", choices=SERVERS, default=os.environ.get(SERVER_ENV, "redis"),
                     help=f"which server loads the module (default: ${SERVER_ENV} or redis)")


def pytest_configure(config: pytest.Config) -> None:
    global SERVER_KIND, REDIS_SERVER
    kind = config.getoption("--server")
    if kind not in SERVERS:  # a bad $REDISAI_TEST_SERVER (argparse checks --server)
        raise pytest.UsageError(f"${SERVER_ENV}={kind}: expected one of {', '.join(SERVERS)}")
    SERVER_KIND = kind
    try:
        REDIS_SERVER = DEBIAN_REDIS if kind == "redis" else str(server_binary(kind))
    except FileNotFoundError as exc:
        raise pytest.UsageError(str(exc)) from None


def server_says(on_redis: str, on_valkey: str) -> str:
    """The server's own text for the server under test, where Redis 7.0 and
    Valkey word the same thing differently (ACL refusals, replication log
    lines). Never for our texts: those are the same on both."""
    return on_valkey if SERVER_KIND == "valkey" else on_redis


def pytest_report_header(config: pytest.Config) -> str:
    version = subprocess.run([REDIS_SERVER, "--version"], capture_output=True, text=True,
                             check=False).stdout.strip()
    return f"server: {SERVER_KIND} ({REDIS_SERVER}): {version}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for server in getattr(item, "redis_servers", []):
            report.sections.append((f"redis-server :{server.port} log", server.log()))


@pytest.fixture
def server_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerFactory]:
    """Starts servers with the module: factory(module_args=[...], server_args=[...]);
    executable= picks a server other than the one under test."""
    servers: list[RedisServer] = []
    request.node.redis_servers = servers

    def make(module_args: list[str] | None = None, server_args: list[str] | None = None,
             start: bool = True, workdir: Path | None = None,
             executable: str | None = None) -> RedisServer:
        wd = workdir or tmp_path / f"srv{len(servers)}"
        wd.mkdir(parents=True, exist_ok=True)
        server = RedisServer(wd, module_args or [], server_args or [], executable=executable)
        servers.append(server)
        return server.start() if start else server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def shared_server(request: pytest.FixtureRequest,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One server for a whole test module, for stories that can share one
    (each module's `r` fixture resets it). A module may set
    SHARED_SERVER_MODULE_ARGS for its load-time module arguments."""
    module_args = getattr(request.module, "SHARED_SERVER_MODULE_ARGS", [])
    name = request.module.__name__.rpartition(".")[2]
    server = RedisServer(tmp_path_factory.mktemp(name), module_args, []).start()
    yield server
    server.stop()


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Polls predicate until it holds; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def server(server_factory: ServerFactory) -> RedisServer:
    """A fresh server with the module and default arguments."""
    return server_factory()


@pytest.fixture
def r(server: RedisServer) -> redis.Redis:
    """A RESP2 client of `server` that returns bytes."""
    return server.client()
