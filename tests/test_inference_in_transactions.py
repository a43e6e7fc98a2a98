"""Inference inside MULTI/EXEC and Lua (beyond RedisAI, which refuses it).

A client in a transaction or a script cannot be blocked, so the main thread
queues the job as usual and waits for it without the GIL, then replies itself.
The stories: a transaction that sets an input, runs a model and reads the
output; the same from Lua; a run error that is one element of EXEC's reply; a
WATCH that aborts the transaction before anything runs; a script whose
redis.execute the waiting main thread serves; a DAG; outputs replicated inside
the transaction; and the one case still refused (a run started from a script's
redis.execute while the main thread already waits).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import redis

import model_builders as mb
from conftest import RedisServer, ServerFactory, wait_until

IN_TRANSACTION = "Cannot run RedisAI command within a transaction or a LUA script"

SCRIPT = '''
def bar(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] + tensors[1]

def note(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("SET", keys[0], args[0])
    seen = redis.execute("GET", keys[0])
    redis.execute("AI.TENSORSET", keys[1], "FLOAT", "2", "VALUES", "7", "8")
    return tensors[0] * 2

def chatty(tensors: List[Tensor], keys: List[str], args: List[str]):
    for i in range(20):
        redis.execute("INCR", keys[0])
    return tensors[0]

def nested_run(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("AI.MODELEXECUTE", keys[0], "INPUTS", "2", "a", "a", "OUTPUTS", "2", "x", "y")
    return tensors[0]
'''


def tensorset(r: redis.Redis, key: str, values: list[float]) -> None:
    assert r.execute_command("AI.TENSORSET", key, "FLOAT", len(values), "VALUES", *values) == b"OK"


def values(r: redis.Redis, key: str) -> list[float]:
    return [float(v) for v in r.execute_command("AI.TENSORGET", key, "VALUES")]


def calls(r: redis.Redis, key: str) -> tuple[int, int]:
    info = r.execute_command("AI.INFO", key)
    fields = dict(zip(info[::2], info[1::2]))
    return fields[b"calls"], fields[b"errors"]


@pytest.fixture
def r(server: RedisServer) -> redis.Redis:
    client = server.client(socket_timeout=60)
    assert client.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", mb.onnx_add()) == b"OK"
    assert client.execute_command("AI.MODELSTORE", "t", "TORCH", "CPU", "BLOB", mb.torch_add()) == b"OK"
    assert client.execute_command("AI.SCRIPTSTORE", "scr", "CPU", "ENTRY_POINTS", 4, "bar", "note",
                                  "chatty", "nested_run", "SOURCE", SCRIPT) == b"OK"
    return client


def test_a_transaction_sets_runs_and_reads_in_one_exec(r: redis.Redis) -> None:
    pipe = r.pipeline(transaction=True)
    pipe.execute_command("AI.TENSORSET", "a", "FLOAT", 2, "VALUES", 1, 2)
    pipe.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "a", "OUTPUTS", 2, "s", "p")
    pipe.execute_command("AI.MODELRUN", "t", "INPUTS", "s", "a", "OUTPUTS", "s2", "p2")
    pipe.execute_command("AI.TENSORGET", "s2", "VALUES")
    pipe.execute_command("AI.SCRIPTEXECUTE", "scr", "bar", "INPUTS", 2, "s", "p", "OUTPUTS", 1, "y")
    pipe.execute_command("AI.TENSORGET", "y", "VALUES")
    replies = pipe.execute()
    assert replies[:3] == [b"OK", b"OK", b"OK"]
    assert [float(v) for v in replies[3]] == [3.0, 6.0]       # (a + a) + a
    assert replies[4] == b"OK"
    assert [float(v) for v in replies[5]] == [3.0, 8.0]       # (a + a) + a * a
    assert values(r, "p") == [1.0, 4.0]
    assert calls(r, "m") == (1, 0) and calls(r, "t") == (1, 0) and calls(r, "scr") == (1, 0)


def test_lua_runs_a_model_and_reads_its_output(r: redis.Redis) -> None:
    tensorset(r, "a", [2, 3])
    script = """
        redis.call('AI.MODELEXECUTE', KEYS[1], 'INPUTS', 2, KEYS[2], KEYS[2], 'OUTPUTS', 2, KEYS[3], KEYS[4])
        return redis.call('AI.TENSORGET', KEYS[3], 'VALUES')
    """
    assert [float(v) for v in r.eval(script, 4, "m", "a", "s", "p")] == [4.0, 6.0]
    assert values(r, "p") == [4.0, 9.0]
    assert r.eval("return redis.call('AI.SCRIPTEXECUTE', 'scr', 'bar', 'INPUTS', 2, 'a', 'p', "
                  "'OUTPUTS', 1, 'y')", 0) == b"OK"
    assert values(r, "y") == [6.0, 12.0]


def test_a_run_error_is_that_commands_element_of_exec(r: redis.Redis) -> None:
    tensorset(r, "a", [1, 2])
    r.execute_command("AI.TENSORSET", "wide", "FLOAT", 1, 3, "VALUES", 1, 2, 3)
    pipe = r.pipeline(transaction=True)
    pipe.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 2, "wide", "a", "OUTPUTS", 2, "s", "p")
    pipe.set("after", "yes")
    pipe.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "a", "OUTPUTS", 2, "s", "p")
    failed, after, ok = pipe.execute(raise_on_error=False)
    assert isinstance(failed, redis.ResponseError) and str(failed)  # the backend's message
    assert after is True and ok == b"OK"
    assert values(r, "s") == [2.0, 4.0]
    assert calls(r, "m") == (2, 1)


def test_a_model_that_waits_for_a_full_batch_runs_at_once_inside_multi(r: redis.Redis) -> None:
    """MINBATCHSIZE 2 with no timeout waits for a second request however long; while the
    main thread waits for a transaction's run, no client can send one, so it runs alone."""
    assert r.execute_command("AI.MODELSTORE", "b", "TORCH", "CPU", "BATCHSIZE", 4, "MINBATCHSIZE", 2,
                             "BLOB", mb.torch_add()) == b"OK"
    tensorset(r, "a", [1, 2])
    pipe = r.pipeline(transaction=True)
    pipe.execute_command("AI.MODELEXECUTE", "b", "INPUTS", 2, "a", "a", "OUTPUTS", 2, "s", "p")
    assert pipe.execute() == [b"OK"]
    assert values(r, "s") == [2.0, 4.0]
    dag = ("AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.MODELEXECUTE", "b", "INPUTS", 2, "a", "a",
           "OUTPUTS", 2, "x", "y", "|>", "AI.TENSORGET", "y", "VALUES")
    assert r.eval("return redis.call(" + ",".join(f"'{a}'" for a in dag) + ")", 0) == [b"OK", [b"1", b"4"]]


def test_a_watch_that_fails_runs_nothing(server: RedisServer, r: redis.Redis) -> None:
    tensorset(r, "a", [1, 2])
    with r.pipeline(transaction=True) as pipe:
        pipe.watch("a")
        server.client().execute_command("AI.TENSORSET", "a", "FLOAT", 2, "VALUES", 5, 5)
        pipe.multi()
        pipe.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "a", "OUTPUTS", 2, "s", "p")
        with pytest.raises(redis.WatchError):
            pipe.execute()
    assert r.exists("s", "p") == 0
    assert calls(r, "m") == (0, 0)


def test_a_scripts_redis_calls_are_served_by_the_waiting_main_thread(r: redis.Redis) -> None:
    tensorset(r, "a", [1, 2])
    pipe = r.pipeline(transaction=True)
    pipe.execute_command("AI.SCRIPTEXECUTE", "scr", "note", "KEYS", 2, "memo", "made", "INPUTS", 1, "a",
                         "ARGS", 1, "hello", "OUTPUTS", 1, "y")
    pipe.get("memo")
    pipe.execute_command("AI.TENSORGET", "made", "VALUES")
    ran, memo, made = pipe.execute()
    assert ran == b"OK" and memo == b"hello"
    assert [float(v) for v in made] == [7.0, 8.0]
    assert values(r, "y") == [2.0, 4.0]
    # The same from Lua.
    assert r.eval("return redis.call('AI.SCRIPTEXECUTE', 'scr', 'note', 'KEYS', 2, 'memo', 'made', "
                  "'INPUTS', 1, 'a', 'ARGS', 1, 'again', 'OUTPUTS', 1, 'y')", 0) == b"OK"
    assert r.get("memo") == b"again"


def test_a_dag_runs_inside_multi_and_lua(r: redis.Redis) -> None:
    tensorset(r, "a", [1, 2])
    dag = ("AI.DAGEXECUTE", "LOAD", 1, "a", "PERSIST", 1, "out", "|>",
           "AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "a", "OUTPUTS", 2, "s", "p", "|>",
           "AI.SCRIPTEXECUTE", "scr", "note", "KEYS", 2, "memo", "made", "INPUTS", 1, "s",
           "ARGS", 1, "dag", "OUTPUTS", 1, "out", "|>",
           "AI.TENSORGET", "out", "VALUES")
    pipe = r.pipeline(transaction=True)
    pipe.execute_command(*dag)
    pipe.get("memo")
    reply, memo = pipe.execute()
    assert reply[:2] == [b"OK", b"OK"] and [float(v) for v in reply[2]] == [4.0, 8.0]
    assert memo == b"dag"
    assert values(r, "out") == [4.0, 8.0]
    lua = "return redis.call(" + ",".join(f"'{a}'" for a in dag) + ")"
    assert r.eval(lua, 0)[:2] == [b"OK", b"OK"]
    # A read-only DAG with only tensor ops, inside MULTI too.
    pipe = r.pipeline(transaction=True)
    pipe.execute_command("AI.DAGEXECUTE_RO", "LOAD", 1, "a", "|>", "AI.TENSORGET", "a", "VALUES")
    assert pipe.execute() == [[[b"1", b"2"]]]


def test_transactions_and_scripts_that_call_redis_share_a_queue(server: RedisServer, r: redis.Redis) -> None:
    """While the main thread waits for a transaction's run, a script another client started
    on the same queue calls Redis 20 times per run: the waiting main thread does those calls,
    so neither waits for the other (found by the fuzzer as a server that stopped answering)."""
    tensorset(r, "a", [1, 2])
    errors: list[BaseException] = []

    def scripts() -> None:
        try:
            c = server.client(socket_timeout=30)
            for _ in range(60):
                assert c.execute_command("AI.SCRIPTEXECUTE", "scr", "chatty", "KEYS", 1, "n",
                                         "INPUTS", 1, "a", "OUTPUTS", 1, "y") == b"OK"
        except BaseException as exc:  # reported below
            errors.append(exc)

    def transactions() -> None:
        try:
            c = server.client(socket_timeout=30)
            for _ in range(60):
                pipe = c.pipeline(transaction=True)
                pipe.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "a", "OUTPUTS", 2, "s", "p")
                pipe.execute_command("AI.SCRIPTEXECUTE", "scr", "chatty", "KEYS", 1, "n",
                                     "INPUTS", 1, "a", "OUTPUTS", 1, "z")
                assert pipe.execute() == [b"OK", b"OK"]
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=f) for f in (scripts, transactions, scripts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert r.get("n") == str(20 * 60 * 3).encode()
    assert r.ping()


def test_outputs_replicate_inside_the_transaction(server_factory: ServerFactory) -> None:
    primary = server_factory()
    r = primary.client(socket_timeout=60)
    replica = server_factory(server_args=["--replicaof", "127.0.0.1", str(primary.port)])
    rr = replica.client()
    wait_until(lambda: rr.info("replication").get("master_link_status") == "up", what="replica sync")
    r.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", mb.onnx_add())
    pipe = r.pipeline(transaction=True)
    pipe.execute_command("AI.TENSORSET", "a", "FLOAT", 2, "VALUES", 3, 4)
    pipe.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "a", "OUTPUTS", 2, "s", "p")
    assert pipe.execute() == [b"OK", b"OK"]
    assert r.execute_command("WAIT", 1, 10000) == 1
    assert values(rr, "s") == [6.0, 8.0] and values(rr, "p") == [9.0, 16.0]
    # The replica never ran the model: the outputs came as AI.TENSORSET.
    stats = rr.info("commandstats")
    assert "cmdstat_ai.modelexecute" not in stats
    assert stats["cmdstat_ai.tensorset"]["calls"] >= 3


def test_a_run_from_a_scripts_redis_call_inside_a_wait_is_refused(r: redis.Redis) -> None:
    """The main thread already waits for the script; a model run it was handed would wait
    for a queue whose worker waits for it. Refused with RedisAI's transaction error."""
    tensorset(r, "a", [1, 2])
    pipe = r.pipeline(transaction=True)
    pipe.execute_command("AI.SCRIPTEXECUTE", "scr", "nested_run", "KEYS", 1, "m", "INPUTS", 1, "a",
                         "OUTPUTS", 1, "o")
    (reply,) = pipe.execute(raise_on_error=False)
    assert isinstance(reply, redis.ResponseError)
    assert IN_TRANSACTION in str(reply)
    assert r.exists("x", "y", "o") == 0
    assert r.ping()
