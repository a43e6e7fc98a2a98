"""Many models under a loaded-session budget (docs/model_sessions.md).

An operator serves one small model per tenant, far more than fit loaded at
once. Model keys keep their blobs; the backend sessions are a cache under
MODEL_SESSIONS_MEMORY (bytes) and MODEL_SESSIONS_MAX (count): the least
recently used session goes when a load would pass the budget, never one a
queued or running run holds, and a run of an evicted model loads it again
on the loader thread. The stories: LRU order, the budget under concurrent
runs of many models, a queued run pinning its model, cold runs on every
backend, AI.CONFIG changing the budget at run time, stores and DELs while
sessions are evicted, persistence and a replica's own loaded set, what
INFO / AI.INFO SESSION / MEMORY USAGE show, WARMUP and the readiness states,
and bad arguments.
"""

from __future__ import annotations

import random
import threading
import time

import numpy as np
import pytest
import redis

import model_builders as mb
from conftest import RedisServer, ServerFactory, wait_until
from keyspace import assert_intact, snapshot

# What an ONNX session of onnx_add() counts against the budget: the blob
# times 2.1 plus 108 KiB (session_budget.c's estimate for ONNX).
ADD_BLOB = mb.onnx_add()
ADD_SESSION_BYTES = len(ADD_BLOB) // 10 * 21 + 108 * 1024


# ---------------------------------------------------------------------------
# helpers


def session(r: redis.Redis, key: str) -> dict[str, object]:
    """AI.INFO key SESSION: RedisAI's 9 pairs, then the session's 4."""
    reply = r.execute_command("AI.INFO", key, "SESSION")
    assert len(reply) == 26, reply
    info = {reply[i].decode(): reply[i + 1] for i in range(0, 26, 2)}
    info["session_state"] = info["session_state"].decode()
    return info


def sessions_info(r: redis.Redis) -> dict[str, int]:
    return {k.removeprefix("ai_"): v for k, v in r.info("ai_sessions").items()}


def store_add(r: redis.Redis, key: str, *options: object) -> None:
    assert r.execute_command("AI.MODELSTORE", key, "ONNX", "CPU", *options, "BLOB", ADD_BLOB) == b"OK"


def set_inputs(r: redis.Redis, a: list[float], b: list[float]) -> None:
    r.execute_command("AI.TENSORSET", "a", "FLOAT", len(a), "VALUES", *a)
    r.execute_command("AI.TENSORSET", "b", "FLOAT", len(b), "VALUES", *b)


def run_add(r: redis.Redis, key: str, tag: str = "") -> tuple[list[float], list[float]]:
    """Runs an onnx_add model on keys a, b; returns (sum, product)."""
    out_sum, out_product = f"sum{tag}", f"product{tag}"
    assert r.execute_command("AI.MODELEXECUTE", key, "INPUTS", 2, "a", "b",
                             "OUTPUTS", 2, out_sum, out_product) == b"OK"
    return ([float(x) for x in r.execute_command("AI.TENSORGET", out_sum, "VALUES")],
            [float(x) for x in r.execute_command("AI.TENSORGET", out_product, "VALUES")])


def loaded_keys(r: redis.Redis, keys: list[str]) -> list[str]:
    return [k for k in keys if session(r, k)["session_loaded"] == 1]


# ---------------------------------------------------------------------------
# the budget


def test_the_least_recently_used_session_goes_first(server_factory: ServerFactory) -> None:
    """MODEL_SESSIONS_MAX 2: storing a third model releases the session used
    longest ago; running a model makes it the most recent. The keys, blobs
    and TAGs of evicted models stay, and their next run loads them again."""
    r = server_factory(module_args=["MODEL_SESSIONS_MAX", "2"]).client()
    set_inputs(r, [1, 2], [3, 4])
    store_add(r, "m1", "TAG", "t1")
    store_add(r, "m2", "TAG", "t2")
    assert loaded_keys(r, ["m1", "m2"]) == ["m1", "m2"]

    run_add(r, "m1")  # m2 is now the least recently used
    store_add(r, "m3", "TAG", "t3")
    assert loaded_keys(r, ["m1", "m2", "m3"]) == ["m1", "m3"]
    assert session(r, "m2")["session_state"] == "evicted"
    assert r.execute_command("AI.MODELGET", "m2", "BLOB") == ADD_BLOB
    assert r.execute_command("AI.MODELGET", "m2", "META")[5] == b"t2"

    assert run_add(r, "m2") == ([4, 6], [3, 8])  # cold: loads m2, releases m1
    assert loaded_keys(r, ["m1", "m2", "m3"]) == ["m2", "m3"]
    assert session(r, "m2")["session_loads"] == 2
    assert session(r, "m2")["calls"] == 1  # stats survive the eviction
    info = sessions_info(r)
    assert (info["loaded"], info["evictions"], info["cold_loads"]) == (2, 2, 1)


def test_the_byte_budget_holds_under_concurrent_runs_of_many_models(server_factory: ServerFactory) -> None:
    """Twelve tenants' models, room for three sessions, eight clients running
    random tenants at once: every output is right, and once the runs end the
    loaded set is within the budget."""
    budget = 3 * ADD_SESSION_BYTES
    server = server_factory(module_args=["MODEL_SESSIONS_MEMORY", str(budget)])
    r = server.client()
    keys = [f"{{t{i}}}model" for i in range(12)]
    for key in keys:
        store_add(r, key)
    assert sessions_info(r)["loaded"] == 3

    errors: list[BaseException] = []

    def client(seed: int) -> None:
        c = server.client()
        rng = random.Random(seed)
        try:
            for n in range(40):
                a, b = float(seed), float(n)
                c.execute_command("AI.TENSORSET", f"a{seed}", "FLOAT", 2, "VALUES", a, b)
                c.execute_command("AI.TENSORSET", f"b{seed}", "FLOAT", 2, "VALUES", b, a)
                key = rng.choice(keys)
                c.execute_command("AI.MODELEXECUTE", key, "INPUTS", 2, f"a{seed}", f"b{seed}",
                                  "OUTPUTS", 2, f"s{seed}", f"p{seed}")
                got = [float(x) for x in c.execute_command("AI.TENSORGET", f"s{seed}", "VALUES")]
                assert got == [a + b, a + b], (key, got)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    wait_until(lambda: sessions_info(r)["loaded_bytes"] <= budget, what="the loaded set back within budget")
    info = sessions_info(r)
    assert info["loaded"] <= 3 and info["evictions"] >= 9 and info["cold_loads"] > 0
    assert info["runs_waiting_for_load"] == 0
    assert info["loaded_bytes"] == sum(session(r, k)["session_bytes"] for k in keys)


def test_a_model_with_a_queued_run_is_not_evicted_under_it(server_factory: ServerFactory) -> None:
    """One device worker, room for one session. A slow run of `slow` holds
    the worker; a run of `fast` queues behind it; meanwhile `fast`'s cold
    load would evict `slow`, which its running job pins, and a later load
    cannot evict `fast` while its run waits. Both runs succeed and the set
    settles back to one session when they end."""
    server = server_factory(module_args=["MODEL_SESSIONS_MAX", "1", "MODEL_EXECUTION_TIMEOUT", "1500"])
    r = server.client()
    store_add(r, "fast")
    assert r.execute_command("AI.MODELSTORE", "slow", "ONNX", "CPU", "BLOB", mb.onnx_slow(16)) == b"OK"
    r.execute_command("AI.TENSORSET", "x", "FLOAT", 16, 16, "BLOB", np.eye(16, dtype=np.float32).tobytes())
    set_inputs(r, [1, 2], [3, 4])

    slow_reply: list[object] = []
    slow = threading.Thread(target=lambda: slow_reply.append(_run_catching(
        server.client(), "AI.MODELEXECUTE", "slow", "INPUTS", 1, "x", "OUTPUTS", 1, "y")))
    slow.start()
    wait_until(lambda: session(r, "slow")["session_state"] == "ready", what="slow running")
    time.sleep(0.2)  # the slow run is on the worker now

    fast_reply: list[object] = []
    fast = threading.Thread(target=lambda: fast_reply.append(run_add(server.client(), "fast", "f")))
    fast.start()
    wait_until(lambda: session(r, "fast")["session_state"] == "ready", what="fast loaded (queued run)")
    # Both are loaded: slow is pinned by its running job, fast by its queued one.
    assert loaded_keys(r, ["fast", "slow"]) == ["fast", "slow"]
    assert sessions_info(r)["loaded"] == 2
    slow.join()
    fast.join()
    # MODEL_EXECUTION_TIMEOUT ended the endless loop: an error, not a crash.
    assert isinstance(slow_reply[0], redis.ResponseError)
    assert fast_reply == [([4, 6], [3, 8])]
    assert session(r, "slow")["session_loads"] == 1  # loaded at its store, never released while pinned
    wait_until(lambda: sessions_info(r)["loaded"] == 1, what="settled to one session")
    assert r.ping()


def _run_catching(client: redis.Redis, *command: object) -> object:
    try:
        return client.execute_command(*command)
    except redis.ResponseError as exc:
        return exc


def test_cold_runs_give_correct_outputs_for_every_backend(server_factory: ServerFactory) -> None:
    """Room for one session and one model per backend: each run finds its
    model evicted by the previous one, loads it from the blob and answers
    as a loaded model would."""
    r = server_factory(module_args=["MODEL_SESSIONS_MAX", "1"]).client()
    stores = {
        "onnx": ("ONNX", [], ADD_BLOB),
        "torch": ("TORCH", [], mb.torch_add()),
        "tf": ("TF", ["INPUTS", 2, "a", "b", "OUTPUTS", 1, "mul"], mb.tf_graph_def_mul()),
        "tflite": ("TFLITE", [], mb.tflite_add_mul()),
    }
    for key, (backend, names, blob) in stores.items():
        assert r.execute_command("AI.MODELSTORE", key, backend, "CPU", *names, "BLOB", blob) == b"OK"
    a, b = np.array([[1, 2, 3]], dtype=np.float32), np.array([[4, 5, 6]], dtype=np.float32)
    r.execute_command("AI.TENSORSET", "a", "FLOAT", 1, 3, "BLOB", a.tobytes())
    r.execute_command("AI.TENSORSET", "b", "FLOAT", 1, 3, "BLOB", b.tobytes())
    r.execute_command("AI.TENSORSET", "a2", "FLOAT", 2, "VALUES", 1, 2)  # onnx_add takes [2]
    r.execute_command("AI.TENSORSET", "b2", "FLOAT", 2, "VALUES", 3, 4)
    expected = {"onnx": [4, 6], "torch": (a + b).ravel(), "tf": (a * b).ravel(), "tflite": (a + b).ravel()}
    for _ in range(2):
        for key in stores:
            inputs = ["a2", "b2"] if key == "onnx" else ["a", "b"]
            outputs = ["o1"] if key == "tf" else ["o1", "o2"]
            assert r.execute_command("AI.MODELEXECUTE", key, "INPUTS", 2, *inputs,
                                     "OUTPUTS", len(outputs), *outputs) == b"OK"
            first = np.frombuffer(r.execute_command("AI.TENSORGET", "o1", "BLOB"), dtype=np.float32)
            np.testing.assert_array_equal(first, expected[key])
            assert loaded_keys(r, list(stores)) == [key]
    assert all(session(r, k)["session_loads"] == 3 for k in stores)


def test_cold_runs_inside_dags_and_transactions(server_factory: ServerFactory) -> None:
    """A DAG's model op and a MODELEXECUTE inside MULTI or Lua find their model
    evicted: the DAG's op and the waiting main thread get it loaded (the loader
    needs nothing from the main thread) and answer as usual."""
    r = server_factory(module_args=["MODEL_SESSIONS_MAX", "1"]).client()
    store_add(r, "m1")
    store_add(r, "m2")  # m1 evicted
    set_inputs(r, [1, 2], [3, 4])
    reply = r.execute_command("AI.DAGEXECUTE", "LOAD", 2, "a", "b", "|>",
                              "AI.MODELEXECUTE", "m1", "INPUTS", 2, "a", "b", "OUTPUTS", 2, "s", "p",
                              "|>", "AI.TENSORGET", "s", "VALUES")
    assert reply[-1] == [b"4", b"6"]
    assert loaded_keys(r, ["m1", "m2"]) == ["m1"]

    pipe = r.pipeline(transaction=True)
    pipe.execute_command("AI.MODELEXECUTE", "m2", "INPUTS", 2, "a", "b", "OUTPUTS", 2, "s2", "p2")
    pipe.execute_command("AI.TENSORGET", "p2", "VALUES")
    assert pipe.execute() == [b"OK", [b"3", b"8"]]
    assert loaded_keys(r, ["m1", "m2"]) == ["m2"]

    lua = "return redis.call('AI.MODELEXECUTE', 'm1', 'INPUTS', 2, 'a', 'b', 'OUTPUTS', 2, 's3', 'p3')"
    assert r.eval(lua, 0) == b"OK"
    assert run_add(r, "m1") == ([4, 6], [3, 8])
    assert session(r, "m1")["session_loads"] == 3


# ---------------------------------------------------------------------------
# changing the budget, stores and deletes


def test_ai_config_shrinks_and_grows_the_loaded_set(server_factory: ServerFactory) -> None:
    r = server_factory().client()
    assert r.execute_command("AI.CONFIG", "GET", "MODEL_SESSIONS_MAX") == 0
    keys = [f"m{i}" for i in range(4)]
    set_inputs(r, [1, 2], [3, 4])
    for key in keys:
        store_add(r, key)
    run_add(r, "m0")  # most recent
    assert sessions_info(r)["loaded"] == 4  # 0: no limit, today's behaviour

    assert r.execute_command("AI.CONFIG", "MODEL_SESSIONS_MAX", 1) == b"OK"
    assert r.execute_command("AI.CONFIG", "GET", "MODEL_SESSIONS_MAX") == 1
    assert loaded_keys(r, keys) == ["m0"]

    assert r.execute_command("AI.CONFIG", "MODEL_SESSIONS_MAX", 0) == b"OK"
    for key in keys:
        assert run_add(r, key) == ([4, 6], [3, 8])
    assert loaded_keys(r, keys) == keys

    # A byte budget below one session releases every idle one.
    assert r.execute_command("AI.CONFIG", "MODEL_SESSIONS_MEMORY", 1) == b"OK"
    assert r.execute_command("AI.CONFIG", "GET", "MODEL_SESSIONS_MEMORY") == 1
    assert loaded_keys(r, keys) == []
    # One session over the whole budget still runs: loaded for the run,
    # released when it ends.
    assert run_add(r, "m3") == ([4, 6], [3, 8])
    assert loaded_keys(r, keys) == []
    assert session(r, "m3")["session_loads"] == 3
    assert sessions_info(r)["budget_bytes"] == 1


def test_stores_and_deletes_while_sessions_are_evicted(server_factory: ServerFactory) -> None:
    """Clients overwrite, delete and run models while a budget of two keeps
    evicting: no run sees a freed session, the server answers, and the
    budget's totals match what the remaining keys hold."""
    server = server_factory(module_args=["MODEL_SESSIONS_MAX", "2"])
    r = server.client()
    keys = [f"k{i}" for i in range(6)]
    for key in keys:
        store_add(r, key)
    stop = time.monotonic() + 4
    errors: list[BaseException] = []

    def churn(seed: int) -> None:
        c, rng = server.client(), random.Random(seed)
        c.execute_command("AI.TENSORSET", f"a{seed}", "FLOAT", 2, "VALUES", 1, 2)
        try:
            while time.monotonic() < stop:
                key, action = rng.choice(keys), rng.random()
                if action < 0.2:
                    store_add(c, key)
                elif action < 0.3:
                    c.delete(key)
                else:
                    try:
                        c.execute_command("AI.MODELEXECUTE", key, "INPUTS", 2, f"a{seed}", f"a{seed}",
                                          "OUTPUTS", 2, f"s{seed}", f"p{seed}")
                    except redis.ResponseError as exc:
                        assert "model key is empty" in str(exc), exc
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(seed,)) for seed in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert r.ping()
    present = [k for k in keys if r.exists(k)]
    wait_until(lambda: sessions_info(r)["loaded"] <= 2, what="within the budget")
    info = sessions_info(r)
    assert info["loaded"] == len(loaded_keys(r, present))
    assert info["loaded_bytes"] == sum(session(r, k)["session_bytes"] for k in present)
    set_inputs(r, [1, 2], [3, 4])
    for key in present:
        assert run_add(r, key) == ([4, 6], [3, 8])


def test_persistence_and_a_replica_keep_their_own_loaded_sets(server_factory: ServerFactory) -> None:
    """Sessions are never persisted or replicated: after DEBUG RELOAD every
    model starts evicted and loads at its first run; a replica with no budget
    loads every model it receives while its primary keeps one."""
    primary = server_factory(module_args=["MODEL_SESSIONS_MAX", "1"])
    r = primary.client()
    replica = server_factory(server_args=["--replicaof", "127.0.0.1", str(primary.port)])
    rr = replica.client()
    wait_until(lambda: rr.info("replication").get("master_link_status") == "up", what="replica linked")
    for key in ("m1", "m2", "m3"):
        store_add(r, key)
    wait_until(lambda: rr.exists("m1", "m2", "m3") == 3, what="stores replicated")
    wait_until(lambda: sessions_info(rr)["loaded"] == 3, what="the replica's background loads")
    assert sessions_info(r)["loaded"] == 1
    assert rr.execute_command("AI.MODELGET", "m2", "BLOB") == ADD_BLOB

    assert r.execute_command("DEBUG", "RELOAD") == b"OK"
    assert [session(r, k)["session_state"] for k in ("m1", "m2", "m3")] == ["evicted"] * 3
    set_inputs(r, [1, 2], [3, 4])
    assert run_add(r, "m2") == ([4, 6], [3, 8])
    assert loaded_keys(r, ["m1", "m2", "m3"]) == ["m2"]


# ---------------------------------------------------------------------------
# accounting, warmup, states


def test_info_ai_info_and_memory_usage_show_the_sessions(server_factory: ServerFactory) -> None:
    r = server_factory(module_args=["MODEL_SESSIONS_MAX", "1", "MODEL_SESSIONS_MEMORY", str(10**9)]).client()
    store_add(r, "m1")
    loaded_usage = r.memory_usage("m1")
    store_add(r, "m2")  # evicts m1
    info = session(r, "m1")
    assert (info["session_state"], info["session_loaded"], info["session_loads"], info["session_bytes"]) == \
        ("evicted", 0, 1, 0)
    info = session(r, "m2")
    assert (info["session_state"], info["session_loaded"], info["session_bytes"]) == \
        ("ready", 1, ADD_SESSION_BYTES)
    # MEMORY USAGE: the blob always, the session while it is loaded.
    assert loaded_usage - r.memory_usage("m1") == ADD_SESSION_BYTES
    assert r.memory_usage("m2") == loaded_usage
    assert r.memory_usage("m1") > len(ADD_BLOB)
    s = sessions_info(r)
    assert s["loaded"] == 1 and s["loaded_bytes"] == ADD_SESSION_BYTES
    assert s["budget_bytes"] == 10**9 and s["budget_sessions"] == 1
    assert s["loads"] == 2 and s["evictions"] == 1 and s["load_failures"] == 0
    set_inputs(r, [1, 2], [3, 4])
    run_add(r, "m1")
    s = sessions_info(r)
    assert s["cold_loads"] == 1 and 0 < s["cold_load_p50_us"] <= s["cold_load_p99_us"]
    # Without SESSION, AI.INFO is RedisAI's reply exactly.
    assert len(r.execute_command("AI.INFO", "m1")) == 18
    # AI.METRICS says the same as INFO.
    from prometheus_client.parser import text_string_to_metric_families
    metrics = {sample.name: sample.value for family in text_string_to_metric_families(
        r.execute_command("AI.METRICS").decode()) for sample in family.samples if not sample.labels}
    assert metrics["redisai_sessions_loaded"] == 1
    assert metrics["redisai_sessions_loaded_bytes"] == ADD_SESSION_BYTES
    assert metrics["redisai_sessions_budget_sessions"] == 1
    assert metrics["redisai_session_evictions_total"] == sessions_info(r)["evictions"] == 2
    assert metrics["redisai_session_cold_loads_total"] == 1
    assert metrics["redisai_session_cold_load_seconds_count"] == 1


def test_warmup_runs_synthetic_requests_at_each_load(server_factory: ServerFactory) -> None:
    """WARMUP n runs the model n times on zeros shaped by its declared inputs
    (ONNX, TFLITE) at the store and at every cold load; a backend that declares no
    input shapes (TorchScript) loads without it and says so in the log."""
    server = server_factory(module_args=["MODEL_SESSIONS_MAX", "1"])
    r = server.client()
    store_add(r, "warm", "TAG", "v1", "WARMUP", 3)
    assert session(r, "warm")["session_state"] == "ready"
    assert session(r, "warm")["calls"] == 0  # warmup runs are not client runs
    assert r.execute_command("AI.MODELSTORE", "torch", "TORCH", "CPU", "WARMUP", 2,
                             "BLOB", mb.torch_add()) == b"OK"
    assert "WARMUP skipped: the TORCH backend declares no input shapes" in server.log()
    assert r.execute_command("AI.MODELSTORE", "lite", "TFLITE", "CPU", "WARMUP", 2,
                             "BLOB", mb.tflite_add_mul()) == b"OK"
    assert "WARMUP skipped: the TFLITE" not in server.log()
    set_inputs(r, [1, 2], [3, 4])
    assert run_add(r, "warm") == ([4, 6], [3, 8])  # cold, warmed up again
    assert session(r, "warm")["session_loads"] == 2
    # The replicated command carries WARMUP as given; the model keeps it for reloads.
    assert r.execute_command("AI.MODELGET", "warm", "META")[5] == b"v1"


def _big_onnx(side: int = 4096) -> bytes:
    """x [1, side] @ W [side, side]: 64 MiB of weights, a load the loader takes a while over."""
    return mb.onnx_matmul(np.ones((side, side), dtype=np.float32), "big")


def test_a_cold_run_waits_in_the_loading_state_while_warm_runs_flow(server_factory: ServerFactory) -> None:
    """The loader is busy with a big store; a run of an evicted model waits
    (`loading`, counted in runs_waiting_for_load) while runs of a loaded model
    keep answering on the device worker; then it answers too."""
    server = server_factory(module_args=["MODEL_SESSIONS_MAX", "2"])
    r = server.client()
    for key in ("cold", "warm", "other"):
        store_add(r, key)  # cold is evicted
    set_inputs(r, [1, 2], [3, 4])
    big = _big_onnx()
    store = threading.Thread(target=lambda: server.client().execute_command(
        "AI.MODELSTORE", "big", "ONNX", "CPU", "BLOB", big))
    store.start()
    # The store's client blocks once its job is on the loader.
    wait_until(lambda: r.info("clients")["blocked_clients"] == 1, what="the big store on the loader")
    cold_reply: list[object] = []
    cold = threading.Thread(target=lambda: cold_reply.append(run_add(server.client(), "cold", "c")))
    cold.start()
    seen_loading = False
    while cold.is_alive():
        if session(r, "cold")["session_state"] == "loading":
            seen_loading = True
            waiting = sessions_info(r)["runs_waiting_for_load"]
            assert waiting == 1 or session(r, "cold")["session_state"] == "ready"  # unless it just loaded
            assert run_add(r, "warm") == ([4, 6], [3, 8])  # answered while the load waits
        time.sleep(0.001)
    cold.join()
    store.join()
    assert seen_loading
    assert cold_reply == [([4, 6], [3, 8])]
    assert session(r, "cold")["session_state"] == "ready"


def test_a_failing_warmup_run_fails_the_store(server_factory: ServerFactory) -> None:
    """The warmup really runs the model: one that never ends is stopped by
    MODEL_EXECUTION_TIMEOUT, and the store reports it and stores nothing."""
    r = server_factory(module_args=["MODEL_EXECUTION_TIMEOUT", "1000"]).client()
    store_add(r, "other")
    with pytest.raises(redis.ResponseError, match="^WARMUP run failed: "):
        r.execute_command("AI.MODELSTORE", "slow", "ONNX", "CPU", "WARMUP", 1, "BLOB", mb.onnx_slow(16))
    assert r.exists("slow") == 0
    assert r.execute_command("AI.MODELSTORE", "slow", "ONNX", "CPU", "BLOB", mb.onnx_slow(16)) == b"OK"
    assert sessions_info(r)["load_failures"] == 1


def test_a_model_whose_session_cannot_load_is_failed_and_retried(server_factory: ServerFactory) -> None:
    """The AOF is the user's data: a stored model whose backend rejects it on
    replay is kept, shows `failed`, and each run reports the load's error."""
    server = server_factory(server_args=["--appendonly", "yes", "--aof-use-rdb-preamble", "no"])
    r = server.client()
    store_add(r, "good")
    # A model the primary would refuse can only arrive by replay: write it
    # into the AOF the way a rewrite would, after a valid one.
    r.execute_command("AI.MODELSTORE", "bad", "ONNX", "CPU", "BLOB", ADD_BLOB)
    server.stop()
    aof_dir = server.workdir / "appendonlydir"
    incr = next(aof_dir.glob("*.incr.aof"))
    text = incr.read_bytes()
    payload = ADD_BLOB
    assert text.count(payload) == 2
    broken = b"not an onnx model" + b"!" * (len(payload) - 17)
    incr.write_bytes(text[::-1].replace(payload[::-1], broken[::-1], 1)[::-1])  # the last store only
    server.start()
    r = server.client()
    assert session(r, "bad")["session_state"] == "failed"
    assert session(r, "good")["session_state"] == "ready"
    set_inputs(r, [1, 2], [3, 4])
    with pytest.raises(redis.ResponseError):
        run_add(r, "bad")
    assert session(r, "bad")["session_state"] == "failed"
    assert sessions_info(r)["load_failures"] >= 2
    assert run_add(r, "good") == ([4, 6], [3, 8])


# ---------------------------------------------------------------------------
# bad arguments


@pytest.mark.parametrize("value", ["-1", "abc", "", "1.5"])
@pytest.mark.parametrize("name", ["MODEL_SESSIONS_MEMORY", "MODEL_SESSIONS_MAX"])
def test_bad_budgets_are_refused_with_a_clear_error(server_factory: ServerFactory, name: str, value: str) -> None:
    r = server_factory().client()
    store_add(r, "m")
    before = snapshot(r)
    with pytest.raises(redis.ResponseError, match=f"^{name}: expected a number of"):
        r.execute_command("AI.CONFIG", name, value)
    with pytest.raises(redis.ResponseError, match=f"^{name}: missing value$"):
        r.execute_command("AI.CONFIG", name)
    assert r.execute_command("AI.CONFIG", "GET", name) == 0
    assert_intact(r, before)


def test_edge_budgets_are_accepted(server_factory: ServerFactory) -> None:
    r = server_factory(module_args=["MODEL_SESSIONS_MEMORY", str(2**63 - 1), "MODEL_SESSIONS_MAX", "0"]).client()
    store_add(r, "m")
    assert r.execute_command("AI.CONFIG", "GET", "MODEL_SESSIONS_MEMORY") == 2**63 - 1
    assert r.execute_command("AI.CONFIG", "MODEL_SESSIONS_MAX", 2**63 - 1) == b"OK"
    assert r.execute_command("AI.CONFIG", "MODEL_SESSIONS_MEMORY", 0) == b"OK"
    assert loaded_keys(r, ["m"]) == ["m"]


@pytest.mark.parametrize("value", ["-1", "abc"])
def test_a_bad_load_time_budget_stops_the_module_loading(server_factory: ServerFactory, value: str) -> None:
    server = server_factory(module_args=["MODEL_SESSIONS_MEMORY", value], start=False)
    with pytest.raises(RuntimeError):
        server.start()
    assert f"error processing argument: MODEL_SESSIONS_MEMORY {value}" in server.log()


@pytest.mark.parametrize("value", ["-1", "abc", str(2**63 - 1), "1001"])
def test_bad_warmup_counts_are_refused(server_factory: ServerFactory, value: str) -> None:
    r = server_factory().client()
    store_add(r, "m")
    before = snapshot(r)
    with pytest.raises(redis.ResponseError, match="^Invalid argument for WARMUP: expected a number of runs"):
        r.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "WARMUP", value, "BLOB", mb.onnx_iris().blob)
    with pytest.raises(redis.ResponseError, match="^Invalid argument for WARMUP"):
        r.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "WARMUP", "BLOB", ADD_BLOB)
    assert_intact(r, before)
