"""A user registers keyspace triggers in a function library: Python that runs
next to the data after a key is written, deleted, expires or is missed.

Each story loads a library with `register_trigger`, writes keys as a client
would, and waits for what the trigger wrote; INFO's `functions` section and
AI.FUNCTION LIST show the triggers and their counters.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from conftest import RedisServer, ServerFactory, wait_until
from model_builders import torch_add

SHARED_SERVER_MODULE_ARGS = ["FUNCTION_THREADS", "2"]

WATCHERS = '''#!python name=watchers
from redisai_py.functions import execute, register_trigger

def note(record):
    execute("HSET", "seen:" + record["key"], "event", record["event"], "type", record["type"])

register_trigger("on_set", note, event="set", prefix="para:")
register_trigger("on_hset", note, event="hset", prefix="doc:")
register_trigger("on_del", note, event="del", prefix="gone:")
register_trigger("on_expired", note, event="expired", prefix="brief:")
register_trigger("on_miss", note, event="keymiss", prefix="answer:")
'''


@pytest.fixture
def r(shared_server: RedisServer) -> Iterator[redis.Redis]:
    client = shared_server.client(protocol=3)
    client.execute_command("AI.FUNCTION", "FLUSH")
    client.flushall()
    yield client


def functions_info(r: redis.Redis) -> dict[str, object]:
    """INFO's ai_functions section, without the module's ai_ prefix."""
    return {name.removeprefix("ai_"): value for name, value in r.info("ai_functions").items()}


def seen(r: redis.Redis, key: str) -> dict[bytes, bytes]:
    wait_until(lambda: r.exists("seen:" + key) == 1, timeout=10, what=f"the trigger for {key}")
    return r.hgetall("seen:" + key)


# ----------------------------------------------------------------- firing


def test_triggers_fire_for_their_event_and_prefix_only(r: redis.Redis) -> None:
    assert r.execute_command("AI.FUNCTION", "LOAD", WATCHERS) == b"watchers"
    before = functions_info(r)
    r.set("para:1", "hello")
    assert seen(r, "para:1") == {b"event": b"set", b"type": b"string"}
    r.hset("doc:1", "f", "v")
    assert seen(r, "doc:1") == {b"event": b"hset", b"type": b"hash"}
    r.set("gone:1", "x")
    r.delete("gone:1")
    assert seen(r, "gone:1") == {b"event": b"del", b"type": b"none"}
    r.set("brief:1", "x", px=20)
    assert seen(r, "brief:1") == {b"event": b"expired", b"type": b"none"}
    assert r.get("answer:1") is None  # the miss answers nil; the trigger runs after
    assert seen(r, "answer:1") == {b"event": b"keymiss", b"type": b"none"}
    # Other prefixes and other events on these prefixes fire nothing.
    r.set("other:1", "x")
    r.append("para:1", "!")
    r.hset("para:2", "f", "v")
    wait_until(lambda: functions_info(r)["trigger_events_in_flight"] == 0, what="the queue to empty")
    assert not r.exists("seen:other:1", "seen:para:2")
    info = functions_info(r)
    assert info["triggers"] == 5
    assert info["trigger_runs"] - before["trigger_runs"] == 5 and info["trigger_errors"] == before["trigger_errors"]


def test_function_list_shows_a_librarys_triggers(r: redis.Redis) -> None:
    r.execute_command("AI.FUNCTION", "LOAD", WATCHERS)
    (lib,) = r.execute_command("AI.FUNCTION", "LIST")
    assert lib[b"functions"] == []
    triggers = {t[b"name"]: (t[b"event"], t[b"prefix"]) for t in lib[b"triggers"]}
    assert triggers[b"on_set"] == (b"set", b"para:")
    assert triggers[b"on_miss"] == (b"keymiss", b"answer:")
    assert len(triggers) == 5
    r.execute_command("AI.FUNCTION", "DELETE", "watchers")
    r.set("para:9", "x")
    assert functions_info(r)["triggers"] == 0
    assert not r.exists("seen:para:9")


@pytest.mark.parametrize("registration, error", [
    ('register_trigger("t", f, event="SET!")', "must be a keyspace event name"),
    ('register_trigger("t", f, prefix=3)', "prefix of trigger t must be str or bytes"),
    ('register_trigger("t", 5)', "callback of trigger t is not callable"),
    ('register_trigger("t-1", f)', "Trigger names can only contain"),
    ('register_trigger("t", f, event="set", commands=["GET"])', "commands= is only for read-through"),
    ('register_trigger("t", f, event="keymiss", commands=["HGET"])', "commands= is only for read-through"),
])
def test_a_bad_registration_loads_nothing(r: redis.Redis, registration: str, error: str) -> None:
    code = f"#!python name=bad\nfrom redisai_py.functions import register_trigger\nf = print\n{registration}\n"
    with pytest.raises(redis.ResponseError, match=error):
        r.execute_command("AI.FUNCTION", "LOAD", code)
    assert r.execute_command("AI.FUNCTION", "LIST") == []
    assert functions_info(r)["triggers"] == 0


def test_a_failing_trigger_is_counted_and_the_server_goes_on(r: redis.Redis) -> None:
    r.execute_command("AI.FUNCTION", "LOAD", '''#!python name=failing
from redisai_py.functions import register_trigger

def boom(record):
    raise ValueError("no way")

register_trigger("boom", boom, event="set", prefix="x")
''')
    errors = functions_info(r)["trigger_errors"]
    r.set("x1", "v")
    wait_until(lambda: functions_info(r)["trigger_errors"] == errors + 1, what="the failure counted")
    assert "failing.boom" in str(functions_info(r)["trigger_last_error"])
    assert "no way" in str(functions_info(r)["trigger_last_error"])
    assert r.get("x1") == b"v" and r.ping()


RUNAWAY = '''#!python name=runaway
from redisai_py.functions import execute, register_trigger

def spin(record):
    while True:
        pass

def note(record):
    execute("SET", "noted:" + record["key"], "yes")

register_trigger("spin", spin, event="set", prefix="spin:")
register_trigger("spin_on_miss", spin, event="keymiss", prefix="slow:", commands=["GET"])
register_trigger("note", note, event="set", prefix="note:")
'''


def test_function_kill_stops_a_runaway_trigger(server_factory: ServerFactory) -> None:
    """One function thread: a trigger that never returns would hold it for good."""
    import threading
    import time

    server = server_factory(module_args=["FUNCTION_THREADS", "1", "FUNCTION_TIMEOUT", "300"])
    r = server.client()
    r.execute_command("AI.FUNCTION", "LOAD", RUNAWAY)
    r.set("spin:1", "v")
    time.sleep(0.5)  # past FUNCTION_TIMEOUT
    assert r.execute_command("AI.FUNCTION", "KILL") == b"OK"
    wait_until(lambda: functions_info(r)["trigger_errors"] == 1, what="the killed trigger counted")
    assert "runaway.spin killed by AI.FUNCTION KILL" in str(functions_info(r)["trigger_last_error"])
    r.set("note:1", "v")  # the thread is free again
    wait_until(lambda: r.get("noted:note:1") == b"yes", what="the next trigger")

    outcome: list[str] = []

    def get() -> None:
        try:
            outcome.append(repr(server.client().get("slow:1")))
        except redis.ResponseError as exc:
            outcome.append(str(exc))

    reader = threading.Thread(target=get)
    reader.start()
    time.sleep(0.5)
    assert r.ping()  # the main thread serves while the read-through spins
    assert r.execute_command("AI.FUNCTION", "KILL") == b"OK"
    reader.join(10)
    assert outcome == ["the function was killed by AI.FUNCTION KILL"]
    with pytest.raises(redis.ResponseError, match="^NOTBUSY"):
        r.execute_command("AI.FUNCTION", "KILL")


# ------------------------------------------------------- recursion, bounds


def test_a_trigger_writing_what_it_watches_stops_after_the_max_depth(r: redis.Redis) -> None:
    """Each write of loop:n sets it again, one more; the chain a client's SET
    starts ends after RAI_TRIGGER_MAX_DEPTH (8) trigger writes."""
    r.execute_command("AI.FUNCTION", "LOAD", '''#!python name=looping
from redisai_py.functions import execute, register_trigger

def again(record):
    execute("SET", record["key"], int(execute("GET", record["key"])) + 1)

register_trigger("again", again, event="set", prefix="loop:")
''')
    before = functions_info(r)
    r.set("loop:n", 0)
    wait_until(lambda: functions_info(r)["trigger_events_past_max_depth"] == before["trigger_events_past_max_depth"] + 1,
               what="the chain to stop")
    wait_until(lambda: functions_info(r)["trigger_events_in_flight"] == 0, what="the queue to empty")
    assert r.get("loop:n") == b"9"  # depths 0..8 ran, each wrote once
    assert functions_info(r)["trigger_runs"] - before["trigger_runs"] == 9


def test_the_queue_is_bounded_and_dropped_events_are_counted(r: redis.Redis) -> None:
    r.execute_command("AI.FUNCTION", "LOAD", '''#!python name=slow
import time
from redisai_py.functions import register_trigger

register_trigger("slow", lambda record: time.sleep(0.002), event="set", prefix="burst:")
''')
    before = functions_info(r)
    pipe = r.pipeline(transaction=False)
    for i in range(3000):
        pipe.set(f"burst:{i}", i)
    pipe.execute()
    info = functions_info(r)
    assert info["trigger_events_in_flight"] <= info["trigger_queue_max"] == 1024
    assert info["trigger_events_dropped"] > before["trigger_events_dropped"]
    wait_until(lambda: functions_info(r)["trigger_events_in_flight"] == 0, timeout=60, what="the queue to empty")
    info = functions_info(r)
    runs = info["trigger_runs"] - before["trigger_runs"]
    assert runs >= 1024 and runs + info["trigger_events_dropped"] - before["trigger_events_dropped"] == 3000
    assert r.dbsize() == 3000 and r.ping()


def test_loading_a_dataset_fires_no_triggers_and_keeps_them(shared_server: RedisServer, r: redis.Redis) -> None:
    r.execute_command("AI.FUNCTION", "LOAD", WATCHERS)
    r.set("para:1", "x")
    seen(r, "para:1")
    runs = functions_info(r)["trigger_runs"]
    r.delete("seen:para:1")
    r.execute_command("DEBUG", "RELOAD")
    assert r.get("para:1") == b"x"
    wait_until(lambda: functions_info(r)["trigger_events_in_flight"] == 0, what="the queue to empty")
    assert functions_info(r)["trigger_runs"] == runs  # the reload's keys and its DEL of seen: are not new
    assert not r.exists("seen:para:1")
    r.set("para:2", "y")  # the library came back from the RDB with its triggers
    assert seen(r, "para:2") == {b"event": b"set", b"type": b"string"}


def test_triggers_fire_on_the_primary_only(server_factory: ServerFactory) -> None:
    """The replica receives the primary's writes and the trigger's writes as
    writes; its own triggers (from the replicated LOAD) never run, and its
    read-through GET is a plain miss."""
    primary = server_factory()
    p = primary.client(protocol=3)
    p.execute_command("AI.FUNCTION", "LOAD", WATCHERS)
    p.execute_command("AI.FUNCTION", "LOAD", ANSWERS)
    replica = server_factory(server_args=["--replicaof", "127.0.0.1", str(primary.port)])
    wait_until(lambda: replica.client().info("replication").get("master_link_status") == "up",
               what="the replica to sync")
    rc = replica.client(protocol=3)
    p.set("para:r", "x")
    wait_until(lambda: p.exists("seen:para:r") == 1, what="the primary's trigger")
    assert p.execute_command("WAIT", 1, 10000) == 1
    assert rc.hgetall("seen:para:r") == {b"event": b"set", b"type": b"string"}
    assert rc.get("answer:r") is None
    assert functions_info(rc)["triggers"] == 8 and functions_info(rc)["trigger_runs"] == 0
    assert not p.exists("answer:r")  # the replica ran nothing, so wrote nothing to replicate back


# ---------------------------------------------------------- async + models


def test_an_async_trigger_runs_a_model_when_its_input_arrives(r: redis.Redis) -> None:
    r.execute_command("AI.MODELSTORE", "m", "TORCH", "CPU", "BLOB", torch_add())
    r.execute_command("AI.FUNCTION", "LOAD", '''#!python name=infer
import redisAI
from redisai_py.functions import execute, register_trigger

async def infer(record):
    values = [float(v) for v in execute("GET", record["key"]).split()]
    x = redisAI.createTensorFromValues("FLOAT", [len(values)], values)
    runner = redisAI.createModelRunner("m")
    redisAI.modelRunnerAddInput(runner, "a", x)
    redisAI.modelRunnerAddInput(runner, "b", x)
    redisAI.modelRunnerAddOutput(runner, "sum")
    redisAI.modelRunnerAddOutput(runner, "product")
    total, product = await redisAI.modelRunnerRunAsync(runner)
    redisAI.setTensorInKey("out:" + record["key"][3:], product)

register_trigger("infer", infer, event="set", prefix="in:")
''')
    r.set("in:1", "3 4")
    wait_until(lambda: r.exists("out:1") == 1, what="the trigger's model run")
    assert [float(v) for v in r.execute_command("AI.TENSORGET", "out:1", "VALUES")] == [9.0, 16.0]
    reply = r.execute_command("AI.INFO", "m")
    assert dict(zip(reply[::2], reply[1::2]))[b"calls"] == 1  # the trigger's run went through the queue


# ---------------------------------------------------------- read-through

ANSWERS = '''#!python name=answers
import asyncio
from redisai_py.functions import execute, override_reply, register_trigger

async def answer(record):
    await asyncio.sleep(0.05)  # the work that makes the answer
    question = record["key"].split(":", 1)[1]
    value = "answer to " + question
    execute("SET", record["key"], value, "EX", 60)
    override_reply(value)
    override_reply("too late: only the first one counts")

def by_return(record):
    return 42 if record["key"].endswith("int") else "-ERR no answer for " + record["key"]

def broken(record):
    raise ValueError("cannot answer")

register_trigger("answer", answer, event="keymiss", prefix="answer:", commands=["GET"])
register_trigger("by_return", by_return, event="keymiss", prefix="ret:", commands=["get"])
register_trigger("broken", broken, event="keymiss", prefix="broken:", commands=["GET"])
'''


def test_a_get_that_misses_waits_for_the_read_through_trigger(r: redis.Redis) -> None:
    r.execute_command("AI.FUNCTION", "LOAD", ANSWERS)
    assert r.get("answer:life") == b"answer to life"  # the first asker gets the answer, not nil
    assert r.get("answer:life") == b"answer to life"  # then it is a plain hit
    assert 0 < r.ttl("answer:life") <= 60
    assert r.get("ret:int") == 42
    with pytest.raises(redis.ResponseError, match="^no answer for ret:x$"):
        r.get("ret:x")
    errors = functions_info(r)["trigger_errors"]
    with pytest.raises(redis.ResponseError, match="cannot answer"):
        r.get("broken:1")
    assert functions_info(r)["trigger_errors"] == errors + 1
    assert r.get("other:1") is None  # not watched: a plain miss
    (lib,) = r.execute_command("AI.FUNCTION", "LIST")
    assert {t[b"name"] for t in lib[b"triggers"]} == {b"answer", b"by_return", b"broken"}


def test_inside_multi_and_lua_a_miss_is_a_plain_nil(r: redis.Redis) -> None:
    r.execute_command("AI.FUNCTION", "LOAD", ANSWERS)
    runs = functions_info(r)["trigger_runs"]
    pipe = r.pipeline(transaction=True)
    pipe.get("answer:multi")
    assert pipe.execute() == [None]
    assert r.eval("return redis.call('GET', KEYS[1])", 1, "answer:lua") is None
    assert functions_info(r)["trigger_runs"] == runs
    assert not r.exists("answer:multi", "answer:lua")
    r.set("answer:there", "cached")
    pipe = r.pipeline(transaction=True)
    pipe.get("answer:there")
    assert pipe.execute() == [b"cached"]


def test_read_through_keeps_gets_errors_and_other_clients_unblocked(shared_server: RedisServer,
                                                                   r: redis.Redis) -> None:
    r.execute_command("AI.FUNCTION", "LOAD", ANSWERS)
    r.hset("answer:hash", "f", "v")
    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
        r.get("answer:hash")
    other = shared_server.client()
    assert other.ping()
    assert r.get("answer:q") == b"answer to q"


def test_a_reader_needs_the_right_to_the_rewritten_get(shared_server: RedisServer, r: redis.Redis) -> None:
    """A watched GET runs as AI._READTHROUGH, and ACL checks that command: in
    @read where the server lets modules join categories (7.2+, Valkey); on
    Redis 7.0 a `+@read` user needs `+ai._readthrough` by name."""
    r.execute_command("AI.FUNCTION", "LOAD", ANSWERS)
    r.execute_command("ACL", "SETUSER", "reader", "on", ">pw", "resetkeys", "~*", "-@all", "+@read")
    r.execute_command("ACL", "SETUSER", "named", "on", ">pw", "resetkeys", "~*", "-@all", "+@read",
                      "+ai._readthrough")
    reader = shared_server.client(username="reader", password="pw")
    in_read = "ai._readthrough" in {c.decode() if isinstance(c, bytes) else c for c in r.acl_cat("read")}
    if in_read:
        assert reader.get("answer:a") == b"answer to a"
    else:
        with pytest.raises(redis.exceptions.NoPermissionError, match="ai._readthrough"):
            reader.get("answer:a")
    assert reader.get("plain") is None  # an unwatched GET is untouched
    assert shared_server.client(username="named", password="pw").get("answer:b") == b"answer to b"


# ------------------------------------------------------------ who it runs as


def test_a_trigger_runs_as_the_user_who_loaded_its_library(shared_server: RedisServer, r: redis.Redis) -> None:
    """ops may load code (MODULE LOAD) but only reach tenantA:* keys; its
    trigger cannot write tenantB:* for it, even when a client's write fires it."""
    r.execute_command("ACL", "SETUSER", "ops", "on", ">pw", "resetkeys", "~tenantA:*", "+@all")
    ops = shared_server.client(username="ops", password="pw", protocol=3)
    ops.execute_command("AI.FUNCTION", "LOAD", '''#!python name=copier
from redisai_py.functions import execute, register_trigger

def copy(record):
    suffix = record["key"].split(":", 1)[1]
    execute("SET", "tenantA:copy:" + suffix, "x")
    execute("SET", "tenantB:copy:" + suffix, "x")

register_trigger("copy", copy, event="set", prefix="in:")
''')
    errors = functions_info(r)["trigger_errors"]
    r.set("in:1", "v")  # the default user's write fires it
    wait_until(lambda: functions_info(r)["trigger_errors"] == errors + 1, what="the refused write")
    assert r.get("tenantA:copy:1") == b"x"
    assert not r.exists("tenantB:copy:1")
    assert "NOPERM" in str(functions_info(r)["trigger_last_error"])


def test_writes_inside_multi_fire_after_exec(r: redis.Redis) -> None:
    r.execute_command("AI.FUNCTION", "LOAD", WATCHERS)
    pipe = r.pipeline(transaction=True)
    pipe.set("para:m1", "a").set("para:m2", "b")
    pipe.execute()
    assert seen(r, "para:m1") == {b"event": b"set", b"type": b"string"}
    assert seen(r, "para:m2") == {b"event": b"set", b"type": b"string"}


def test_the_main_thread_stayed_out_of_python(shared_server: RedisServer) -> None:
    """Every story above ran triggers from the main thread's keyspace
    notifications; none made it take the GIL (runs last in this module)."""
    assert "the Redis main thread took the GIL" not in shared_server.log()
