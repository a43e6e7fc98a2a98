"""The design's invariants, as tests: the main thread stays responsive while
workers are saturated, and fork (BGSAVE) and SIGTERM work under load.

Speed itself is measured in benchmarks/; the bounds here are loose on
purpose (a shared 2-core CI box), yet a main thread that waited for the GIL
behind a ~10 ms model run would blow them.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import model_builders as mb
from conftest import RedisServer, ServerFactory


def saturate(server: RedisServer, clients: int, stop: threading.Event, errors: list[str]) -> list[threading.Thread]:
    """Clients that send MODELEXECUTE back to back until `stop` is set."""

    def loop(i: int) -> None:
        client = server.client(socket_timeout=30)
        try:
            while not stop.is_set():
                reply = client.execute_command("AI.MODELEXECUTE", "busy", "INPUTS", 1, "x",
                                               "OUTPUTS", 1, f"y{i}")
                assert reply == b"OK", reply
        except Exception as exc:  # reported by the test, not swallowed
            errors.append(repr(exc))

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    return threads


@pytest.fixture
def busy_server(server_factory: ServerFactory) -> RedisServer:
    server = server_factory()
    client = server.client()
    assert client.execute_command("AI.MODELSTORE", "busy", "TORCH", "CPU", "BLOB", mb.torch_busy()) == b"OK"
    x = np.random.default_rng(0).standard_normal((96, 96)).astype(np.float32) / 96
    client.execute_command("AI.TENSORSET", "x", "FLOAT", 96, 96, "BLOB", x.tobytes())
    client.execute_command("AI.MODELEXECUTE", "busy", "INPUTS", 1, "x", "OUTPUTS", 1, "warm")
    return server


def test_ping_stays_fast_while_32_clients_saturate_the_workers(busy_server: RedisServer):
    stop, errors = threading.Event(), []
    threads = saturate(busy_server, 32, stop, errors)
    pinger = busy_server.client()
    latencies = []
    try:
        time.sleep(0.3)  # let the queue fill
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            start = time.perf_counter()
            assert pinger.ping()
            latencies.append(time.perf_counter() - start)
            time.sleep(0.002)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors[:3]
    calls = dict(zip(*[iter(busy_server.client().execute_command("AI.INFO", "busy"))] * 2))[b"calls"]
    assert calls > 50  # the workers really were busy
    p99 = float(np.percentile(latencies, 99))
    assert p99 < 0.025, f"PING p99 {p99 * 1000:.1f} ms while workers were saturated"


def test_bgsave_finishes_and_loads_while_workers_are_saturated(busy_server: RedisServer):
    client = busy_server.client()
    stop, errors = threading.Event(), []
    threads = saturate(busy_server, 8, stop, errors)
    try:
        time.sleep(0.2)
        for _ in range(3):
            client.bgsave()
            deadline = time.monotonic() + 30
            while client.info("persistence")["rdb_bgsave_in_progress"]:
                assert time.monotonic() < deadline, "BGSAVE hung under load"
                time.sleep(0.02)
            assert client.info("persistence")["rdb_last_bgsave_status"] == "ok"
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors, errors[:3]
    before = client.execute_command("AI.MODELGET", "busy", "BLOB")
    busy_server.stop()
    busy_server.start()
    assert busy_server.client().execute_command("AI.MODELGET", "busy", "BLOB") == before


def test_sigterm_under_load_exits_cleanly(busy_server: RedisServer):
    stop, errors = threading.Event(), []
    threads = saturate(busy_server, 8, stop, errors)
    time.sleep(0.3)
    returncode = busy_server.stop()
    stop.set()
    for t in threads:
        t.join(30)
    assert returncode == 0
    log = busy_server.log()
    assert "ready to exit, bye bye" in log
    assert "crashed by signal" not in log
