"""Metrics a Prometheus can scrape: AI.METRICS and the /metrics endpoint.

User stories:
- an operator runs models and scripts and reads, per key, the runs, errors and
  samples AI.INFO reports, plus how long runs waited in the queue and how long
  they ran, as histograms a PromQL query turns into a p99;
- they watch each device's queue (backlog, workers, busy time) and the batches
  BATCHSIZE forms, and the stores, session loads and DAGs the module served;
- a tenant names keys with quotes, backslashes, newlines or raw bytes, and the
  scrape still parses, one series per key, with nothing injected;
- 10,000 models do not explode a scrape: past METRICS_MAX_KEYS, keys count to
  an `other` series, and the fold is counted;
- a key's series lives as long as its model: DEL removes it, RENAME and COPY
  show under the new name, a restart from RDB shows every key again;
- with METRICS_PORT a Prometheus server scrapes /metrics directly (127.0.0.1
  unless METRICS_BIND says otherwise), and the endpoint answers while workers
  are saturated, while a 200 MB model stores, and while another scraper stalls
  or sends garbage.
"""

from __future__ import annotations

import gzip
import io
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

import model_builders as mb
from conftest import RedisServer, ServerFactory, free_port, wait_until

LATENCY_BOUNDS = ["5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
                  "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"]

SCRIPT = """
def add(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] + tensors[1]
"""


# ----------------------------------------------------------------- helpers

def metrics_text(r: redis.Redis) -> str:
    return r.execute_command("AI.METRICS").decode()


def http_get(port: int, path: str = "/metrics", host: str = "127.0.0.1",
             headers: dict[str, str] | None = None, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"http://{host}:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def scrape(port: int) -> str:
    status, _, body = http_get(port)
    assert status == 200
    return body.decode()


def samples(text: str) -> list[Sample]:
    """Every sample, parsed by prometheus_client's own parser."""
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(text: str, name: str, **labels: str) -> float:
    """The one sample called `name` whose labels are exactly `labels`."""
    found = [s.value for s in samples(text) if s.name == name and s.labels == labels]
    assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
    return found[0]


def key_labels(key: str, backend: str = "TORCH", device: str = "CPU", tag: str = "") -> dict[str, str]:
    return {"key": key, "backend": backend, "device": device, "tag": tag}


def run_info(r: redis.Redis, key: str | bytes) -> dict[str, object]:
    reply = r.execute_command("AI.INFO", key)
    return {k.decode(): v for k, v in zip(reply[::2], reply[1::2])}


def tensorset(r: redis.Redis, key: str, array: np.ndarray) -> None:
    dtype = {np.float32: "FLOAT", np.int64: "INT64"}[array.dtype.type]
    r.execute_command("AI.TENSORSET", key, dtype, *array.shape, "BLOB", array.tobytes())


def store_add_model(r: redis.Redis, key: str | bytes, *options: object) -> None:
    assert r.execute_command("AI.MODELSTORE", key, "TORCH", "CPU", *options, "BLOB", mb.torch_add()) == b"OK"


def run_add(r: redis.Redis, key: str | bytes, a: str = "a", b: str = "b") -> object:
    return r.execute_command("AI.MODELEXECUTE", key, "INPUTS", 2, a, b, "OUTPUTS", 2, "sum", "product")


@pytest.fixture
def metrics_server(server_factory: ServerFactory) -> RedisServer:
    """A server serving /metrics on a free port (server.metrics_port)."""
    port = free_port()
    server = server_factory(module_args=["METRICS_PORT", str(port)])
    server.metrics_port = port  # type: ignore[attr-defined]
    return server


# ------------------------------------------------- per-key counters and histograms

def test_counters_match_ai_info_after_known_runs(server: RedisServer) -> None:
    r = server.client()
    store_add_model(r, "m", "TAG", "v1")
    assert r.execute_command("AI.SCRIPTSTORE", "s", "cpu", "ENTRY_POINTS", 1, "add", "SOURCE", SCRIPT) == b"OK"
    tensorset(r, "a", np.ones((3, 2), dtype=np.float32))
    tensorset(r, "b", np.ones((3, 2), dtype=np.float32))
    tensorset(r, "odd", np.ones((4, 5), dtype=np.float32))
    for _ in range(4):
        assert run_add(r, "m") == b"OK"
    with pytest.raises(redis.ResponseError):
        run_add(r, "m", "a", "odd")  # the backend refuses the shapes: a counted error
    dag = ["AI.DAGEXECUTE", "LOAD", 2, "a", "b", "|>", "AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "b",
           "OUTPUTS", 2, "s", "p", "|>", "AI.SCRIPTEXECUTE", "s", "add", "INPUTS", 2, "s", "p", "OUTPUTS", 1, "t"]
    assert r.execute_command(*dag) == [b"OK", b"OK"]
    for _ in range(2):
        r.execute_command("AI.SCRIPTEXECUTE", "s", "add", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "c")

    text = metrics_text(r)
    model, script = run_info(r, "m"), run_info(r, "s")
    labels = key_labels("m", tag="v1")
    assert (model["calls"], model["errors"], model["samples"]) == (6, 1, 15)
    assert value(text, "redisai_model_runs_total", **labels) == model["calls"]
    assert value(text, "redisai_model_errors_total", **labels) == model["errors"]
    assert value(text, "redisai_model_samples_total", **labels) == model["samples"]
    # The execution histogram holds the successful runs; its sum is AI.INFO's DURATION.
    assert value(text, "redisai_model_execution_seconds_count", **labels) == 5
    assert round(value(text, "redisai_model_execution_seconds_sum", **labels) * 1e6) == model["duration"]
    # Every run a worker took waited in the queue first, failed or not.
    assert value(text, "redisai_model_queue_wait_seconds_count", **labels) == 6

    slabels = key_labels("s")  # the device as the queue names it: upper case
    assert script["calls"] == 3
    assert value(text, "redisai_script_runs_total", **slabels) == 3
    assert value(text, "redisai_script_errors_total", **slabels) == 0
    assert round(value(text, "redisai_script_execution_seconds_sum", **slabels) * 1e6) == script["duration"]
    assert not [s for s in samples(text) if s.name == "redisai_script_samples_total"]

    assert value(text, "redisai_dag_runs_total") == 1 and value(text, "redisai_dag_errors_total") == 0
    assert value(text, "redisai_stores_total", type="model") == 1
    assert value(text, "redisai_stores_total", type="script") == 1
    assert value(text, "redisai_session_loads_total", backend="TORCH") == 2
    assert value(text, "redisai_store_seconds_count", type="model") == 1
    assert value(text, "redisai_queue_workers", device="CPU") == 1
    assert value(text, "redisai_queue_length", device="CPU") == 0
    assert value(text, "redisai_queue_busy_seconds_total", device="CPU") > 0
    assert value(text, "redisai_metrics_keys") == 2


def test_histogram_buckets_are_cumulative_and_consistent(server: RedisServer) -> None:
    r = server.client()
    store_add_model(r, "fast")
    assert r.execute_command("AI.MODELSTORE", "slow", "TORCH", "CPU", "BLOB", mb.torch_busy()) == b"OK"
    tensorset(r, "a", np.ones((2, 2), dtype=np.float32))
    tensorset(r, "b", np.ones((2, 2), dtype=np.float32))
    tensorset(r, "x", (np.random.default_rng(0).standard_normal((96, 96)) / 96).astype(np.float32))
    for _ in range(5):
        run_add(r, "fast")
        r.execute_command("AI.MODELEXECUTE", "slow", "INPUTS", 1, "x", "OUTPUTS", 1, "y")

    families = list(text_string_to_metric_families(metrics_text(r)))
    histograms = [f for f in families if f.type == "histogram"]
    assert len(histograms) >= 7
    checked = 0
    for family in histograms:
        series: dict[tuple, list[Sample]] = {}
        for s in family.samples:
            ident = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
            series.setdefault(ident, []).append(s)
        for ident, rows in series.items():
            buckets = [s for s in rows if s.name.endswith("_bucket")]
            (count,) = [s.value for s in rows if s.name.endswith("_count")]
            (total,) = [s.value for s in rows if s.name.endswith("_sum")]
            bounds = [float(s.labels["le"]) for s in buckets]
            assert bounds == sorted(bounds) and bounds[-1] == float("inf"), (family.name, ident)
            counts = [s.value for s in buckets]
            assert counts == sorted(counts), (family.name, ident)  # cumulative
            assert counts[-1] == count and total >= 0, (family.name, ident)
            checked += 1
    assert checked >= 11  # 2 keys x 2, the CPU queue, 2 store kinds, 4 backends
    # The slow model's runs (~10 ms) and most of the fast one's (a tiny add;
    # the first run warms up) land on either side of 1 ms.
    text = metrics_text(r)
    fast = value(text, "redisai_model_execution_seconds_bucket", **key_labels("fast"), le="0.001")
    slow = value(text, "redisai_model_execution_seconds_bucket", **key_labels("slow"), le="0.001")
    assert [s.labels["le"] for s in samples(text) if s.name == "redisai_model_execution_seconds_bucket"
            and s.labels["key"] == "fast"] == LATENCY_BOUNDS
    assert fast >= 3 and slow == 0


def test_batches_are_counted_per_device(server: RedisServer) -> None:
    """Four single-sample runs of a BATCHSIZE 4 MINBATCHSIZE 4 model run as one batch of 4."""
    r = server.client()
    store_add_model(r, "m", "BATCHSIZE", 4, "MINBATCHSIZE", 4, "MINBATCHTIMEOUT", 20000)
    tensorset(r, "a", np.ones((1, 2), dtype=np.float32))
    tensorset(r, "b", np.ones((1, 2), dtype=np.float32))
    replies: list[object] = []

    def run() -> None:
        replies.append(server.client().execute_command(
            "AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "b", "OUTPUTS", 2, "s", "p"))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert replies == [b"OK"] * 4
    text = metrics_text(r)
    assert value(text, "redisai_batched_runs_total", device="CPU") == 4
    assert value(text, "redisai_batch_size_count", device="CPU") == 1
    assert value(text, "redisai_batch_size_sum", device="CPU") == 4
    assert value(text, "redisai_batch_size_bucket", device="CPU", le="2") == 0
    assert value(text, "redisai_batch_size_bucket", device="CPU", le="4") == 1
    assert value(text, "redisai_model_samples_total", **key_labels("m")) == 4


# ------------------------------------------------------------------ label text

HOSTILE_KEYS = [
    (b'q"uote', 'q"uote'),
    (b"back\\slash", "back\\slash"),
    (b"new\nline", "new\nline"),
    (b"ret\rtab\t", "ret\\x0dtab\\x09"),
    (b"nul\x00del\x7f", "nul\\x00del\\x7f"),
    (b"bin\xff\xfe\x80", "bin\\xff\\xfe\\x80"),
    (b"surrogate\xed\xa0\x80", "surrogate\\xed\\xa0\\x80"),
    ("ключ ✓".encode(), "ключ ✓"),
    (b'evil"} 1\n# TYPE injected_total counter\ninjected_total 1\nx{a="', None),
]


def test_hostile_key_names_are_escaped(metrics_server: RedisServer) -> None:
    r = metrics_server.client()
    tensorset(r, "a", np.ones(2, dtype=np.float32))
    tensorset(r, "b", np.ones(2, dtype=np.float32))
    for i, (key, _) in enumerate(HOSTILE_KEYS):
        store_add_model(r, key, "TAG", b'tag"\n\\\xff')
        for _ in range(i + 1):
            assert run_add(r, key) == b"OK"

    for text in (metrics_text(r), scrape(metrics_server.metrics_port)):
        runs = {s.labels["key"]: s.value for s in samples(text) if s.name == "redisai_model_runs_total"}
        assert len(runs) == len(HOSTILE_KEYS)
        for i, (key, label) in enumerate(HOSTILE_KEYS):
            assert runs[label if label is not None else key.decode()] == i + 1
        tags = {s.labels["tag"] for s in samples(text) if s.name == "redisai_model_runs_total"}
        assert tags == {'tag"\n\\\\xff'}
        assert "injected" not in {f.name for f in text_string_to_metric_families(text)}
    assert r.ping()


def test_keys_that_read_the_same_share_one_series(server: RedisServer) -> None:
    """A raw byte shows as \\xHH, so the key spelled with those four characters
    reads the same: the two share one series rather than show one label set twice."""
    r = server.client()
    tensorset(r, "a", np.ones(2, dtype=np.float32))
    tensorset(r, "b", np.ones(2, dtype=np.float32))
    for key in (b"k\xff", b"k\\xff"):
        store_add_model(r, key)
        assert run_add(r, key) == b"OK"
    text = metrics_text(r)
    assert value(text, "redisai_model_runs_total", **key_labels("k\\xff")) == 2
    assert value(text, "redisai_metrics_keys") == 1
    assert run_info(r, b"k\xff")["calls"] == run_info(r, b"k\\xff")["calls"] == 1


# --------------------------------------------------------------- the series cap

def test_series_cap_folds_further_keys_into_other(server_factory: ServerFactory) -> None:
    r = server_factory(module_args=["METRICS_MAX_KEYS", "3"]).client()
    tensorset(r, "a", np.ones(2, dtype=np.float32))
    tensorset(r, "b", np.ones(2, dtype=np.float32))
    for i in range(5):
        store_add_model(r, f"m{i}")
        assert run_add(r, f"m{i}") == b"OK"
    text = metrics_text(r)
    runs = {s.labels["key"]: s.value for s in samples(text) if s.name == "redisai_model_runs_total"}
    assert runs == {"m0": 1, "m1": 1, "m2": 1, "other": 2}
    other = {"key": "other", "backend": "", "device": "", "tag": ""}
    assert value(text, "redisai_model_runs_total", **other) == 2
    assert value(text, "redisai_metrics_keys") == 3
    assert value(text, "redisai_metrics_keys_limit") == 3
    assert value(text, "redisai_metrics_folded_keys_total") == 2

    # A deleted key frees its place: the next new key gets a series of its own.
    assert r.execute_command("AI.MODELDEL", "m0") == b"OK"
    store_add_model(r, "m5")
    text = metrics_text(r)
    runs = {s.labels["key"]: s.value for s in samples(text) if s.name == "redisai_model_runs_total"}
    assert runs == {"m1": 1, "m2": 1, "m5": 0, "other": 2}
    assert value(text, "redisai_metrics_folded_keys_total") == 2


def test_a_thousand_keys_past_the_cap_cost_no_more_series(server_factory: ServerFactory) -> None:
    r = server_factory(module_args=["METRICS_MAX_KEYS", "10"]).client()
    blob = mb.torch_add()
    pipe = r.pipeline(transaction=False)
    for i in range(1000):
        pipe.execute_command("AI.MODELSTORE", f"tenant:{i}", "TORCH", "CPU", "BLOB", blob)
    assert pipe.execute() == [b"OK"] * 1000
    text = metrics_text(r)
    keys = {s.labels["key"] for s in samples(text) if s.name == "redisai_model_runs_total"}
    assert len(keys) == 11 and "other" in keys
    assert value(text, "redisai_metrics_folded_keys_total") == 990
    assert len(text) < 100_000


# --------------------------------------------------------- a key's series and its life

def test_a_series_lives_as_long_as_its_key(server: RedisServer) -> None:
    r = server.client()
    tensorset(r, "a", np.ones(2, dtype=np.float32))
    tensorset(r, "b", np.ones(2, dtype=np.float32))
    for key in ("gone", "old", "orig"):
        store_add_model(r, key)
        run_add(r, key)

    r.delete("gone")
    r.rename("old", "new")
    r.copy("orig", "twin")
    run_add(r, "new")
    text = metrics_text(r)
    runs = {s.labels["key"]: s.value for s in samples(text) if s.name == "redisai_model_runs_total"}
    # The renamed model shows under its new name from its next use, as a new
    # series (counted from zero, as Prometheus takes any new label set);
    # AI.INFO keeps the model's own totals.
    assert runs == {"new": 1, "orig": 1, "twin": 0}
    assert run_info(r, "new")["calls"] == 2

    # A model stored over the key with the same labels carries its series on
    # (AI.INFO starts again: it counts per model); a new TAG is a new series.
    store_add_model(r, "orig")
    run_add(r, "orig")
    assert value(metrics_text(r), "redisai_model_runs_total", **key_labels("orig")) == 2
    assert run_info(r, "orig")["calls"] == 1
    store_add_model(r, "orig", "TAG", "v2")
    runs = {(s.labels["key"], s.labels["tag"]): s.value for s in samples(metrics_text(r))
            if s.name == "redisai_model_runs_total"}
    assert runs == {("new", ""): 1, ("orig", "v2"): 0, ("twin", ""): 0}

    # After a restart from RDB every stored key shows again, run or not.
    assert r.save() is True
    server.restart()
    r = server.client()
    runs = {s.labels["key"]: s.value for s in samples(metrics_text(r)) if s.name == "redisai_model_runs_total"}
    assert runs == {"new": 0, "orig": 0, "twin": 0}


def test_ai_metrics_answers_in_multi_and_checks_its_arity(server: RedisServer) -> None:
    r = server.client()
    pipe = r.pipeline(transaction=True)
    pipe.execute_command("AI.TENSORSET", "t", "FLOAT", 1, "VALUES", 1)
    pipe.execute_command("AI.METRICS")
    stored, text = pipe.execute()
    assert stored == b"OK" and b"# TYPE redisai_model_runs_total counter" in text
    with pytest.raises(redis.ResponseError, match=r"^wrong number of arguments for 'AI.METRICS' command$"):
        r.execute_command("AI.METRICS", "extra")
    assert r.execute_command("AI.TENSORGET", "t", "VALUES") == [b"1"]


# ------------------------------------------------------------------ the endpoint

def test_endpoint_serves_what_ai_metrics_says(metrics_server: RedisServer) -> None:
    r = metrics_server.client()
    port = metrics_server.metrics_port
    store_add_model(r, "m")
    status, headers, body = http_get(port)
    assert status == 200 and headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert [f.name for f in text_string_to_metric_families(body.decode())] == \
        [f.name for f in text_string_to_metric_families(metrics_text(r))]
    assert value(body.decode(), "redisai_model_runs_total", **key_labels("m")) == 0

    status, headers, body = http_get(port, headers={"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert b"redisai_queue_workers" in gzip.decompress(body)
    assert http_get(port, "/other")[0] == 404
    assert f"metrics served at http://127.0.0.1:{port}/metrics" in metrics_server.log()


def test_metrics_bind_picks_the_address(server_factory: ServerFactory) -> None:
    port = free_port()
    server_factory(module_args=["METRICS_PORT", str(port), "METRICS_BIND", "127.0.0.2"])
    assert http_get(port, host="127.0.0.2")[0] == 200
    with pytest.raises(urllib.error.URLError):
        http_get(port, host="127.0.0.1", timeout=5)


@pytest.mark.parametrize("args, logged", [
    (["METRICS_PORT", "0"], "ERR error processing argument: METRICS_PORT 0"),
    (["METRICS_PORT", "65536"], "ERR error processing argument: METRICS_PORT 65536"),
    (["METRICS_PORT", "http"], "ERR error processing argument: METRICS_PORT http"),
    (["METRICS_MAX_KEYS", "-1"], "ERR error processing argument: METRICS_MAX_KEYS -1"),
])
def test_bad_metrics_arguments_fail_the_load(server_factory: ServerFactory, args: list[str],
                                             logged: str) -> None:
    server = server_factory(module_args=args, start=False)
    server.start(wait=False)
    assert server.proc is not None and server.proc.wait(60) != 0
    assert logged in server.log()


def test_a_taken_port_fails_the_load_with_a_clear_line(server_factory: ServerFactory) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = server_factory(module_args=["METRICS_PORT", str(port)], start=False)
        server.start(wait=False)
        assert server.proc is not None and server.proc.wait(60) != 0
    assert f"ERR cannot serve metrics on 127.0.0.1 port {port}: OSError" in server.log()


def test_a_slow_or_broken_scraper_stalls_nothing(metrics_server: RedisServer) -> None:
    r = metrics_server.client()
    port = metrics_server.metrics_port
    store_add_model(r, "m")
    stalled = socket.create_connection(("127.0.0.1", port))
    stalled.sendall(b"GET /metr")  # and never the rest
    garbage = socket.create_connection(("127.0.0.1", port))
    garbage.sendall(b"\x00\xff\r\n" * 64 + b"\r\n")
    garbage.settimeout(10)
    assert b"400 - Bad request" in garbage.recv(4096)
    assert http_get(port, "/metrics?name[]=x")[0] == 200  # parameters are ignored

    started = time.perf_counter()
    assert value(scrape(port), "redisai_model_runs_total", **key_labels("m")) == 0
    assert time.perf_counter() - started < 2.0
    assert r.ping() and metrics_text(r)
    stalled.close()
    garbage.close()
    assert scrape(port)


def test_a_flood_of_connections_is_refused_past_the_bound(metrics_server: RedisServer) -> None:
    from redisai_py.metrics import MAX_CONCURRENT_REQUESTS

    r = metrics_server.client()
    port = metrics_server.metrics_port
    store_add_model(r, "m")
    stalled = [socket.create_connection(("127.0.0.1", port)) for _ in range(MAX_CONCURRENT_REQUESTS)]
    for conn in stalled:
        conn.sendall(b"GET /metr")  # each holds a request thread, waiting for the rest
    time.sleep(0.5)  # the accepting thread has taken them all

    status, _, body = http_get(port)
    assert (status, body) == (503, b"too many concurrent scrapes")
    assert r.ping() and value(metrics_text(r), "redisai_model_runs_total", **key_labels("m")) == 0

    for conn in stalled:
        conn.close()
    # The stalled threads see their peers gone and free their places.
    wait_until(lambda: http_get(port)[0] == 200, timeout=15, what="a free request thread")
    assert value(scrape(port), "redisai_model_runs_total", **key_labels("m")) == 0


def timed_scrapes(port: int, stop: threading.Event, latencies: list[float], errors: list[str]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        try:
            scrape(port)
        except Exception as exc:  # reported by the test
            errors.append(repr(exc))
        latencies.append(time.perf_counter() - started)
        time.sleep(0.05)


def test_endpoint_answers_while_workers_are_saturated(metrics_server: RedisServer) -> None:
    r = metrics_server.client()
    assert r.execute_command("AI.MODELSTORE", "busy", "TORCH", "CPU", "BLOB", mb.torch_busy()) == b"OK"
    tensorset(r, "x", (np.random.default_rng(0).standard_normal((96, 96)) / 96).astype(np.float32))
    stop, errors, latencies = threading.Event(), [], []
    runs = [0]

    def client_loop(i: int) -> None:
        client = metrics_server.client(socket_timeout=60)
        while not stop.is_set():
            if client.execute_command("AI.MODELEXECUTE", "busy", "INPUTS", 1, "x", "OUTPUTS", 1, f"y{i}") != b"OK":
                errors.append("run failed")
            runs[0] += 1

    clients = [threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(16)]
    for t in clients:
        t.start()
    wait_until(lambda: runs[0] >= 20, what="the workers to be busy")
    scraper = threading.Thread(target=timed_scrapes,
                               args=(metrics_server.metrics_port, stop, latencies, errors), daemon=True)
    scraper.start()
    wait_until(lambda: len(latencies) >= 20, timeout=60, what="20 scrapes")
    backlog = value(scrape(metrics_server.metrics_port), "redisai_queue_length", device="CPU")
    stop.set()
    for t in [scraper, *clients]:
        t.join(60)
    assert errors == []
    assert backlog > 0  # the scrape saw the queue backing up
    worst = max(latencies)
    print(f"/metrics under load: {len(latencies)} scrapes, worst {worst * 1000:.1f} ms")
    assert worst < 2.0
    assert r.ping()


def big_torch_model(megabytes: int) -> bytes:
    """forward(a, b) -> (a + b + w[0], a * b), carrying `megabytes` of weights."""
    import torch

    class Heavy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weights = torch.nn.Parameter(torch.full((megabytes * 1024 * 1024 // 4,), 1.0),
                                              requires_grad=False)

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return a + b + self.weights[0], a * b

    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(Heavy()), buf)
    return buf.getvalue()


@pytest.mark.slow
def test_endpoint_answers_while_a_200_mb_model_stores(metrics_server: RedisServer) -> None:
    big = big_torch_model(200)
    assert len(big) > 200 * 1024 * 1024
    storer = metrics_server.client(socket_timeout=120)
    stored: dict[str, object] = {}
    done = threading.Event()

    def store() -> None:
        try:
            stored["reply"] = storer.execute_command("AI.MODELSTORE", "big", "TORCH", "CPU", "BLOB", big)
        except Exception as exc:  # reported below
            stored["reply"] = exc
        finally:
            done.set()

    stop, errors, latencies = threading.Event(), [], []
    scraper = threading.Thread(target=timed_scrapes,
                               args=(metrics_server.metrics_port, stop, latencies, errors), daemon=True)
    scraper.start()
    wait_until(lambda: len(latencies) >= 3, what="the first scrapes")
    before = len(latencies)
    threading.Thread(target=store, daemon=True).start()
    done.wait(120)
    during = len(latencies) - before
    stop.set()
    scraper.join(30)
    assert stored.get("reply") == b"OK" and errors == []
    worst = max(latencies[before:])
    print(f"/metrics during a 200 MB store: {during} scrapes, worst {worst * 1000:.1f} ms")
    assert during >= 3 and worst < 5.0
    text = scrape(metrics_server.metrics_port)
    assert value(text, "redisai_stores_total", type="model") == 1
    assert value(text, "redisai_store_seconds_count", type="model") == 1
    metrics_server.client().delete("big")


# ---------------------------------------------------------- a real Prometheus

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


@pytest.fixture
def prometheus(metrics_server: RedisServer, tmp_path: Path) -> Iterator[int]:
    """Debian's Prometheus scraping metrics_server every second; yields its web port."""
    if not Path(PROMETHEUS).exists():
        pytest.skip("Debian's prometheus package is not installed: `make install` installs it "
                    "(apt-get install prometheus)")
    web_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: redisai\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{metrics_server.metrics_port}']\n")
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{web_port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        yield web_port
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(20)
        log.close()


def prom_query(web_port: int, query: str) -> list[dict[str, object]]:
    import json
    from urllib.parse import quote

    try:
        status, _, body = http_get(web_port, f"/api/v1/query?query={quote(query)}", timeout=5)
    except (urllib.error.URLError, ConnectionError):
        return []  # not up yet
    reply = json.loads(body) if status == 200 else {}
    return reply.get("data", {}).get("result", []) if reply.get("status") == "success" else []


def test_a_prometheus_server_scrapes_the_endpoint(metrics_server: RedisServer, prometheus: int) -> None:
    r = metrics_server.client()
    store_add_model(r, 'fraud"\nmodel', "TAG", "v2")
    tensorset(r, "a", np.ones(2, dtype=np.float32))
    tensorset(r, "b", np.ones(2, dtype=np.float32))
    for _ in range(3):
        assert run_add(r, 'fraud"\nmodel') == b"OK"

    wait_until(lambda: prom_query(prometheus, 'redisai_model_runs_total{tag="v2"} == 3'), timeout=90,
               what="Prometheus to scrape the three runs")
    (series,) = prom_query(prometheus, "redisai_model_runs_total")
    assert series["metric"] == {"__name__": "redisai_model_runs_total", "job": "redisai",
                                "instance": f"127.0.0.1:{metrics_server.metrics_port}",
                                "key": 'fraud"\nmodel', "backend": "TORCH", "device": "CPU", "tag": "v2"}
    (up,) = prom_query(prometheus, 'up{job="redisai"}')
    assert up["value"][1] == "1"
    # A quantile per key from the buckets (docs/operations.md takes it over a rate()).
    (p99,) = prom_query(prometheus, "histogram_quantile(0.99, sum by (key, le) "
                                    "(redisai_model_execution_seconds_bucket))")
    assert p99["metric"] == {"key": 'fraud"\nmodel'} and 0 < float(p99["value"][1]) <= 10
    assert prom_query(prometheus, 'redisai_queue_length{device="CPU"}')
