"""Moving a deployment from Redis 7.0 to Valkey, with the module on both.

User stories: an operator stops a Redis 7.0 node and starts Valkey on the same
data folder: every tensor, model and script is back and runs. Another adds a
Valkey replica to a Redis 7.0 primary, lets it sync and follow the stream
(model runs arrive as their outputs, the replica runs nothing), then promotes
it: the models and scripts it got run there and give the primary's answers.
Both servers take part whatever `--server` says; values are compared through
the AI commands, since DUMP footers differ between the servers.
"""

from __future__ import annotations

import functools

import numpy as np
import redis

import model_builders as mb
from conftest import DEBIAN_REDIS, ServerFactory, wait_until
from redisai_py.servers import server_binary

SCRIPT = '''
def add(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] + tensors[1]
'''
TENSORS = {
    "t:float": ("FLOAT", [2, 2], np.array([[1.5, -2], [0, 7]], dtype=np.float32).tobytes()),
    "t:i64": ("INT64", [3], np.array([-1, 2**40, 3], dtype=np.int64).tobytes()),
    "t:str": ("STRING", [2], "héllo\0\0".encode()),
    "a": ("FLOAT", [2], np.array([1, 2], dtype=np.float32).tobytes()),
    "b": ("FLOAT", [2], np.array([3, 4], dtype=np.float32).tobytes()),
}


@functools.cache
def onnx_add() -> bytes:
    return mb.onnx_add()


def valkey() -> str:
    return str(server_binary("valkey"))


def store_everything(r: redis.Redis) -> None:
    for key, (dtype, shape, blob) in TENSORS.items():
        assert r.execute_command("AI.TENSORSET", key, dtype, *shape, "BLOB", blob) == b"OK"
    assert r.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "TAG", "v1", "BLOB",
                             onnx_add()) == b"OK"
    assert r.execute_command("AI.SCRIPTSTORE", "s", "CPU", "TAG", "v1", "ENTRY_POINTS", 1, "add",
                             "SOURCE", SCRIPT) == b"OK"


def ai_view(r: redis.Redis) -> dict[str, object]:
    """Every stored value as the AI commands return it."""
    view: dict[str, object] = {key: r.execute_command("AI.TENSORGET", key, "META", "BLOB")
                               for key in TENSORS}
    view["m"] = r.execute_command("AI.MODELGET", "m", "META", "BLOB")
    view["s"] = r.execute_command("AI.SCRIPTGET", "s", "META", "SOURCE")
    return view


def runs_model_and_script(r: redis.Redis) -> None:
    assert r.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "b",
                             "OUTPUTS", 2, "sum", "prod") == b"OK"
    assert r.execute_command("AI.TENSORGET", "sum", "VALUES") == [b"4", b"6"]
    assert r.execute_command("AI.TENSORGET", "prod", "VALUES") == [b"3", b"8"]
    assert r.execute_command("AI.SCRIPTEXECUTE", "s", "add", "INPUTS", 2, "a", "b",
                             "OUTPUTS", 1, "added") == b"OK"
    assert r.execute_command("AI.TENSORGET", "added", "VALUES") == [b"4", b"6"]


def test_valkey_starts_from_the_rdb_redis_saved(server_factory: ServerFactory, tmp_path):
    data = tmp_path / "data"
    old = server_factory(executable=DEBIAN_REDIS, workdir=data)
    r = old.client(socket_timeout=60)
    store_everything(r)
    before = ai_view(r)
    assert r.save() is True
    old.stop()

    new = server_factory(executable=valkey(), workdir=data)
    v = new.client(socket_timeout=60)
    assert v.info("server")["server_name"] == "valkey"
    assert v.dbsize() == len(TENSORS) + 2
    assert ai_view(v) == before
    runs_model_and_script(v)


def test_a_valkey_replica_of_redis_takes_over(server_factory: ServerFactory):
    primary = server_factory(executable=DEBIAN_REDIS,
                             server_args=["--repl-diskless-sync-delay", "0"])
    p = primary.client(socket_timeout=60)
    store_everything(p)  # reaches the replica by the full sync ...
    replica = server_factory(executable=valkey(),
                             server_args=["--replicaof", "127.0.0.1", str(primary.port)])
    v = replica.client(socket_timeout=60)
    wait_until(lambda: v.info("replication").get("master_link_status") == "up"
               and not v.info("replication").get("master_sync_in_progress"),
               what="the Valkey replica to sync")

    runs_model_and_script(p)  # ... these by the stream, as their outputs
    assert p.execute_command("WAIT", 1, 10000) == 1
    assert ai_view(v) == ai_view(p)
    for key in ("sum", "prod", "added"):
        assert v.execute_command("AI.TENSORGET", key, "VALUES") == \
            p.execute_command("AI.TENSORGET", key, "VALUES")
    info = dict(zip(*[iter(v.execute_command("AI.INFO", "m"))] * 2))
    assert info[b"calls"] == 0  # the replica ran nothing

    # Promoted, the Valkey node runs what it was sent and gives the same answers.
    primary.stop()
    assert v.execute_command("REPLICAOF", "NO", "ONE") == b"OK"
    v.delete("sum", "prod", "added")
    runs_model_and_script(v)
