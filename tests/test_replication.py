"""A primary with a replica: everything AI reaches the replica, which never runs a model.

User stories: an operator runs a replica next to the primary. Tensors and
models stored on the primary appear on the replica byte for byte (compared
by DUMP); AI.MODELEXECUTE runs once, on the primary, and its outputs reach
the replica as plain AI.TENSORSET commands, so the replica's AI.INFO keeps
counting zero calls and it never even sees an AI.MODELEXECUTE. Deleting and
replacing models replicates too. A replica started after the data exists
gets it by a full sync, from a disk RDB or a diskless stream; a model larger
than MODEL_CHUNK_SIZE goes over both paths in chunks. When the replica is
promoted, its models run and give the primary's answers. AI.CONFIG stays
local to the node it was sent to.

Scripts and DAGs the same way: AI.SCRIPTSTORE reaches the replica as sent;
AI.SCRIPTEXECUTE runs once, on the primary, and what it did reaches the
replica as its effects: the Redis commands the script ran through
redis.execute (as themselves) and its outputs (as AI.TENSORSET), so the
replica's AI.INFO counts no run. AI.DAGEXECUTE sends only its PERSIST keys,
as tensors; the DAG's intermediate tensors exist on neither node. A
read-only replica runs AI.DAGEXECUTE_RO on the data it was sent. A replica
started later gets scripts and DAG outputs by the full sync, and runs the
scripts once promoted.
"""

from __future__ import annotations

import functools
import time

import numpy as np
import pytest
import redis

import model_builders as mb
from conftest import RedisServer, ServerFactory, server_says
from keyspace import snapshot

CHUNK = 1024
# Diskless full sync (Redis 7's default) without its 5 s wait for more replicas.
PRIMARY_ARGS = ["--repl-diskless-sync-delay", "0"]


@functools.cache
def onnx_add() -> bytes:
    return mb.onnx_add()


@functools.cache
def torch_add() -> bytes:
    return mb.torch_add()


@functools.cache
def onnx_mlp() -> bytes:
    return mb.onnx_mlp()


def start_replica(server_factory: ServerFactory, primary: RedisServer,
                  module_args: list[str] | None = None,
                  server_args: list[str] | None = None) -> RedisServer:
    replica = server_factory(module_args=module_args, server_args=[
        "--replicaof", "127.0.0.1", str(primary.port), *(server_args or [])])
    wait_in_sync(replica)
    return replica


def wait_in_sync(replica: RedisServer, timeout: float = 30.0) -> None:
    client = replica.client()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = client.info("replication")
        if info.get("master_link_status") == "up" and not info.get("master_sync_in_progress"):
            return
        time.sleep(0.02)
    raise AssertionError(f"replica did not sync:\n{replica.log()}")


def replicate(primary: redis.Redis) -> None:
    """Blocks until the replica has acknowledged everything written so far."""
    assert primary.execute_command("WAIT", 1, 10000) == 1


def same_keyspace(primary: redis.Redis, replica: redis.Redis, timeout: float = 30.0) -> None:
    """Asserts the replica holds exactly the primary's keys and values (DUMP).

    A replica stores a replicated MODELSTORE at once and makes the backend
    session in the background; the model's input/output names (MODELGET
    META, and so DUMP) appear when that session is ready, a few ms later.
    So this waits, bounded, for the two to agree."""
    deadline = time.monotonic() + timeout
    while snapshot(replica) != snapshot(primary) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert snapshot(replica) == snapshot(primary)


def tensor(client: redis.Redis, key: str, dtype: type = np.float32) -> np.ndarray:
    _, _, _, shape, _, blob = client.execute_command("AI.TENSORGET", key, "META", "BLOB")
    return np.frombuffer(blob, dtype=dtype).reshape(shape)


def calls(client: redis.Redis, key: str) -> int:
    reply = client.execute_command("AI.INFO", key)
    return dict(zip(reply[::2], reply[1::2]))[b"calls"]


def store_fixture_data(r: redis.Redis) -> None:
    """Tensors of several kinds and an ONNX model with options."""
    r.execute_command("AI.TENSORSET", "t:float", "FLOAT", 2, 2, "VALUES", 1.5, -2, 0, 7)
    r.execute_command("AI.TENSORSET", "t:str", "STRING", 2, "VALUES", "héllo", "")
    r.execute_command("AI.TENSORSET", "t:i64", "INT64", 3, "BLOB",
                      np.array([-1, 2**40, 3], dtype=np.int64).tobytes())
    r.execute_command("AI.TENSORSET", "a", "FLOAT", 2, "VALUES", 1, 2)
    r.execute_command("AI.TENSORSET", "b", "FLOAT", 2, "VALUES", 3, 4)
    assert r.execute_command("AI.MODELSTORE", "m:onnx", "ONNX", "CPU", "TAG", "v1", "BATCHSIZE", 4,
                             "MINBATCHSIZE", 2, "MINBATCHTIMEOUT", 5, "BLOB", onnx_add()) == b"OK"


# --------------------------------------------------------------------------


def test_writes_reach_the_replica_and_model_outputs_arrive_as_tensors(server_factory):
    primary = server_factory(server_args=PRIMARY_ARGS)
    replica = start_replica(server_factory, primary)
    p, r = primary.client(socket_timeout=60), replica.client(socket_timeout=60)

    store_fixture_data(p)
    assert p.execute_command("AI.MODELSTORE", "m:torch", "TORCH", "CPU", "BLOB", torch_add()) == b"OK"
    for i in range(5):
        p.execute_command("AI.TENSORSET", "a", "FLOAT", 2, "VALUES", i, i + 1)
        assert p.execute_command("AI.MODELEXECUTE", "m:onnx", "INPUTS", 2, "a", "b",
                                 "OUTPUTS", 2, f"sum:{i}", f"prod:{i}") == b"OK"
    assert p.execute_command("AI.MODELEXECUTE", "m:torch", "INPUTS", 2, "a", "b",
                             "OUTPUTS", 2, "torch:sum", "torch:prod") == b"OK"
    replicate(p)

    same_keyspace(p, r)
    assert len(snapshot(r)) == 5 + 2 + 10 + 2
    np.testing.assert_array_equal(tensor(r, "sum:3"), [6, 8])
    np.testing.assert_array_equal(tensor(r, "prod:3"), [9, 16])
    np.testing.assert_array_equal(tensor(r, "torch:sum"), [7, 9])
    assert r.execute_command("AI.MODELGET", "m:onnx", "META") == \
        p.execute_command("AI.MODELGET", "m:onnx", "META")
    # The primary ran the models; the replica was sent tensors, never a run.
    assert (calls(p, "m:onnx"), calls(p, "m:torch")) == (5, 1)
    assert (calls(r, "m:onnx"), calls(r, "m:torch")) == (0, 0)
    replica_stats = r.info("commandstats")
    assert "cmdstat_ai.modelexecute" not in replica_stats
    assert replica_stats["cmdstat_ai.tensorset"]["calls"] == 5 + 5 + 10 + 2
    assert replica_stats["cmdstat_ai.modelstore"]["calls"] == 2

    # A replica is read-only for AI writes, execution included.
    for command in [("AI.TENSORSET", "x", "FLOAT", 1, "VALUES", 1),
                    ("AI.MODELEXECUTE", "m:onnx", "INPUTS", 2, "a", "b", "OUTPUTS", 2, "s", "p"),
                    ("AI.MODELDEL", "m:onnx")]:
        with pytest.raises(redis.exceptions.ReadOnlyError):
            r.execute_command(*command)

    # Deleting and replacing models replicates; outputs already written stay.
    assert p.execute_command("AI.MODELDEL", "m:torch") == b"OK"
    assert p.execute_command("AI.MODELSTORE", "m:onnx", "ONNX", "CPU", "TAG", "v2",
                             "BLOB", onnx_add()) == b"OK"
    replicate(p)
    assert r.exists("m:torch") == 0 and r.exists("torch:sum") == 1
    assert r.execute_command("AI.MODELGET", "m:onnx", "META")[4:6] == [b"tag", b"v2"]
    same_keyspace(p, r)

    # AI.CONFIG is local: the replica keeps its own chunk size.
    assert p.execute_command("AI.CONFIG", "MODEL_CHUNK_SIZE", 64) == b"OK"
    assert isinstance(p.execute_command("AI.MODELGET", "m:onnx", "BLOB"), list)
    assert r.execute_command("AI.MODELGET", "m:onnx", "BLOB") == onnx_add()

    # Promoted, the replica runs its copies of the models itself.
    assert r.execute_command("REPLICAOF", "NO", "ONE") == b"OK"
    assert r.execute_command("AI.MODELEXECUTE", "m:onnx", "INPUTS", 2, "a", "b",
                             "OUTPUTS", 2, "s", "p") == b"OK"
    np.testing.assert_array_equal(tensor(r, "s"), [7, 9])
    assert calls(r, "m:onnx") == 1


@pytest.mark.parametrize("transfer", ["disk", "diskless"])
def test_replica_started_later_gets_everything_by_full_sync(server_factory, transfer):
    module_args = ["MODEL_CHUNK_SIZE", str(CHUNK)]
    sync_args = (["--repl-diskless-sync", "no"] if transfer == "disk" else
                 ["--repl-diskless-sync", "yes", *PRIMARY_ARGS])
    primary = server_factory(module_args=module_args, server_args=sync_args)
    # A long timeout: redis-py would send a slow first script run again.
    p = primary.client(socket_timeout=60)
    store_fixture_data(p)
    big = onnx_mlp()
    assert len(big) > 50 * CHUNK
    assert p.execute_command("AI.MODELSTORE", "m:mlp", "ONNX", "CPU", "TAG", "fraud",
                             "BLOB", big) == b"OK"
    assert p.execute_command("AI.MODELEXECUTE", "m:onnx", "INPUTS", 2, "a", "b",
                             "OUTPUTS", 2, "s", "p") == b"OK"
    # A script, its effects and a DAG's persisted output.
    store_script(p, "script")
    p.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", onnx_add())
    assert run_script(p, "script", "before the replica") == b"OK"
    assert p.execute_command("AI.DAGEXECUTE", "LOAD", 1, "sum", "PERSIST", 1, "dag:out", "|>",
                             "AI.SCRIPTEXECUTE", "script", "combine", "KEYS", 1, "log",
                             "INPUTS", 2, "sum", "sum", "OUTPUTS", 1, "dag:out") == [b"OK"]

    # Diskless on the replica side too: it loads straight from the socket,
    # which the module must survive (it declares it handles I/O errors).
    replica_args = [] if transfer == "disk" else ["--repl-diskless-load", "swapdb"]
    replica = start_replica(server_factory, primary, module_args, replica_args)
    r = replica.client(socket_timeout=60)
    assert p.info("stats")["sync_full"] == 1
    assert server_says("Full resync from master", "Full resync from primary") in replica.log()
    assert ("Loading DB in memory" if transfer == "disk" else "Loading RDB produced") in replica.log()
    replicate(p)
    same_keyspace(p, r)

    # The big model, in chunks of the replica's MODEL_CHUNK_SIZE.
    chunks = r.execute_command("AI.MODELGET", "m:mlp", "BLOB")
    assert [len(c) for c in chunks[:-1]] == [CHUNK] * (len(big) // CHUNK)
    assert b"".join(chunks) == big
    assert calls(r, "m:onnx") == 0

    r.execute_command("REPLICAOF", "NO", "ONE")
    transaction, reference = mb.mlp_inputs(batch=3)
    r.execute_command("AI.TENSORSET", "tx", "FLOAT", 3, 30, "BLOB", transaction.tobytes())
    r.execute_command("AI.TENSORSET", "ref", "FLOAT", 3, 256, "BLOB", reference.tobytes())
    assert r.execute_command("AI.MODELEXECUTE", "m:mlp", "INPUTS", 2, "tx", "ref",
                             "OUTPUTS", 1, "out") == b"OK"
    np.testing.assert_allclose(tensor(r, "out"), mb.mlp_reference(mb.mlp_weights(), transaction, reference),
                               rtol=1e-5, atol=1e-6)
    # The script came with the sync and runs on the promoted replica.
    np.testing.assert_array_equal(tensor(r, "dag:out"), [8, 12])
    assert calls(r, "script") == 0
    assert run_script(r, "script", "after the sync") == b"OK"
    assert (r.get("runs"), r.get("last"), r.lrange("log", 0, -1)) == (b"2", b"after the sync", [b"10"])
    np.testing.assert_array_equal(tensor(r, "prod10"), [30, 80])


def test_models_larger_than_the_chunk_size_replicate_in_chunks(server_factory):
    module_args = ["MODEL_CHUNK_SIZE", str(CHUNK)]
    primary = server_factory(module_args=module_args, server_args=PRIMARY_ARGS)
    replica = start_replica(server_factory, primary, module_args)
    p, r = primary.client(), replica.client()
    big = onnx_mlp()
    # The client sends the blob in uneven pieces; the replica gets the
    # command as it was sent, and answers MODELGET in its own chunks.
    pieces = [big[:1000], big[1000:50_000], big[50_000:]]
    assert p.execute_command("AI.MODELSTORE", "m:mlp", "ONNX", "CPU", "BLOB", *pieces) == b"OK"
    assert p.execute_command("AI.MODELSET", "m:old", "ONNX", "CPU", "BLOB", big) == b"OK"
    replicate(p)
    same_keyspace(p, r)
    for key in ("m:mlp", "m:old"):
        chunks = r.execute_command("AI.MODELGET", key, "BLOB")
        assert len(chunks) == len(big) // CHUNK + 1
        assert {len(c) for c in chunks[:-1]} == {CHUNK}
        assert b"".join(chunks) == big
        assert r.execute_command("AI.MODELGET", key, "META") == p.execute_command("AI.MODELGET", key, "META")

    transaction, reference = mb.mlp_inputs(batch=2, seed=7)
    p.execute_command("AI.TENSORSET", "tx", "FLOAT", 2, 30, "BLOB", transaction.tobytes())
    p.execute_command("AI.TENSORSET", "ref", "FLOAT", 2, 256, "BLOB", reference.tobytes())
    assert p.execute_command("AI.MODELEXECUTE", "m:mlp", "INPUTS", 2, "tx", "ref", "OUTPUTS", 1, "out") == b"OK"
    replicate(p)
    expected = mb.mlp_reference(mb.mlp_weights(), transaction, reference)
    np.testing.assert_allclose(tensor(r, "out"), expected, rtol=1e-5, atol=1e-6)
    assert tensor(r, "out").tobytes() == tensor(p, "out").tobytes()
    assert calls(r, "m:mlp") == 0


# --------------------------------------------------------------------------
# scripts and DAGs


# Entry points: def fn(tensors: List[Tensor], keys: List[str], args: List[str]).
SCRIPT = '''
def run(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("INCR", keys[0])
    redis.execute("SET", keys[1], args[0])
    outputs = redisAI.model_execute(keys[2], tensors, 2)
    return outputs[0], outputs[1] * float(args[1])

def combine(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("RPUSH", keys[0], str(int(tensors[0].sum().item())))
    return tensors[0] + tensors[1]
'''


def store_script(client: redis.Redis, key: str, tag: str = "v1") -> None:
    assert client.execute_command("AI.SCRIPTSTORE", key, "CPU", "TAG", tag, "ENTRY_POINTS", 2, "run",
                                  "combine", "SOURCE", SCRIPT) == b"OK"


def run_script(client: redis.Redis, script: str, note: str) -> object:
    """`run`: INCR runs, SET last <note>, the model m on a and b through
    redisAI.model_execute; outputs sum = a + b, prod10 = a * b * 10."""
    return client.execute_command("AI.SCRIPTEXECUTE", script, "run", "KEYS", 3, "runs", "last", "m",
                                  "INPUTS", 2, "a", "b", "ARGS", 2, note, 10,
                                  "OUTPUTS", 2, "sum", "prod10")


def command_calls(client: redis.Redis, command: str) -> int:
    stats = client.info("commandstats").get(f"cmdstat_{command.lower()}")
    return int(stats["calls"]) if stats else 0


def test_scripts_and_dags_replicate_their_effects_and_never_run_on_the_replica(server_factory):
    primary = server_factory(server_args=PRIMARY_ARGS)
    replica = start_replica(server_factory, primary)
    p, r = primary.client(socket_timeout=60), replica.client(socket_timeout=60)
    p.execute_command("AI.TENSORSET", "a", "FLOAT", 2, "VALUES", 1, 2)
    p.execute_command("AI.TENSORSET", "b", "FLOAT", 2, "VALUES", 3, 4)
    assert p.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", onnx_add()) == b"OK"
    store_script(p, "s")
    store_script(p, "s:gone")

    # AI.SCRIPTSTORE reaches the replica as sent: same source, tag, entry points.
    replicate(p)
    same_keyspace(p, r)
    assert r.execute_command("AI.SCRIPTGET", "s") == p.execute_command("AI.SCRIPTGET", "s")
    assert r.execute_command("AI.SCRIPTGET", "s", "SOURCE") == SCRIPT.encode()

    # AI.SCRIPTEXECUTE: the script's own Redis writes and its outputs arrive;
    # the script (and the model it ran) never ran on the replica.
    for i in range(3):
        assert run_script(p, "s", f"run {i}") == b"OK"
    replicate(p)
    same_keyspace(p, r)
    assert (r.get("runs"), r.get("last")) == (b"3", b"run 2")
    np.testing.assert_array_equal(tensor(r, "sum"), [4, 6])
    np.testing.assert_array_equal(tensor(r, "prod10"), [30, 80])
    assert calls(p, "s") == 3
    assert (calls(r, "s"), calls(r, "m")) == (0, 0)
    assert command_calls(r, "AI.SCRIPTEXECUTE") == 0
    assert (command_calls(r, "INCR"), command_calls(r, "SET")) == (3, 3)
    assert command_calls(r, "AI.TENSORSET") == 2 + 3 * 2

    # AI.DAGEXECUTE: only the PERSIST key goes out (as a tensor), plus what a
    # script op wrote through redis.execute; the DAG's intermediate tensors
    # exist on neither node.
    tensorsets_before = command_calls(r, "AI.TENSORSET")
    reply = p.execute_command(
        "AI.DAGEXECUTE", "LOAD", 2, "a", "b", "PERSIST", 1, "final", "|>",
        "AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "b", "OUTPUTS", 2, "dag:sum", "dag:prod", "|>",
        "AI.SCRIPTEXECUTE", "s", "combine", "KEYS", 1, "log", "INPUTS", 2, "dag:sum", "dag:prod",
        "OUTPUTS", 1, "final", "|>",
        "AI.TENSORGET", "final", "VALUES")
    assert reply == [b"OK", b"OK", [b"7", b"14"]]
    replicate(p)
    same_keyspace(p, r)
    np.testing.assert_array_equal(tensor(r, "final"), [7, 14])
    assert r.lrange("log", 0, -1) == [b"10"]
    assert p.exists("dag:sum", "dag:prod") == 0 and r.exists("dag:sum", "dag:prod") == 0
    assert command_calls(r, "AI.TENSORSET") == tensorsets_before + 1
    assert command_calls(r, "AI.DAGEXECUTE") == 0
    assert calls(p, "s") == 4
    assert (calls(r, "m"), calls(r, "s")) == (0, 0)

    # A read-only replica runs read-only DAGs on the data it was sent (and
    # writes nothing); everything that writes is refused there.
    reply = r.execute_command("AI.DAGEXECUTE_RO", "LOAD", 2, "final", "b", "|>",
                              "AI.MODELEXECUTE", "m", "INPUTS", 2, "final", "b", "OUTPUTS", 2, "x", "y",
                              "|>", "AI.TENSORGET", "y", "VALUES")
    assert reply == [b"OK", [b"21", b"56"]]
    assert calls(r, "m") == 1
    same_keyspace(p, r)
    for command in [("AI.SCRIPTEXECUTE", "s", "combine", "KEYS", 1, "log", "INPUTS", 2, "a", "b",
                     "OUTPUTS", 1, "c"),
                    ("AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.TENSORGET", "a", "VALUES"),
                    ("AI.SCRIPTSTORE", "s2", "CPU", "ENTRY_POINTS", 1, "run", "SOURCE", SCRIPT),
                    ("AI.SCRIPTDEL", "s")]:
        with pytest.raises(redis.exceptions.ReadOnlyError):
            r.execute_command(*command)

    # SCRIPTDEL and a replacing SCRIPTSTORE replicate.
    assert p.execute_command("AI.SCRIPTDEL", "s:gone") == b"OK"
    store_script(p, "s", tag="v2")
    replicate(p)
    assert r.exists("s:gone") == 0
    assert r.execute_command("AI.SCRIPTGET", "s", "META")[:4] == [b"device", b"CPU", b"tag", b"v2"]
    same_keyspace(p, r)

    # Promoted, the replica runs the script itself, on the data it was sent.
    assert r.execute_command("REPLICAOF", "NO", "ONE") == b"OK"
    assert run_script(r, "s", "on the promoted replica") == b"OK"
    assert (r.get("runs"), r.get("last")) == (b"4", b"on the promoted replica")
    np.testing.assert_array_equal(tensor(r, "prod10"), [30, 80])
    assert calls(r, "s") == 1
