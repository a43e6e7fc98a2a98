"""The inference result cache: a repeated request costs a lookup, not a model run.

User stories: an engineer stores a model with `CACHE [TTL ms]` and sends the
same request again and again. The first run is a miss (the model runs), the
next ones are hits: the same output keys get outputs bit-identical to an
uncached run of the same model, AI.INFO counts `cache_hits` and no new call,
and INFO's ai_cache section shows the entry. A request that differs in one
byte, in shape or in dtype is a miss. A model overwritten, restored, copied
onto the key or deleted and stored again never answers with the old model's
results. An entry past its TTL misses. Under a tiny CACHE_MEMORY the cache
evicts and still answers right. A failing run is never cached. Runs batched
together each keep their own result. A DAG's model op hits too. A replica gets the outputs of a hit (as AI.TENSORSET) but never
the cache; an AOF or RDB restart keeps the CACHE setting and starts with an
empty cache. Bad CACHE, TTL and CACHE_MEMORY values get clear errors and
change nothing.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import redis

import fuzz_dump
import model_builders as mb
from conftest import RedisServer, ServerFactory, wait_until

MB = 1024 * 1024


# ---------------------------------------------------------------------------
# helpers


COUNTERS = ("hits", "misses", "inserts", "evictions", "expired")
# The shared server's counters when the running test began (by port): they
# count from server start, so a test reads them as increments.
BASELINE: dict[int, dict[str, int]] = {}


def info_cache(r: redis.Redis) -> dict[str, int]:
    """INFO's ai_cache section, without the `ai_cache_` prefix; on the shared
    server the counters are what the running test added."""
    figures = {k.removeprefix("ai_cache_"): int(v) for k, v in r.info("ai_cache").items()}
    base = BASELINE.get(r.connection_pool.connection_kwargs["port"], {})
    return {k: v - base.get(k, 0) for k, v in figures.items()}


def run_info(r: redis.Redis, key: str) -> dict[bytes, object]:
    reply = r.execute_command("AI.INFO", key)
    return dict(zip(reply[::2], reply[1::2]))


def meta(r: redis.Redis, key: str) -> dict[bytes, object]:
    reply = r.execute_command("AI.MODELGET", key, "META")
    return dict(zip(reply[::2], reply[1::2]))


def tensorset(r: redis.Redis, key: str, array: np.ndarray, dtype: str = "FLOAT") -> None:
    assert r.execute_command("AI.TENSORSET", key, dtype, *array.shape, "BLOB", array.tobytes()) == b"OK"


def tensorget(r: redis.Redis, key: str) -> list[object]:
    """dtype, shape and bytes, as TENSORGET META BLOB answers them."""
    return r.execute_command("AI.TENSORGET", key, "META", "BLOB")


def execute(r: redis.Redis, model: str, inputs: list[str], outputs: list[str]) -> object:
    return r.execute_command("AI.MODELEXECUTE", model, "INPUTS", len(inputs), *inputs,
                             "OUTPUTS", len(outputs), *outputs)


def floats(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@functools.cache
def blob(name: str) -> bytes:
    return {
        "add": mb.torch_add,
        "mlp0": lambda: mb.torch_mlp(seed=0),
        "mlp1": lambda: mb.torch_mlp(seed=1),
        "busy": mb.torch_busy,
        "onnx": mb.onnx_add,
        "onnx_strings": mb.onnx_string_identity,
        "tf": mb.tf_graph_def_mul,
        "savedmodel": lambda: mb.tf_saved_model_archive("tar.gz"),
        "tflite": mb.tflite_add_mul,
    }[name]()


def store(r: redis.Redis, key: str, name: str, *options: object) -> None:
    """AI.MODELSTORE key TORCH CPU <options> BLOB <blob of `name`>."""
    assert r.execute_command("AI.MODELSTORE", key, "TORCH", "CPU", *options, "BLOB", blob(name)) == b"OK"


def still_serving(r: redis.Redis) -> None:
    assert r.ping()
    assert r.execute_command("AI.TENSORGET", "guard", "VALUES") == [b"1", b"2"]


@pytest.fixture
def r(shared_server: RedisServer, request: pytest.FixtureRequest) -> redis.Redis:
    """A clean keyspace (and so an empty cache) at the default budget, with a guard tensor."""
    request.node.redis_servers = [shared_server]  # conftest attaches its log on failure
    client = shared_server.client(socket_timeout=60)
    client.flushall()
    assert client.execute_command("AI.CONFIG", "CACHE_MEMORY", 64 * MB) == b"OK"
    client.execute_command("AI.TENSORSET", "guard", "FLOAT", 2, "VALUES", 1, 2)
    BASELINE.pop(shared_server.port, None)
    BASELINE[shared_server.port] = {k: v for k, v in info_cache(client).items() if k in COUNTERS}
    return client


# ---------------------------------------------------------------------------
# hits give what a run gives, on every backend


@dataclass(frozen=True)
class Case:
    backend: str
    name: str
    options: tuple[object, ...]  # TF node names
    inputs: dict[str, tuple[str, np.ndarray]]  # key -> (dtype, array)
    noutputs: int


CASES = {
    "TORCH": Case("TORCH", "mlp0", (), {"tx": ("FLOAT", mb.mlp_inputs(batch=4)[0]),
                                        "ref": ("FLOAT", mb.mlp_inputs(batch=4)[1])}, 1),
    "ONNX": Case("ONNX", "onnx", (), {"a": ("FLOAT", floats((2,), 1)), "b": ("FLOAT", floats((2,), 2))}, 2),
    "ONNX_STRINGS": Case("ONNX", "onnx_strings", (), {"text": ("STRING", np.array([b"h\xc3\xa9llo", b"", b"x"]))}, 1),
    "TF": Case("TF", "tf", ("INPUTS", 2, "a", "b", "OUTPUTS", 1, "mul"),
               {"a": ("FLOAT", floats((3, 2), 3)), "b": ("FLOAT", floats((3, 2), 4))}, 1),
    "TF_SAVEDMODEL": Case("TF", "savedmodel", ("INPUTS", 2, "x", "y", "OUTPUTS", 2, "sum", "scaled"),
                          {"x": ("FLOAT", floats((2, 3), 5)), "y": ("FLOAT", floats((2, 3), 6))}, 2),
    "TFLITE": Case("TFLITE", "tflite", (), {"a": ("FLOAT", floats((1, 3), 7)), "b": ("FLOAT", floats((1, 3), 8))}, 2),
}


def set_inputs(r: redis.Redis, case: Case) -> None:
    for key, (dtype, array) in case.inputs.items():
        if dtype == "STRING":
            r.execute_command("AI.TENSORSET", key, "STRING", len(array), "VALUES", *array)
        else:
            tensorset(r, key, array, dtype)


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_a_hit_writes_outputs_bit_identical_to_an_uncached_run(r: redis.Redis, case: str) -> None:
    c = CASES[case]
    for key, cache in (("plain", ()), ("cached", ("CACHE",))):
        assert r.execute_command("AI.MODELSTORE", key, c.backend, "CPU", *cache, *c.options,
                                 "BLOB", blob(c.name)) == b"OK"
    set_inputs(r, c)
    inputs = list(c.inputs)
    plain = [f"plain:{i}" for i in range(c.noutputs)]
    assert execute(r, "plain", inputs, plain) == b"OK"
    expected = [tensorget(r, key) for key in plain]

    for round_ in ("miss", "hit", "hit again"):
        outs = [f"out:{round_}:{i}" for i in range(c.noutputs)]
        assert execute(r, "cached", inputs, outs) == b"OK"
        assert [tensorget(r, key) for key in outs] == expected, round_

    stats = run_info(r, "cached")
    assert (stats[b"calls"], stats[b"cache_hits"], stats[b"cache_misses"]) == (1, 2, 1)
    assert b"cache_hits" not in run_info(r, "plain")  # an uncached model: RedisAI's reply
    figures = info_cache(r)
    assert (figures["entries"], figures["inserts"], figures["hits"]) == (1, 1, 2)
    assert 0 < figures["bytes"] <= figures["budget"] == 64 * MB


def test_a_request_that_differs_in_bytes_shape_or_dtype_misses(r: redis.Redis) -> None:
    store(r, "m", "add", "CACHE")
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    tensorset(r, "a", a)
    tensorset(r, "b", a)
    assert execute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"

    # One byte changed, in the second input.
    changed = a.copy()
    changed.reshape(-1).view(np.uint8)[5] ^= 1
    tensorset(r, "b", changed)
    assert execute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
    np.testing.assert_array_equal(
        np.frombuffer(tensorget(r, "s")[-1], np.float32).reshape(2, 3), a + changed)

    # The same bytes as another shape, then as another dtype.
    tensorset(r, "a", a.reshape(3, 2))
    tensorset(r, "b", a.reshape(3, 2))
    assert execute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
    assert tensorget(r, "s")[3] == [3, 2]
    tensorset(r, "a", a.view(np.int32), "INT32")
    tensorset(r, "b", a.view(np.int32), "INT32")
    assert execute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
    assert tensorget(r, "s")[1] == b"INT32"
    np.testing.assert_array_equal(np.frombuffer(tensorget(r, "s")[-1], np.int32),
                                  (a.view(np.int32) * 2).ravel())

    # Inputs swapped: the same tensors in another order.
    tensorset(r, "a", a)
    tensorset(r, "b", a + 1)
    assert execute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
    assert execute(r, "m", ["b", "a"], ["s", "p"]) == b"OK"

    stats = run_info(r, "m")
    assert (stats[b"calls"], stats[b"cache_hits"], stats[b"cache_misses"]) == (6, 0, 6)
    # Every one of them is now an entry, and each hits.
    assert execute(r, "m", ["b", "a"], ["s", "p"]) == b"OK"
    assert run_info(r, "m")[b"cache_hits"] == 1
    assert info_cache(r)["entries"] == 6


def test_inputs_with_equal_bytes_in_other_keys_hit(r: redis.Redis) -> None:
    """The key is the content, not the key names: a copy of the inputs hits."""
    store(r, "m", "add", "CACHE")
    tensorset(r, "a", floats((2, 2), 1))
    tensorset(r, "b", floats((2, 2), 2))
    assert execute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
    assert r.copy("a", "a2") and r.copy("b", "b2")
    assert execute(r, "m", ["a2", "b2"], ["s2", "p2"]) == b"OK"
    assert tensorget(r, "s2") == tensorget(r, "s") and tensorget(r, "p2") == tensorget(r, "p")
    assert run_info(r, "m")[b"cache_hits"] == 1


# ---------------------------------------------------------------------------
# a changed model never answers with the old one's results


def mlp_output(r: redis.Redis, model: str) -> bytes:
    assert execute(r, model, ["tx", "ref"], ["out"]) == b"OK"
    return tensorget(r, "out")[-1]


@pytest.fixture
def mlp(r: redis.Redis) -> dict[str, bytes]:
    """Inputs tx, ref and the outputs of two MLPs that differ only in weights
    (stored uncached under u0 and u1)."""
    tx, ref = mb.mlp_inputs(batch=2)
    tensorset(r, "tx", tx)
    tensorset(r, "ref", ref)
    store(r, "u0", "mlp0")
    store(r, "u1", "mlp1")
    outputs = {"mlp0": mlp_output(r, "u0"), "mlp1": mlp_output(r, "u1")}
    assert outputs["mlp0"] != outputs["mlp1"]
    return outputs


@pytest.mark.parametrize("change", ["store over", "del then store", "restore", "copy onto", "rename onto"])
def test_a_changed_model_never_serves_the_old_results(r: redis.Redis, mlp: dict[str, bytes],
                                                      change: str) -> None:
    store(r, "m", "mlp0", "CACHE")
    assert mlp_output(r, "m") == mlp["mlp0"]
    assert mlp_output(r, "m") == mlp["mlp0"]  # a hit
    assert run_info(r, "m")[b"cache_hits"] == 1

    if change == "store over":
        store(r, "m", "mlp1", "CACHE")
    elif change == "del then store":
        assert r.delete("m") == 1
        store(r, "m", "mlp1", "CACHE")
    elif change == "restore":
        store(r, "other", "mlp1", "CACHE")
        assert r.restore("m", 0, r.dump("other"), replace=True)
    elif change == "copy onto":
        store(r, "other", "mlp1", "CACHE")
        assert r.copy("other", "m", replace=True)
    else:
        store(r, "other", "mlp1", "CACHE")
        assert r.rename("other", "m")

    assert info_cache(r)["entries"] == 0  # the old model's entry went with it
    assert mlp_output(r, "m") == mlp["mlp1"]
    assert mlp_output(r, "m") == mlp["mlp1"]
    stats = run_info(r, "m")
    assert (stats[b"calls"], stats[b"cache_hits"], stats[b"cache_misses"]) == (1, 1, 1)


def test_a_renamed_model_keeps_its_entries(r: redis.Redis, mlp: dict[str, bytes]) -> None:
    """RENAME moves the same model: its results are still its own."""
    store(r, "m", "mlp0", "CACHE")
    assert mlp_output(r, "m") == mlp["mlp0"]
    assert r.rename("m", "moved")
    assert mlp_output(r, "moved") == mlp["mlp0"]
    assert run_info(r, "moved")[b"cache_hits"] == 1


# ---------------------------------------------------------------------------
# TTL, budget, flushes


def test_an_entry_past_its_ttl_misses_and_runs_again(r: redis.Redis) -> None:
    store(r, "m", "add", "CACHE", "TTL", 300)
    assert meta(r, "m")[b"cache_ttl"] == 300
    tensorset(r, "a", floats((2,), 1))
    tensorset(r, "b", floats((2,), 2))
    assert execute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
    assert execute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
    assert run_info(r, "m")[b"cache_hits"] == 1
    time.sleep(0.4)
    before = tensorget(r, "s")
    assert execute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
    assert tensorget(r, "s") == before
    stats = run_info(r, "m")
    assert (stats[b"calls"], stats[b"cache_hits"], stats[b"cache_misses"]) == (2, 1, 2)
    assert info_cache(r)["expired"] == 1
    assert execute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"  # the new entry serves
    assert run_info(r, "m")[b"cache_hits"] == 2


def test_a_tiny_budget_evicts_least_recently_used_and_stays_right(r: redis.Redis) -> None:
    store(r, "m", "add", "CACHE")
    inputs = [floats((4, 4), seed) for seed in range(12)]
    tensorset(r, "b", inputs[0])
    tensorset(r, "a", inputs[0])
    assert execute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
    entry = info_cache(r)["bytes"]
    assert r.execute_command("AI.CONFIG", "CACHE_MEMORY", entry * 3) == b"OK"  # room for 3
    for rounds in range(2):
        for i, x in enumerate(inputs):
            tensorset(r, "a", x)
            assert execute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
            got = np.frombuffer(tensorget(r, "s")[-1], np.float32).reshape(4, 4)
            np.testing.assert_array_equal(got, x + inputs[0], err_msg=f"round {rounds} input {i}")
            figures = info_cache(r)
            assert figures["bytes"] <= figures["budget"] and figures["entries"] <= 3
    figures = info_cache(r)
    assert figures["evictions"] >= 2 * len(inputs) - 3 - 1
    # The most recently used entry is kept, the oldest one went.
    assert execute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
    hits = run_info(r, "m")[b"cache_hits"]
    assert hits >= 1
    tensorset(r, "a", inputs[0])
    assert execute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
    assert run_info(r, "m")[b"cache_hits"] == hits


def test_cache_memory_zero_turns_the_cache_off_and_back_on(r: redis.Redis) -> None:
    store(r, "m", "add", "CACHE")
    tensorset(r, "a", floats((2,), 1))
    tensorset(r, "b", floats((2,), 2))
    assert execute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
    assert info_cache(r)["entries"] == 1
    assert r.execute_command("AI.CONFIG", "CACHE_MEMORY", 0) == b"OK"
    assert r.execute_command("AI.CONFIG", "GET", "CACHE_MEMORY") == 0
    assert info_cache(r)["entries"] == info_cache(r)["bytes"] == 0
    for _ in range(2):
        assert execute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
    stats = run_info(r, "m")
    assert (stats[b"calls"], stats[b"cache_hits"], stats[b"cache_misses"]) == (3, 0, 1)
    assert r.execute_command("AI.CONFIG", "CACHE_MEMORY", MB) == b"OK"
    for _ in range(2):
        assert execute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
    assert run_info(r, "m")[b"cache_hits"] == 1


@pytest.mark.parametrize("flush", ["CACHE_FLUSH", "FLUSHDB", "FLUSHALL ASYNC"])
def test_flushes_empty_the_cache(r: redis.Redis, flush: str) -> None:
    store(r, "m", "add", "CACHE")
    tensorset(r, "a", floats((2,), 1))
    tensorset(r, "b", floats((2,), 2))
    assert execute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
    assert info_cache(r)["entries"] == 1
    if flush == "CACHE_FLUSH":
        assert r.execute_command("AI.CONFIG", "CACHE_FLUSH") == b"OK"
        assert r.exists("m", "a", "b", "s") == 4  # the keys stay
        assert execute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
        assert run_info(r, "m")[b"cache_misses"] == 2
    else:
        assert r.execute_command(*flush.split())
        wait_until(lambda: r.dbsize() == 0, what="the flush")
    assert info_cache(r)["entries"] == (1 if flush == "CACHE_FLUSH" else 0)  # CACHE_FLUSH: the new run's
    assert r.ping()


# ---------------------------------------------------------------------------
# errors, concurrency, DAGs, MULTI


def test_a_failing_run_is_never_cached(r: redis.Redis) -> None:
    store(r, "m", "add", "CACHE")
    tensorset(r, "a", floats((2, 3), 1))
    tensorset(r, "b", floats((4, 5), 2))  # a + b cannot broadcast
    for _ in range(3):
        with pytest.raises(redis.ResponseError):
            execute(r, "m", ["a", "b"], ["s", "p"])
    stats = run_info(r, "m")
    assert (stats[b"calls"], stats[b"errors"], stats[b"cache_hits"], stats[b"cache_misses"]) == (3, 3, 0, 3)
    assert info_cache(r)["inserts"] == 0
    assert r.exists("s", "p") == 0
    still_serving(r)


def test_identical_misses_at_once_each_run_and_one_entry_is_kept(shared_server: RedisServer,
                                                               r: redis.Redis) -> None:
    """Two clients send the same uncached request at once. No request waits
    for another's run: both may miss and run (the first to finish inserts,
    the second finds its entry and adds none), or the second may already
    hit. Either way one entry is kept and each request was a run or a hit."""
    store(r, "m", "busy", "CACHE")
    x = np.eye(96, dtype=np.float32) * 0.5
    tensorset(r, "x", x)
    results: list[object] = []

    def send(out: str) -> None:
        client = shared_server.client(socket_timeout=60)
        results.append(client.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 1, "x", "OUTPUTS", 1, out))

    threads = [threading.Thread(target=send, args=(f"o{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [b"OK", b"OK"]
    assert tensorget(r, "o0") == tensorget(r, "o1")
    figures = info_cache(r)
    assert figures["entries"] == figures["inserts"] == 1
    stats = run_info(r, "m")
    assert stats[b"calls"] + stats[b"cache_hits"] == 2


def test_runs_batched_together_each_keep_their_own_result(shared_server: RedisServer,
                                                          r: redis.Redis) -> None:
    """Three requests wait for MINBATCHSIZE 3 and run as one batch; each keeps
    its own slice of the batch's outputs, and each repeat hits with it."""
    store(r, "m", "add", "BATCHSIZE", 4, "MINBATCHSIZE", 3, "MINBATCHTIMEOUT", 5000, "CACHE")
    inputs = {i: floats((1, 3), 10 + i) for i in range(3)}
    for i, x in inputs.items():
        tensorset(r, f"a{i}", x)
    tensorset(r, "b", floats((1, 3), 99))
    replies: list[object] = []

    def send(i: int) -> None:
        client = shared_server.client(socket_timeout=60)
        replies.append(execute(client, "m", [f"a{i}", "b"], [f"s{i}", f"p{i}"]))

    threads = [threading.Thread(target=send, args=(i,)) for i in inputs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert replies == [b"OK"] * 3
    assert run_info(r, "m")[b"calls"] == 3 and info_cache(r)["entries"] == 3
    ran = {i: tensorget(r, f"s{i}") for i in inputs}
    assert len({bytes(reply[-1]) for reply in ran.values()}) == 3  # three different answers
    for i in inputs:  # one at a time: each would wait 5 s for a batch if it were not a hit
        assert execute(r, "m", [f"a{i}", "b"], [f"hit{i}", f"hp{i}"]) == b"OK"
        assert tensorget(r, f"hit{i}") == ran[i]
    assert run_info(r, "m")[b"cache_hits"] == 3


def dag(r: redis.Redis, *ops: object) -> object:
    return r.execute_command("AI.DAGEXECUTE", "LOAD", 2, "a", "b", "|>", *ops)


def test_a_dag_model_op_hits_and_answers_without_a_run(r: redis.Redis) -> None:
    store(r, "m", "add", "CACHE")
    a, b = floats((2, 2), 1), floats((2, 2), 2)
    tensorset(r, "a", a)
    tensorset(r, "b", b)
    # Two chained ops: the second reads the first's outputs.
    ops = ["AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "b", "OUTPUTS", 2, "s", "p", "|>",
           "AI.MODELEXECUTE", "m", "INPUTS", 2, "s", "p", "OUTPUTS", 2, "s2", "p2", "|>",
           "AI.TENSORGET", "s2", "BLOB"]
    first = dag(r, *ops)
    assert first[:2] == [b"OK", b"OK"]
    np.testing.assert_array_equal(np.frombuffer(first[2], np.float32).reshape(2, 2), (a + b) + (a * b))
    assert run_info(r, "m")[b"calls"] == 2
    assert info_cache(r)["entries"] == 2  # both ops' results, kept when the DAG ended

    again = dag(r, *ops)
    assert again == first
    stats = run_info(r, "m")
    assert (stats[b"calls"], stats[b"cache_hits"]) == (2, 2)

    # A plain MODELEXECUTE of the same request hits the DAG's entry, and the other way round.
    assert execute(r, "m", ["a", "b"], ["ks", "kp"]) == b"OK"
    assert run_info(r, "m")[b"cache_hits"] == 3
    persisted = r.execute_command("AI.DAGEXECUTE", "LOAD", 2, "a", "b", "PERSIST", 1, "ds", "|>",
                                  "AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "b", "OUTPUTS", 2, "ds", "dp")
    assert persisted == [b"OK"]
    assert tensorget(r, "ds") == tensorget(r, "ks")
    assert run_info(r, "m")[b"cache_hits"] == 4


def test_a_hit_inside_multi_is_answered_in_the_transaction(r: redis.Redis) -> None:
    store(r, "m", "add", "CACHE")
    tensorset(r, "a", floats((2,), 1))
    tensorset(r, "b", floats((2,), 2))
    assert execute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
    pipe = r.pipeline(transaction=True)
    pipe.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "b", "OUTPUTS", 2, "s2", "p2")
    pipe.execute_command("AI.TENSORGET", "s2", "BLOB")
    assert pipe.execute() == [b"OK", tensorget(r, "s")[-1]]
    assert run_info(r, "m")[b"cache_hits"] == 1


# ---------------------------------------------------------------------------
# INFO, AI.INFO, metrics


def test_info_ai_info_and_metrics_report_the_cache(r: redis.Redis) -> None:
    store(r, "m", "add", "CACHE", "TTL", 60000)
    assert meta(r, "m")[b"cache"] == 1 and meta(r, "m")[b"cache_ttl"] == 60000
    store(r, "plain", "add")
    assert b"cache" not in meta(r, "plain")
    tensorset(r, "a", floats((2,), 1))
    tensorset(r, "b", floats((2,), 2))
    for _ in range(3):
        assert execute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
    assert execute(r, "plain", ["a", "b"], ["s", "p"]) == b"OK"  # no lookup, no count
    stats = run_info(r, "m")
    assert (stats[b"cache_hits"], stats[b"cache_misses"]) == (2, 1)
    figures = info_cache(r)
    assert set(figures) == {"entries", "bytes", "budget", "hits", "misses", "inserts", "evictions", "expired"}
    assert (figures["entries"], figures["hits"], figures["misses"], figures["inserts"]) == (1, 2, 1, 1)

    base = BASELINE[r.connection_pool.connection_kwargs["port"]]
    text = r.execute_command("AI.METRICS").decode()
    for line in (f"redisai_cache_hits_total {base['hits'] + 2}", f"redisai_cache_misses_total {base['misses'] + 1}",
                 f"redisai_cache_evictions_total {base['evictions']}", "redisai_cache_entries 1",
                 f"redisai_cache_bytes {figures['bytes']}"):
        assert line in text.splitlines()

    assert r.execute_command("AI.INFO", "m", "RESETSTAT") == b"OK"
    stats = run_info(r, "m")
    assert (stats[b"calls"], stats[b"cache_hits"], stats[b"cache_misses"]) == (0, 0, 0)
    assert info_cache(r)["entries"] == 1  # RESETSTAT resets counters, not the cache


# ---------------------------------------------------------------------------
# bad arguments


BAD_TTL = "Invalid value for TTL: a positive number of milliseconds"
BAD_STORES = {
    "ttl_without_cache": (["TTL", 5], "TTL specified without CACHE"),
    "ttl_missing_value_at_end": (["CACHE", "TTL"], "No value provided for TTL"),
    "ttl_zero": (["CACHE", "TTL", 0], BAD_TTL),
    "ttl_negative": (["CACHE", "TTL", -1], BAD_TTL),
    "ttl_not_a_number": (["CACHE", "TTL", "soon"], BAD_TTL),
    "ttl_float": (["CACHE", "TTL", "1.5"], BAD_TTL),
    "ttl_past_int64": (["CACHE", "TTL", 2**63], BAD_TTL),
    "cache_before_tag": (["CACHE", "TAG", "t"], "Invalid argument, expected BLOB"),
    "cache_twice": (["CACHE", "CACHE"], "Invalid argument, expected BLOB"),
}


@pytest.mark.parametrize("case", BAD_STORES, ids=list(BAD_STORES))
def test_bad_cache_arguments_get_clear_errors_and_change_nothing(r: redis.Redis, case: str) -> None:
    args, error = BAD_STORES[case]
    store(r, "m", "add")
    with pytest.raises(redis.ResponseError) as err:
        if case == "ttl_missing_value_at_end":
            r.execute_command("AI.MODELSTORE", "m", "TORCH", "CPU", *args)
        else:
            r.execute_command("AI.MODELSTORE", "m", "TORCH", "CPU", *args, "BLOB", blob("add"))
    assert str(err.value) == error
    assert b"cache" not in meta(r, "m")
    still_serving(r)


def test_ttl_at_int64_max_means_never(r: redis.Redis) -> None:
    store(r, "m", "add", "CACHE", "TTL", 2**63 - 1)
    assert meta(r, "m")[b"cache_ttl"] == 2**63 - 1
    tensorset(r, "a", floats((2,), 1))
    tensorset(r, "b", floats((2,), 2))
    for _ in range(2):
        assert execute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
    assert run_info(r, "m")[b"cache_hits"] == 1


@pytest.mark.parametrize("value", ["-1", "lots", "1.5", str(2**63), ""])
def test_bad_cache_memory_is_refused_and_the_budget_kept(r: redis.Redis, value: str) -> None:
    with pytest.raises(redis.ResponseError, match="CACHE_MEMORY: a number of bytes, 0 or more"):
        r.execute_command("AI.CONFIG", "CACHE_MEMORY", value)
    assert r.execute_command("AI.CONFIG", "GET", "CACHE_MEMORY") == 64 * MB
    with pytest.raises(redis.ResponseError, match="CACHE_MEMORY: missing number of bytes"):
        r.execute_command("AI.CONFIG", "CACHE_MEMORY")
    assert r.execute_command("AI.CONFIG", "CACHE_MEMORY", 2**63 - 1) == b"OK"
    still_serving(r)


def test_cache_memory_as_a_module_argument(server_factory: ServerFactory) -> None:
    server = server_factory(module_args=["CACHE_MEMORY", "0"])
    client = server.client()
    assert client.execute_command("AI.CONFIG", "GET", "CACHE_MEMORY") == 0
    assert info_cache(client)["budget"] == 0
    bad = server_factory(module_args=["CACHE_MEMORY", "-5"], start=False)
    with pytest.raises(RuntimeError):
        bad.start()
    assert "CACHE_MEMORY -5" in bad.log()


# ---------------------------------------------------------------------------
# persistence and replication: the setting travels, the cache does not


def test_dump_keeps_cache_after_the_device_nul_and_bad_extensions_are_refused(r: redis.Redis) -> None:
    store(r, "m", "add", "CACHE", "TTL", 1500)
    value = fuzz_dump.decode(r.dump("m"))
    assert value.encver == 4  # RedisAI 1.2's encoding, unchanged
    assert value.fields[1][1] == b"CPU\x00cache ttl=1500\x00"
    store(r, "plain", "add")
    assert fuzz_dump.decode(r.dump("plain")).fields[1][1] == b"CPU\x00"  # as before the cache

    # An old payload (nothing after the NUL) loads uncached; a cached one keeps its TTL.
    assert r.restore("old", 0, r.dump("plain"))
    assert b"cache" not in meta(r, "old")
    assert r.restore("copy", 0, r.dump("m"))
    assert meta(r, "copy")[b"cache_ttl"] == 1500

    for ext in (b"cache ttl=0", b"cache ttl=-3", b"cache ttl=", b"cache ttl=9x", b"cached",
                b"cache ttl=99999999999999999999", b"x" * 100):
        fields = list(value.fields)
        fields[1] = (fields[1][0], b"CPU\x00" + ext + b"\x00")
        bad = fuzz_dump.ModuleValue(value.module_id, fields, value.rdb_version).encode()
        with pytest.raises(redis.ResponseError):
            r.restore("bad", 0, bad)
        assert not r.exists("bad")
    still_serving(r)


@pytest.mark.parametrize("how", ["rdb", "aof rewrite"])
def test_a_restart_keeps_the_cache_setting_and_starts_with_an_empty_cache(
        server_factory: ServerFactory, how: str) -> None:
    server_args = (["--appendonly", "yes", "--aof-use-rdb-preamble", "no"] if how == "aof rewrite"
                   else ["--save", "3600 1"])
    server = server_factory(server_args=server_args)
    r = server.client()
    store(r, "m", "add", "CACHE", "TTL", 86400000)
    store(r, "untouched", "add", "CACHE")
    tensorset(r, "a", floats((2,), 1))
    tensorset(r, "b", floats((2,), 2))
    for _ in range(2):
        assert execute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
    outputs = tensorget(r, "s")
    if how == "aof rewrite":
        assert r.bgrewriteaof()
        wait_until(lambda: r.info("persistence")["aof_rewrite_in_progress"] == 0
                   and r.info("persistence")["aof_rewrite_scheduled"] == 0, what="the AOF rewrite")
    server.restart()
    r = server.client()
    assert meta(r, "m")[b"cache_ttl"] == 86400000 and meta(r, "untouched")[b"cache_ttl"] == 0
    assert info_cache(r)["entries"] == 0
    assert tensorget(r, "s") == outputs
    assert execute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
    assert execute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
    stats = run_info(r, "m")
    assert (stats[b"calls"], stats[b"cache_hits"], stats[b"cache_misses"]) == (1, 1, 1)
    assert tensorget(r, "s") == outputs


def test_a_replica_gets_the_outputs_of_hits_but_never_the_cache(server_factory: ServerFactory) -> None:
    primary = server_factory(server_args=["--repl-diskless-sync-delay", "0"])
    replica = server_factory(server_args=["--replicaof", "127.0.0.1", str(primary.port)])
    p, rep = primary.client(), replica.client()
    wait_until(lambda: rep.info("replication").get("master_link_status") == "up", what="the replica")
    store(p, "m", "add", "CACHE")
    tensorset(p, "a", floats((2,), 1))
    tensorset(p, "b", floats((2,), 2))
    assert execute(p, "m", ["a", "b"], ["s", "p"]) == b"OK"  # a miss: runs
    assert p.execute_command("WAIT", 1, 10000) == 1
    assert execute(p, "m", ["a", "b"], ["hit:s", "hit:p"]) == b"OK"  # a hit: no run
    assert p.execute_command("WAIT", 1, 10000) == 1
    assert tensorget(rep, "hit:s") == tensorget(p, "hit:s") == tensorget(p, "s")
    assert tensorget(rep, "hit:p") == tensorget(p, "p")
    assert meta(rep, "m")[b"cache"] == 1
    assert info_cache(rep)["entries"] == info_cache(rep)["inserts"] == 0
    rep_stats = run_info(rep, "m")
    assert (rep_stats[b"calls"], rep_stats[b"cache_hits"], rep_stats[b"cache_misses"]) == (0, 0, 0)
    # Promoted, the replica caches for itself, from empty.
    assert rep.execute_command("REPLICAOF", "NO", "ONE") == b"OK"
    for _ in range(2):
        assert execute(rep, "m", ["a", "b"], ["s", "p"]) == b"OK"
    rep_stats = run_info(rep, "m")
    assert (rep_stats[b"calls"], rep_stats[b"cache_hits"]) == (1, 1)
    assert tensorget(rep, "s") == tensorget(p, "s")


def test_aof_records_the_outputs_of_a_hit_as_tensors(server_factory: ServerFactory) -> None:
    server = server_factory(server_args=["--appendonly", "yes", "--aof-use-rdb-preamble", "no"])
    r = server.client()
    store(r, "m", "add", "CACHE")
    tensorset(r, "a", floats((2,), 1))
    tensorset(r, "b", floats((2,), 2))
    assert execute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
    assert execute(r, "m", ["a", "b"], ["hit:s", "hit:p"]) == b"OK"
    expected = tensorget(r, "hit:s")
    aof = b"".join(path.read_bytes() for path in sorted(server.workdir.rglob("*.aof")))
    assert aof.count(b"AI.TENSORSET") == 6  # a, b, two outputs of the miss, two of the hit
    assert b"AI.MODELEXECUTE" not in aof
    server.restart()
    assert tensorget(server.client(), "hit:s") == expected
