"""AI.* on a real Redis Cluster: 3 primaries, 3 replicas, the module on every node.

User stories: an application uses redis-py's RedisCluster (and an operator
`redis-cli -c`) to store tensors, models and scripts and run them, alone or
in DAGs, on hash-tagged keys; the client routes each command by the keys the
module declares (a DAG that loads nothing by its ROUTING value), and Redis
refuses a command whose keys span slots with CROSSSLOT. What a script does
through redis.execute is not routed: it reaches the keys on its own node
only. Replicas serve the
read-only AI commands after READONLY and send writes to their primary; their
model statistics stay at zero because they never run a model. Tenants that
share the cluster are kept apart by ACL key patterns, for the keys a command
names and for what its script reaches through redis.execute. A helper in
`redisai_py.cluster` puts one model on every shard and names the copy next to
a given data key. Finally a primary is killed with SIGKILL: its replica is
promoted and serves the same models, scripts and tensors (the time it takes is
measured and printed), and the killed node, started again, rejoins as a
replica and gets the data by a full sync.

One cluster serves the whole file (starting six servers with Python inside
takes seconds); each story uses its own hash tags, and the failover story
runs last because it changes the topology.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import (ClusterCrossSlotError, MovedError, NoPermissionError,
                              ReadOnlyError, RedisClusterException)

import model_builders as mb
from cluster import Cluster, wait_for
from conftest import server_says
from redisai_py.cluster import (colocated_key, delete_model_on_every_shard,
                                delete_script_on_every_shard, model_key_for, model_keys,
                                routing_tag_for, shard_tag_for, store_model_on_every_shard,
                                store_script_on_every_shard, store_tenant_model, tenant_key,
                                delete_tenant_model)

CROSSSLOT = "CROSSSLOT Keys in request don't hash to the same slot"
NOPERM_KEY = server_says("no permissions to access one of the keys", "No permissions to access a key")


# Entry points: def fn(tensors: List[Tensor], keys: List[str], args: List[str]).
SCRIPT = '''
def run(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("INCR", keys[0])
    outputs = redisAI.model_execute(keys[1], tensors, 2)
    return outputs[0], outputs[1]

def add(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] + tensors[1]

def mark(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("SET", keys[0], args[0])

def touch(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("SET", args[0], args[1])
    return tensors[0]
'''
ENTRY_POINTS = ["run", "add", "mark", "touch"]
NON_LOCAL = "Attempted to access a non local key in a cluster node"


@functools.cache
def onnx_add() -> bytes:
    return mb.onnx_add()


@functools.cache
def onnx_mlp() -> bytes:
    return mb.onnx_mlp()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(Path(tmp_path_factory.mktemp("cluster"))).start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(autouse=True)
def _attach_logs(request: pytest.FixtureRequest, cluster: Cluster) -> None:
    """Lets conftest attach every node's log to a failed test's report."""
    request.node.redis_servers = cluster.nodes


@pytest.fixture(scope="module")
def rc(cluster: Cluster) -> Iterator[RedisCluster]:
    client = cluster.client()
    yield client
    client.close()


def slot(key: str) -> int:
    return key_slot(key.encode())


def tags_on_every_primary(cluster: Cluster, prefix: str) -> list[str]:
    """One hash tag per primary: `prefix0`, `prefix7`, ... (the first found)."""
    found: dict[int, str] = {}
    primaries = {n.port for n in cluster.primaries()}
    for i in range(1000):
        tag = f"{prefix}{i}"
        port = cluster.primary_for(tag).port
        found.setdefault(port, tag)
        if set(found) == primaries:
            return list(found.values())
    raise AssertionError("no tags found for every primary")


def tensor(client: redis.Redis | RedisCluster, key: str) -> np.ndarray:
    dtype, shape, blob = client.execute_command("AI.TENSORGET", key, "META", "BLOB")[1::2]
    assert dtype == b"FLOAT"
    return np.frombuffer(blob, dtype=np.float32).reshape(shape)


def store_add_story(client: redis.Redis | RedisCluster, tag: str) -> None:
    """Two inputs, the ONNX add/mul model, one MODELEXECUTE: 5 keys under {tag}."""
    assert client.execute_command("AI.TENSORSET", f"a{{{tag}}}", "FLOAT", 2, "VALUES", 1, 2) == b"OK"
    assert client.execute_command("AI.TENSORSET", f"b{{{tag}}}", "FLOAT", 2, "VALUES", 3, 5) == b"OK"
    assert client.execute_command("AI.MODELSTORE", f"m{{{tag}}}", "ONNX", "CPU", "TAG", tag,
                                  "BLOB", onnx_add()) == b"OK"
    assert client.execute_command("AI.MODELEXECUTE", f"m{{{tag}}}", "INPUTS", 2, f"a{{{tag}}}",
                                  f"b{{{tag}}}", "OUTPUTS", 2, f"sum{{{tag}}}",
                                  f"prod{{{tag}}}") == b"OK"


def store_script(client: redis.Redis | RedisCluster, key: str) -> None:
    assert client.execute_command("AI.SCRIPTSTORE", key, "CPU", "ENTRY_POINTS", len(ENTRY_POINTS),
                                  *ENTRY_POINTS, "SOURCE", SCRIPT) == b"OK"


def dag_calls(node: object) -> int:
    stats = node.client().info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))
               for name in ("ai.dagexecute", "ai.dagexecute_ro"))


def run_info(client: redis.Redis | RedisCluster, key: str) -> dict[str, object]:
    reply = client.execute_command("AI.INFO", key)
    return {reply[i].decode(): reply[i + 1] for i in range(0, len(reply), 2)}


# --------------------------------------------------------------------------
# routing


def test_redis_py_cluster_client_runs_every_model_command_on_its_shard(cluster, rc):
    tags = tags_on_every_primary(cluster, "route")
    assert len(tags) == 3
    for tag in tags:
        store_add_story(rc, tag)
        np.testing.assert_array_equal(tensor(rc, f"sum{{{tag}}}"), [4, 7])
        np.testing.assert_array_equal(tensor(rc, f"prod{{{tag}}}"), [3, 10])
        meta = rc.execute_command("AI.MODELGET", f"m{{{tag}}}", "META")
        assert meta[:6] == [b"backend", b"ONNX", b"device", b"CPU", b"tag", tag.encode()]
        assert rc.execute_command("AI.MODELGET", f"m{{{tag}}}", "BLOB") == onnx_add()
        assert run_info(rc, f"m{{{tag}}}")["calls"] == 1
        # The deprecated spelling, routed through the module's getkeys callback.
        assert rc.execute_command("AI.MODELRUN", f"m{{{tag}}}", "INPUTS", f"b{{{tag}}}",
                                  f"b{{{tag}}}", "OUTPUTS", f"sum{{{tag}}}",
                                  f"prod{{{tag}}}") == b"OK"
        np.testing.assert_array_equal(tensor(rc, f"sum{{{tag}}}"), [6, 10])

        # Every key really lives on the primary that owns the slot, and only there.
        owner = cluster.primary_for(tag)
        assert owner.client().execute_command("CLUSTER", "COUNTKEYSINSLOT", slot(tag)) == 5
        for other in cluster.primaries():
            if other.port != owner.port:
                with pytest.raises(MovedError):
                    other.client().execute_command("AI.TENSORGET", f"a{{{tag}}}", "META")

    assert rc.execute_command("AI.MODELDEL", f"m{{{tags[0]}}}") == b"OK"
    assert rc.exists(f"m{{{tags[0]}}}") == 0


def test_redis_cli_c_follows_redirects_for_ai_commands(cluster):
    tag = "cli"
    owner = cluster.primary_for(tag)
    elsewhere = next(n for n in cluster.primaries() if n.port != owner.port)

    def cli(*args: object, stdin: bytes | None = None) -> str:
        return cluster.cli(*args, port=elsewhere.port, stdin=stdin)

    # -x reads the model blob (binary) from stdin as the last argument.
    assert cli("AI.MODELSTORE", "m{cli}", "ONNX", "CPU", "BLOB", stdin=onnx_add()) == "OK\n"
    assert cli("AI.TENSORSET", "a{cli}", "FLOAT", 2, "VALUES", 1.5, 2) == "OK\n"
    assert cli("AI.TENSORSET", "b{cli}", "FLOAT", 2, "VALUES", 2, 4) == "OK\n"
    assert cli("AI.MODELEXECUTE", "m{cli}", "INPUTS", 2, "a{cli}", "b{cli}",
               "OUTPUTS", 2, "s{cli}", "p{cli}") == "OK\n"
    assert cli("AI.TENSORGET", "s{cli}", "VALUES") == "3.5\n6\n"
    assert cli("AI.TENSORGET", "p{cli}", "VALUES") == "3\n8\n"
    assert cli("AI.MODELGET", "m{cli}", "META").split("\n")[:4] == ["backend", "ONNX", "device", "CPU"]
    assert owner.client().exists("m{cli}", "a{cli}", "b{cli}", "s{cli}", "p{cli}") == 5
    assert CROSSSLOT in cli("AI.MODELEXECUTE", "m{cli}", "INPUTS", 2, "a{cli}", "b{other}",
                            "OUTPUTS", 2, "s{cli}", "p{cli}")


def test_keys_in_different_slots_are_refused_with_crossslot(cluster, rc):
    store_add_story(rc, "xs")
    owner = cluster.primary_for("xs").client()
    before = {k: owner.dump(k) for k in owner.keys("*{xs}")}
    assert slot("xs") != slot("elsewhere")
    cross = [
        # an input in another slot
        ("AI.MODELEXECUTE", "m{xs}", "INPUTS", 2, "a{xs}", "b{elsewhere}", "OUTPUTS", 2, "s{xs}", "p{xs}"),
        # an output in another slot (the OUTPUTS key spec)
        ("AI.MODELEXECUTE", "m{xs}", "INPUTS", 2, "a{xs}", "b{xs}", "OUTPUTS", 2, "s{xs}", "p{elsewhere}"),
        # the model in another slot
        ("AI.MODELEXECUTE", "m{elsewhere}", "INPUTS", 2, "a{xs}", "b{xs}", "OUTPUTS", 2, "s{xs}", "p{xs}"),
        ("AI.MODELRUN", "m{xs}", "INPUTS", "a{xs}", "b{xs}", "OUTPUTS", "s{xs}", "p{elsewhere}"),
    ]
    for command in cross:
        # Redis itself refuses, on the node that owns the first key...
        with pytest.raises(ClusterCrossSlotError, match="hash to the same slot"):
            owner.execute_command(*command)
        # ...and redis-py, which asks the server where the keys are, refuses before sending.
        with pytest.raises(RedisClusterException, match="all keys must map to the same key slot"):
            rc.execute_command(*command)
    assert {k: owner.dump(k) for k in owner.keys("*{xs}")} == before
    assert rc.exists("s{elsewhere}", "p{elsewhere}") == 0

    # Keys in one slot that another node owns: a redirect, not an error.
    elsewhere = next(n for n in cluster.primaries() if n.port != cluster.primary_for("xs").port)
    with pytest.raises(MovedError) as moved:
        elsewhere.client().execute_command(*cross[0][:5], "b{xs}", *cross[0][6:])
    assert moved.value.slot_id == slot("xs")


def test_replicas_serve_reads_after_readonly_and_never_run_models(cluster, rc):
    store_add_story(rc, "ro")
    primary = cluster.primary_for("ro")
    assert primary.client().execute_command("WAIT", 1, 5000) == 1
    replica = cluster.replicas_of(primary)[0].client(socket_timeout=60)

    # Without READONLY a replica redirects even reads to its primary.
    with pytest.raises(MovedError):
        replica.execute_command("AI.TENSORGET", "sum{ro}", "VALUES")
    replica.execute_command("READONLY")
    assert replica.execute_command("AI.TENSORGET", "sum{ro}", "VALUES") == [b"4", b"7"]
    assert replica.execute_command("AI.MODELGET", "m{ro}", "BLOB") == onnx_add()
    # The output arrived as a tensor; the replica never ran the model.
    assert run_info(primary.client(), "m{ro}")["calls"] == 1
    assert run_info(replica, "m{ro}")["calls"] == 0
    assert "cmdstat_ai.modelexecute" not in replica.info("commandstats")
    # Scripts the same: the script's writes and outputs arrive, the replica
    # never runs it; it does run read-only DAGs (which write nothing).
    store_script(rc, "s{ro}")
    assert rc.execute_command("AI.SCRIPTEXECUTE", "s{ro}", "run", "KEYS", 2, "n{ro}", "m{ro}",
                              "INPUTS", 2, "a{ro}", "b{ro}", "OUTPUTS", 2, "x{ro}", "y{ro}") == b"OK"
    assert primary.client().execute_command("WAIT", 1, 5000) == 1
    assert replica.execute_command("AI.SCRIPTGET", "s{ro}", "SOURCE") == SCRIPT.encode()
    assert replica.get("n{ro}") == b"1"
    assert replica.execute_command("AI.TENSORGET", "y{ro}", "VALUES") == [b"3", b"10"]
    assert run_info(replica, "s{ro}")["calls"] == 0
    assert replica.execute_command("AI.DAGEXECUTE_RO", "LOAD", 1, "y{ro}", "|>",
                                   "AI.MODELEXECUTE", "m{ro}", "INPUTS", 2, "y{ro}", "y{ro}",
                                   "OUTPUTS", 2, "s", "p", "|>", "AI.TENSORGET", "p", "VALUES") == [
        b"OK", [b"9", b"100"]]
    assert run_info(replica, "m{ro}")["calls"] == 1
    # Writes still go to the primary, READONLY or not.
    for command in [("AI.MODELEXECUTE", "m{ro}", "INPUTS", 2, "a{ro}", "b{ro}", "OUTPUTS", 2, "s{ro}", "p{ro}"),
                    ("AI.TENSORSET", "a{ro}", "FLOAT", 1, "VALUES", 1),
                    ("AI.MODELDEL", "m{ro}"),
                    ("AI.SCRIPTEXECUTE", "s{ro}", "add", "INPUTS", 2, "a{ro}", "b{ro}", "OUTPUTS", 1, "c{ro}"),
                    ("AI.DAGEXECUTE", "LOAD", 1, "a{ro}", "|>", "AI.TENSORGET", "a{ro}", "VALUES")]:
        with pytest.raises(MovedError):
            replica.execute_command(*command)
    # AI.CONFIG is flagged `write` (as in RedisAI), so a read-only replica
    # refuses it, GET included: replicas take their settings from the module
    # arguments.
    with pytest.raises(ReadOnlyError):
        replica.execute_command("AI.CONFIG", "GET", "MODEL_CHUNK_SIZE")


def test_command_info_flags_fit_cluster_routing(cluster):
    c = cluster.alive()[0].client(protocol=3)
    c.response_callbacks.clear()
    reads = {"ai.tensorget", "ai.modelget", "ai._modelscan", "ai.info", "ai.scriptget",
             "ai._scriptscan", "ai.dagexecute_ro", "ai.dagrun_ro"}
    grows = {"ai.tensorset", "ai.modelstore", "ai.modelset", "ai.modelexecute", "ai.modelrun",
             "ai.scriptstore", "ai.scriptset", "ai.scriptexecute", "ai.scriptrun", "ai.dagexecute",
             "ai.dagrun"}
    writes = grows | {"ai.modeldel", "ai.scriptdel", "ai.config"}
    movable = {"ai.modelexecute", "ai.modelrun", "ai.scriptexecute", "ai.scriptrun", "ai.dagexecute",
               "ai.dagexecute_ro", "ai.dagrun", "ai.dagrun_ro"}
    keyless = {"ai._modelscan", "ai._scriptscan", "ai.config"}
    rows = c.execute_command("COMMAND", "INFO", *sorted(reads | writes))
    assert len(rows) == len(reads | writes) and None not in rows
    for row in rows:
        name, flags, first_key, categories = row[0].decode(), set(row[2]), row[3], set(row[6])
        assert b"module" in flags, name
        assert (b"readonly" in flags) == (name in reads), name
        assert (b"write" in flags) == (name in writes), name
        assert (b"denyoom" in flags) == (name in grows), name
        assert (b"movablekeys" in flags) == (name in movable), name
        assert (first_key == 0) == (name in keyless), name
        # Redis 7.0 has no module API for ACL categories (7.2 does); where
        # categories are set they must agree with the flags.
        if name in reads:
            assert b"@write" not in categories, name
        if name in writes:
            assert b"@read" not in categories, name
    # The keys Redis (and so the cluster router and ACL) sees, with access flags.
    assert c.execute_command("COMMAND", "GETKEYSANDFLAGS", "AI.MODELEXECUTE", "m{t}", "INPUTS", 2,
                             "a{t}", "b{t}", "OUTPUTS", 1, "c{t}", "TIMEOUT", 10) == [
        [b"m{t}", [b"RO", b"access"]], [b"a{t}", [b"RO", b"access"]],
        [b"b{t}", [b"RO", b"access"]], [b"c{t}", [b"OW", b"update"]]]
    assert c.execute_command("COMMAND", "GETKEYS", "AI.MODELRUN", "m{t}", "TIMEOUT", 5, "INPUTS",
                             "a{t}", "OUTPUTS", "c{t}") == [b"m{t}", b"a{t}", b"c{t}"]
    # A script reads its key and inputs, may read and write its KEYS, overwrites its outputs.
    assert c.execute_command("COMMAND", "GETKEYSANDFLAGS", "AI.SCRIPTEXECUTE", "s{t}", "fn",
                             "KEYS", 1, "k{t}", "INPUTS", 1, "a{t}", "ARGS", 1, "x",
                             "OUTPUTS", 1, "o{t}") == [
        [b"s{t}", [b"RO", b"access"]], [b"k{t}", [b"RW", b"access", b"update"]],
        [b"a{t}", [b"RO", b"access"]], [b"o{t}", [b"OW", b"update"]]]
    # A DAG's keys: LOAD, PERSIST, the ROUTING value and each op's model or
    # script; its own tensor names (x, y) are not keys.
    assert c.execute_command("COMMAND", "GETKEYS", "AI.DAGEXECUTE", "LOAD", 1, "a{t}", "PERSIST", 1,
                             "y", "ROUTING", "{t}", "|>", "AI.MODELEXECUTE", "m{t}", "INPUTS", 1,
                             "a{t}", "OUTPUTS", 1, "x", "|>", "AI.SCRIPTEXECUTE", "s{t}", "fn",
                             "INPUTS", 1, "x", "OUTPUTS", 1, "y") == [b"a{t}", b"y", b"{t}", b"m{t}", b"s{t}"]


def test_redis_py_cluster_client_runs_scripts_and_dags_on_their_shard(cluster, rc):
    for tag in tags_on_every_primary(cluster, "sd"):
        store_add_story(rc, tag)  # a, b, m, sum, prod
        store_script(rc, f"s{{{tag}}}")
        # The script INCRs a counter and runs the model through redisAI.model_execute.
        assert rc.execute_command("AI.SCRIPTEXECUTE", f"s{{{tag}}}", "run", "KEYS", 2, f"n{{{tag}}}",
                                  f"m{{{tag}}}", "INPUTS", 2, f"a{{{tag}}}", f"b{{{tag}}}",
                                  "OUTPUTS", 2, f"x{{{tag}}}", f"y{{{tag}}}") == b"OK"
        np.testing.assert_array_equal(tensor(rc, f"x{{{tag}}}"), [4, 7])
        np.testing.assert_array_equal(tensor(rc, f"y{{{tag}}}"), [3, 10])
        assert rc.get(f"n{{{tag}}}") == b"1"
        # A DAG: the model, then the script on its outputs; one key persisted.
        assert rc.execute_command(
            "AI.DAGEXECUTE", "LOAD", 2, f"a{{{tag}}}", f"b{{{tag}}}", "PERSIST", 1, f"z{{{tag}}}", "|>",
            "AI.MODELEXECUTE", f"m{{{tag}}}", "INPUTS", 2, f"a{{{tag}}}", f"b{{{tag}}}",
            "OUTPUTS", 2, "s", "p", "|>",
            "AI.SCRIPTEXECUTE", f"s{{{tag}}}", "add", "INPUTS", 2, "s", "p", "OUTPUTS", 1, f"z{{{tag}}}",
            "|>", "AI.TENSORGET", f"z{{{tag}}}", "VALUES") == [b"OK", b"OK", [b"7", b"17"]]
        np.testing.assert_array_equal(tensor(rc, f"z{{{tag}}}"), [7, 17])
        assert rc.execute_command(
            "AI.DAGEXECUTE_RO", "LOAD", 1, f"z{{{tag}}}", "|>",
            "AI.MODELEXECUTE", f"m{{{tag}}}", "INPUTS", 2, f"z{{{tag}}}", f"z{{{tag}}}",
            "OUTPUTS", 2, "s", "p", "|>", "AI.TENSORGET", "p", "VALUES") == [b"OK", [b"49", b"289"]]
        assert run_info(rc, f"s{{{tag}}}")["calls"] == 2
        assert rc.execute_command("AI.SCRIPTGET", f"s{{{tag}}}", "SOURCE") == SCRIPT.encode()

        # Everything lives on the primary that owns the slot: the 5 keys of the
        # model story, the script, the counter, x, y and z; the DAG's own
        # tensors (s, p) nowhere.
        owner = cluster.primary_for(tag)
        assert owner.client().execute_command("CLUSTER", "COUNTKEYSINSLOT", slot(tag)) == 10
        assert rc.exists("s") == 0 and rc.exists("p") == 0
        for other in cluster.primaries():
            if other.port != owner.port:
                for command in [("AI.SCRIPTEXECUTE", f"s{{{tag}}}", "add", "INPUTS", 2, f"a{{{tag}}}",
                                 f"b{{{tag}}}", "OUTPUTS", 1, f"x{{{tag}}}"),
                                ("AI.DAGEXECUTE_RO", "LOAD", 1, f"z{{{tag}}}", "|>",
                                 "AI.TENSORGET", f"z{{{tag}}}", "VALUES")]:
                    with pytest.raises(MovedError):
                        other.client().execute_command(*command)

    assert rc.execute_command("AI.SCRIPTDEL", f"s{{{tag}}}") == b"OK"
    assert rc.exists(f"s{{{tag}}}") == 0


def test_dag_routing_picks_the_shard(cluster, rc):
    tags = tags_on_every_primary(cluster, "rt")
    for i, tag in enumerate(tags):
        owner = cluster.primary_for(tag)
        before = {n.port: dag_calls(n) for n in cluster.primaries()}
        # ROUTING is the DAG's only key: it alone decides where the DAG runs.
        assert rc.execute_command("AI.DAGEXECUTE", "ROUTING", f"{{{tag}}}", "|>",
                                  "AI.TENSORSET", "v", "FLOAT", 1, "VALUES", i, "|>",
                                  "AI.TENSORGET", "v", "VALUES") == [b"OK", [str(i).encode()]]
        assert rc.execute_command("AI.DAGEXECUTE_RO", "ROUTING", f"{{{tag}}}", "|>",
                                  "AI.TENSORSET", "v", "FLOAT", 1, "VALUES", i, "|>",
                                  "AI.TENSORGET", "v", "VALUES") == [b"OK", [str(i).encode()]]
        after = {n.port: dag_calls(n) for n in cluster.primaries()}
        assert {port: after[port] - before[port] for port in after} == {
            n.port: 2 if n.port == owner.port else 0 for n in cluster.primaries()}
        # Sent to another node, it is redirected to the slot of the ROUTING value.
        elsewhere = next(n for n in cluster.primaries() if n.port != owner.port)
        with pytest.raises(MovedError) as moved:
            elsewhere.client().execute_command("AI.DAGEXECUTE", "ROUTING", f"{{{tag}}}", "|>",
                                               "AI.TENSORSET", "v", "FLOAT", 1, "VALUES", i)
        assert moved.value.slot_id == slot(tag)
        assert cluster.cli("AI.DAGEXECUTE", "ROUTING", f"{{{tag}}}", "|>", "AI.TENSORSET", "v", "FLOAT",
                           1, "VALUES", 7, "|>", "AI.TENSORGET", "v", "VALUES",
                           port=elsewhere.port) == "OK\n7\n"

        # On that shard the DAG can run a model stored under the same tag; it
        # writes nothing (no PERSIST).
        store_add_story(rc, tag)
        keys_before = owner.client().execute_command("CLUSTER", "COUNTKEYSINSLOT", slot(tag))
        assert rc.execute_command("AI.DAGEXECUTE", "ROUTING", f"{{{tag}}}", "|>",
                                  "AI.TENSORSET", "x", "FLOAT", 2, "VALUES", 2, 3, "|>",
                                  "AI.MODELEXECUTE", f"m{{{tag}}}", "INPUTS", 2, "x", "x",
                                  "OUTPUTS", 2, "s", "p", "|>",
                                  "AI.TENSORGET", "p", "VALUES") == [b"OK", b"OK", [b"4", b"9"]]
        assert run_info(rc, f"m{{{tag}}}")["calls"] == 2
        assert owner.client().execute_command("CLUSTER", "COUNTKEYSINSLOT", slot(tag)) == keys_before
        # The helper names the ROUTING value of a data key's shard.
        assert cluster.primary_for(routing_tag_for(rc, f"doc:{tag}")).port == \
            cluster.primary_for(f"doc:{tag}").port


def test_redis_cli_c_runs_scripts_and_dags(cluster):
    tag = "clis"
    owner = cluster.primary_for(tag)
    elsewhere = next(n for n in cluster.primaries() if n.port != owner.port)

    def cli(*args: object, stdin: bytes | None = None) -> str:
        return cluster.cli(*args, port=elsewhere.port, stdin=stdin)

    # -x: the source, read from stdin, is the last argument.
    assert cli("AI.SCRIPTSTORE", "s{clis}", "CPU", "ENTRY_POINTS", len(ENTRY_POINTS), *ENTRY_POINTS,
               "SOURCE", stdin=SCRIPT.encode()) == "OK\n"
    assert cli("AI.TENSORSET", "a{clis}", "FLOAT", 2, "VALUES", 1.5, 2) == "OK\n"
    assert cli("AI.SCRIPTEXECUTE", "s{clis}", "add", "INPUTS", 2, "a{clis}", "a{clis}",
               "OUTPUTS", 1, "c{clis}") == "OK\n"
    assert cli("AI.TENSORGET", "c{clis}", "VALUES") == "3\n4\n"
    assert cli("AI.SCRIPTEXECUTE", "s{clis}", "mark", "KEYS", 1, "note{clis}", "ARGS", 1, "hi") == "OK\n"
    assert cli("GET", "note{clis}") == "hi\n"
    assert cli("AI.DAGEXECUTE", "LOAD", 1, "c{clis}", "PERSIST", 1, "d{clis}", "|>",
               "AI.SCRIPTEXECUTE", "s{clis}", "add", "INPUTS", 2, "c{clis}", "c{clis}",
               "OUTPUTS", 1, "d{clis}", "|>", "AI.TENSORGET", "d{clis}", "VALUES") == "OK\n6\n8\n"
    assert cli("AI.SCRIPTGET", "s{clis}", "META").split("\n")[:6] == [
        "device", "CPU", "tag", "", "Entry Points", "run"]
    assert owner.client().exists("s{clis}", "a{clis}", "c{clis}", "d{clis}", "note{clis}") == 5
    assert CROSSSLOT in cli("AI.SCRIPTEXECUTE", "s{clis}", "add", "INPUTS", 2, "a{clis}", "a{other}",
                            "OUTPUTS", 1, "c{clis}")
    assert CROSSSLOT in cli("AI.DAGEXECUTE", "LOAD", 1, "a{clis}", "PERSIST", 1, "d{other}", "|>",
                            "AI.TENSORGET", "a{clis}", "VALUES")


def test_scripts_and_dags_with_keys_in_different_slots_get_crossslot(cluster, rc):
    tag = "xd"
    store_add_story(rc, tag)
    store_script(rc, "s{xd}")
    owner = cluster.primary_for(tag).client(socket_timeout=60)
    before = {k: owner.dump(k) for k in owner.keys("*{xd}")}
    script = ["AI.SCRIPTEXECUTE", "s{xd}", "run"]
    cross = [
        # the script, a KEYS key, an input, an output in another slot
        ("AI.SCRIPTEXECUTE", "s{elsewhere}", "run", "KEYS", 2, "n{xd}", "m{xd}",
         "INPUTS", 2, "a{xd}", "b{xd}", "OUTPUTS", 2, "x{xd}", "y{xd}"),
        (*script, "KEYS", 2, "n{elsewhere}", "m{xd}", "INPUTS", 2, "a{xd}", "b{xd}", "OUTPUTS", 2, "x{xd}", "y{xd}"),
        (*script, "KEYS", 2, "n{xd}", "m{xd}", "INPUTS", 2, "a{xd}", "b{elsewhere}", "OUTPUTS", 2, "x{xd}", "y{xd}"),
        (*script, "KEYS", 2, "n{xd}", "m{xd}", "INPUTS", 2, "a{xd}", "b{xd}", "OUTPUTS", 2, "x{xd}",
         "y{elsewhere}"),
        ("AI.SCRIPTRUN", "s{xd}", "add", "INPUTS", "a{xd}", "b{xd}", "OUTPUTS", "y{elsewhere}"),
        # a LOAD key, a PERSIST key, the ROUTING value, an op's model or script
        ("AI.DAGEXECUTE", "LOAD", 2, "a{xd}", "b{elsewhere}", "|>", "AI.TENSORGET", "a{xd}", "VALUES"),
        ("AI.DAGEXECUTE", "LOAD", 1, "a{xd}", "PERSIST", 1, "z{elsewhere}", "|>",
         "AI.SCRIPTEXECUTE", "s{xd}", "add", "INPUTS", 2, "a{xd}", "a{xd}", "OUTPUTS", 1, "z{elsewhere}"),
        ("AI.DAGEXECUTE", "ROUTING", "{elsewhere}", "LOAD", 1, "a{xd}", "|>", "AI.TENSORGET", "a{xd}", "VALUES"),
        ("AI.DAGEXECUTE", "ROUTING", "{xd}", "|>", "AI.TENSORSET", "x", "FLOAT", 1, "VALUES", 1, "|>",
         "AI.MODELEXECUTE", "m{elsewhere}", "INPUTS", 2, "x", "x", "OUTPUTS", 2, "s", "p"),
        ("AI.DAGEXECUTE", "LOAD", 1, "a{xd}", "PERSIST", 1, "z{xd}", "|>",
         "AI.SCRIPTEXECUTE", "s{elsewhere}", "add", "INPUTS", 2, "a{xd}", "a{xd}", "OUTPUTS", 1, "z{xd}"),
        ("AI.DAGEXECUTE_RO", "LOAD", 1, "a{xd}", "|>",
         "AI.MODELEXECUTE", "m{elsewhere}", "INPUTS", 2, "a{xd}", "a{xd}", "OUTPUTS", 2, "s", "p"),
    ]
    for command in cross:
        with pytest.raises(ClusterCrossSlotError, match="hash to the same slot"):
            owner.execute_command(*command)
        with pytest.raises(RedisClusterException, match="all keys must map to the same key slot"):
            rc.execute_command(*command)
    assert {k: owner.dump(k) for k in owner.keys("*{xd}")} == before
    assert run_info(rc, "s{xd}")["calls"] == 0
    assert rc.exists("y{elsewhere}", "z{elsewhere}", "n{elsewhere}") == 0
    # ARGS are not keys: words in them that look like a scope do not make
    # Redis' own routing check refuse the command (it asks the module).
    assert owner.execute_command(*script[:2], "add", "INPUTS", 2, "a{xd}", "b{xd}",
                                 "ARGS", 3, "OUTPUTS", 1, "k{elsewhere}", "OUTPUTS", 1, "o{xd}") == b"OK"
    assert rc.exists("k{elsewhere}") == 0
    np.testing.assert_array_equal(tensor(rc, "o{xd}"), [4, 7])

    # What a script reaches through redis.execute is not declared, so neither
    # the client nor Redis routes by it: the module's call reaches keys of any
    # slot on the script's own node, and is refused for keys on other nodes.
    here = owner.connection_pool.connection_kwargs["port"]
    same_node = next(f"sn{i}" for i in range(1000) if cluster.primary_for(f"sn{i}").port == here
                     and slot(f"sn{i}") != slot(tag))
    other_node = next(f"on{i}" for i in range(1000) if cluster.primary_for(f"on{i}").port != here)
    assert rc.execute_command(*script[:2], "touch", "INPUTS", 1, "a{xd}",
                              "ARGS", 2, f"k{{{same_node}}}", "written", "OUTPUTS", 1, "o{xd}") == b"OK"
    assert rc.get(f"k{{{same_node}}}") == b"written"
    with pytest.raises(redis.ResponseError, match=NON_LOCAL) as refused:
        rc.execute_command(*script[:2], "touch", "INPUTS", 1, "a{xd}",
                           "ARGS", 2, f"k{{{other_node}}}", "written", "OUTPUTS", 1, "o{xd}")
    assert str(refused.value).startswith("Redis command returned an error: ")
    assert rc.exists(f"k{{{other_node}}}") == 0
    # The same for the KEYS of a script op inside a DAG (only the script key
    # of an op is a DAG key).
    assert rc.execute_command("AI.DAGEXECUTE", "ROUTING", "{xd}", "|>", "AI.SCRIPTEXECUTE", "s{xd}",
                              "mark", "KEYS", 1, f"dag{{{same_node}}}", "ARGS", 1, "from a dag") == [b"OK"]
    assert rc.get(f"dag{{{same_node}}}") == b"from a dag"
    reply = rc.execute_command("AI.DAGEXECUTE", "ROUTING", "{xd}", "|>", "AI.SCRIPTEXECUTE", "s{xd}",
                               "mark", "KEYS", 1, f"dag{{{other_node}}}", "ARGS", 1, "from a dag")
    assert len(reply) == 1 and NON_LOCAL in str(reply[0])
    assert rc.exists(f"dag{{{other_node}}}") == 0


# --------------------------------------------------------------------------
# tenants


TENANT_RULES = ["on", ">pw", "resetkeys", "+@all", "-ai.config", "-ai._modelscan", "-ai._scriptscan"]


@pytest.fixture(scope="module")
def tenants(cluster: Cluster) -> Iterator[dict[str, RedisCluster]]:
    """alice owns a:*, bob owns b:*; loose owns a:* but may run the keyless
    AI commands. Users are per node: ACL SETUSER goes to every node."""
    rules = {"alice": [*TENANT_RULES, "~a:*"], "bob": [*TENANT_RULES, "~b:*"],
             "loose": ["on", ">pw", "resetkeys", "+@all", "~a:*"]}
    for node in cluster.alive():
        for user, rule in rules.items():
            node.client().execute_command("ACL", "SETUSER", user, "reset", *rule)
    clients = {user: cluster.client(username=user, password="pw") for user in rules}
    yield clients
    for client in clients.values():
        client.close()


def test_tenants_run_every_ai_command_on_their_own_keys_only(cluster, rc, tenants):
    alice = tenants["alice"]
    # bob's data, in the same slot as alice's so that mixing them is a
    # permission question, not a CROSSSLOT one.
    bob = tenants["bob"]
    assert bob.execute_command("AI.TENSORSET", "b:{t1}:x", "FLOAT", 2, "VALUES", 7, 7) == b"OK"
    assert bob.execute_command("AI.MODELSTORE", "b:{t1}:m", "ONNX", "CPU", "BLOB", onnx_add()) == b"OK"
    owner = cluster.primary_for("t1").client()
    bobs_keys = sorted(owner.keys("b:*"))
    before = {k: owner.dump(k) for k in bobs_keys}
    assert len(before) == 2

    own = [
        ("AI.TENSORSET", "a:{t1}:x", "FLOAT", 2, "VALUES", 1, 2),
        ("AI.TENSORSET", "a:{t1}:y", "FLOAT", 2, "VALUES", 3, 4),
        ("AI.TENSORGET", "a:{t1}:x", "META"),
        ("AI.MODELSTORE", "a:{t1}:m", "ONNX", "CPU", "BLOB", onnx_add()),
        ("AI.MODELSET", "a:{t1}:old", "ONNX", "CPU", "BLOB", onnx_add()),
        ("AI.MODELGET", "a:{t1}:m", "META"),
        ("AI.MODELEXECUTE", "a:{t1}:m", "INPUTS", 2, "a:{t1}:x", "a:{t1}:y", "OUTPUTS", 2,
         "a:{t1}:s", "a:{t1}:p"),
        ("AI.MODELRUN", "a:{t1}:m", "INPUTS", "a:{t1}:x", "a:{t1}:y", "OUTPUTS", "a:{t1}:s", "a:{t1}:p"),
        ("AI.INFO", "a:{t1}:m"),
        ("AI.INFO", "a:{t1}:m", "RESETSTAT"),
        ("AI.MODELDEL", "a:{t1}:old"),
    ]
    for command in own:
        assert alice.execute_command(*command), command
    np.testing.assert_array_equal(tensor(alice, "a:{t1}:s"), [4, 6])

    theirs = [
        ("AI.TENSORSET", "b:{t1}:x", "FLOAT", 1, "VALUES", 0),
        ("AI.TENSORSET", "b:{t1}:new", "FLOAT", 1, "VALUES", 0),
        ("AI.TENSORGET", "b:{t1}:x", "META"),
        ("AI.MODELSTORE", "b:{t1}:m", "ONNX", "CPU", "BLOB", onnx_add()),
        ("AI.MODELSET", "b:{t1}:m", "ONNX", "CPU", "BLOB", onnx_add()),
        ("AI.MODELGET", "b:{t1}:m", "BLOB"),
        ("AI.MODELDEL", "b:{t1}:m"),
        ("AI.INFO", "b:{t1}:m"),
        ("AI.INFO", "b:{t1}:m", "RESETSTAT"),
        # mixed: bob's model, bob's input, bob's key as an output
        ("AI.MODELEXECUTE", "b:{t1}:m", "INPUTS", 2, "a:{t1}:x", "a:{t1}:y", "OUTPUTS", 2,
         "a:{t1}:s", "a:{t1}:p"),
        ("AI.MODELEXECUTE", "a:{t1}:m", "INPUTS", 2, "b:{t1}:x", "a:{t1}:y", "OUTPUTS", 2,
         "a:{t1}:s", "a:{t1}:p"),
        ("AI.MODELEXECUTE", "a:{t1}:m", "INPUTS", 2, "a:{t1}:x", "a:{t1}:y", "OUTPUTS", 2,
         "a:{t1}:s", "b:{t1}:x"),
        ("AI.MODELRUN", "a:{t1}:m", "INPUTS", "a:{t1}:x", "a:{t1}:y", "OUTPUTS", "a:{t1}:s", "b:{t1}:x"),
        ("AI.MODELRUN", "b:{t1}:m", "INPUTS", "a:{t1}:x", "a:{t1}:y", "OUTPUTS", "a:{t1}:s", "a:{t1}:p"),
    ]
    for command in theirs:
        with pytest.raises(NoPermissionError, match=NOPERM_KEY):
            alice.execute_command(*command)
    assert sorted(owner.keys("b:*")) == bobs_keys
    assert {k: owner.dump(k) for k in bobs_keys} == before
    assert run_info(owner, "b:{t1}:m")["calls"] == 0

    # The keyless commands: key patterns cannot guard them, so tenants are
    # denied them by name. AI._MODELSCAN would list every tenant's model keys
    # and AI.CONFIG changes the whole node.
    for command in [("AI._MODELSCAN",), ("AI.CONFIG", "MODEL_CHUNK_SIZE", 1024)]:
        with pytest.raises(NoPermissionError, match="has no permissions to run the"):
            # (A node list, not the PRIMARIES flag: redis-py 8.1 tries to find
            # a key for a command it does not know before it looks at the flag.)
            alice.execute_command(*command, target_nodes=alice.get_primaries())
    loose = tenants["loose"]
    scanned = loose.execute_command("AI._MODELSCAN", target_nodes=loose.get_node_from_key("t1"))
    assert [b"b:{t1}:m", b""] in scanned and [b"a:{t1}:m", b""] in scanned


def test_tenants_run_scripts_and_dags_on_their_own_keys_only(cluster, tenants):
    alice, bob = tenants["alice"], tenants["bob"]
    # bob's script, model and tensor, in alice's slot.
    store_script(bob, "b:{t2}:s")
    assert bob.execute_command("AI.MODELSTORE", "b:{t2}:m", "ONNX", "CPU", "BLOB", onnx_add()) == b"OK"
    assert bob.execute_command("AI.TENSORSET", "b:{t2}:x", "FLOAT", 2, "VALUES", 7, 7) == b"OK"
    owner = cluster.primary_for("t2").client()
    bobs_keys = sorted(owner.keys("b:*"))
    before = {k: owner.dump(k) for k in bobs_keys}
    assert len(before) == 3

    store_script(alice, "a:{t2}:s")
    x, y = "a:{t2}:x", "a:{t2}:y"
    dag_model = ("AI.MODELEXECUTE", "a:{t2}:m", "INPUTS", 2, "v", "v", "OUTPUTS", 2, "s", "p")
    own = [
        ("AI.TENSORSET", x, "FLOAT", 2, "VALUES", 1, 2),
        ("AI.TENSORSET", y, "FLOAT", 2, "VALUES", 3, 4),
        ("AI.MODELSTORE", "a:{t2}:m", "ONNX", "CPU", "BLOB", onnx_add()),
        ("AI.SCRIPTGET", "a:{t2}:s", "META"),
        ("AI.SCRIPTEXECUTE", "a:{t2}:s", "run", "KEYS", 2, "a:{t2}:n", "a:{t2}:m", "INPUTS", 2, x, y,
         "OUTPUTS", 2, "a:{t2}:sum", "a:{t2}:prod"),
        ("AI.SCRIPTEXECUTE", "a:{t2}:s", "mark", "KEYS", 1, "a:{t2}:note", "ARGS", 1, "mine"),
        ("AI.SCRIPTRUN", "a:{t2}:s", "add", "INPUTS", x, y, "OUTPUTS", "a:{t2}:z"),
        ("AI.DAGEXECUTE", "LOAD", 2, x, y, "PERSIST", 1, "a:{t2}:d", "|>",
         "AI.MODELEXECUTE", "a:{t2}:m", "INPUTS", 2, x, y, "OUTPUTS", 2, "s", "p", "|>",
         "AI.SCRIPTEXECUTE", "a:{t2}:s", "add", "INPUTS", 2, "s", "p", "OUTPUTS", 1, "a:{t2}:d"),
        ("AI.DAGEXECUTE", "ROUTING", "a:{t2}", "|>", "AI.TENSORSET", "v", "FLOAT", 1, "VALUES", 2,
         "|>", *dag_model, "|>", "AI.TENSORGET", "p", "VALUES"),
        ("AI.DAGEXECUTE_RO", "LOAD", 1, "a:{t2}:d", "|>", "AI.TENSORGET", "a:{t2}:d", "VALUES"),
        ("AI.DAGRUN", "LOAD", 1, x, "PERSIST", 1, "a:{t2}:r", "|>",
         "AI.SCRIPTRUN", "a:{t2}:s", "add", "INPUTS", x, x, "OUTPUTS", "a:{t2}:r"),
        ("AI.INFO", "a:{t2}:s"),
        ("AI.SCRIPTSET", "a:{t2}:old", "CPU", "SOURCE", "def add(a, b):\n    return a + b\n"),
        ("AI.SCRIPTDEL", "a:{t2}:old"),
    ]
    for command in own:
        assert alice.execute_command(*command), command
    np.testing.assert_array_equal(tensor(alice, "a:{t2}:d"), [7, 14])
    assert alice.get("a:{t2}:n") == b"1" and alice.get("a:{t2}:note") == b"mine"

    bobs_tensor_as_input = ("AI.SCRIPTEXECUTE", "a:{t2}:s", "add", "INPUTS", 2, "b:{t2}:x", y,
                            "OUTPUTS", 1, "a:{t2}:o")
    theirs = [
        ("AI.SCRIPTSTORE", "b:{t2}:s", "CPU", "ENTRY_POINTS", 1, "add", "SOURCE", SCRIPT),
        ("AI.SCRIPTSET", "b:{t2}:new", "CPU", "SOURCE", "def add(a, b):\n    return a + b\n"),
        ("AI.SCRIPTGET", "b:{t2}:s", "SOURCE"),
        ("AI.SCRIPTDEL", "b:{t2}:s"),
        ("AI.INFO", "b:{t2}:s", "RESETSTAT"),
        # bob's script; bob's key in KEYS, as an input, as an output
        ("AI.SCRIPTEXECUTE", "b:{t2}:s", "add", "INPUTS", 2, x, y, "OUTPUTS", 1, "a:{t2}:o"),
        ("AI.SCRIPTEXECUTE", "a:{t2}:s", "mark", "KEYS", 1, "b:{t2}:x", "ARGS", 1, "theirs"),
        bobs_tensor_as_input,
        ("AI.SCRIPTEXECUTE", "a:{t2}:s", "add", "INPUTS", 2, x, y, "OUTPUTS", 1, "b:{t2}:x"),
        ("AI.SCRIPTRUN", "b:{t2}:s", "add", "INPUTS", x, y, "OUTPUTS", "a:{t2}:o"),
        ("AI.SCRIPTRUN", "a:{t2}:s", "add", "INPUTS", x, y, "OUTPUTS", "b:{t2}:x"),
        # a DAG that loads, persists or routes to bob's key, or runs bob's model or script
        ("AI.DAGEXECUTE", "LOAD", 1, "b:{t2}:x", "|>", "AI.TENSORGET", "b:{t2}:x", "VALUES"),
        ("AI.DAGEXECUTE", "LOAD", 1, x, "PERSIST", 1, "b:{t2}:x", "|>",
         "AI.SCRIPTEXECUTE", "a:{t2}:s", "add", "INPUTS", 2, x, x, "OUTPUTS", 1, "b:{t2}:x"),
        ("AI.DAGEXECUTE", "ROUTING", "b:{t2}", "|>", "AI.TENSORSET", "v", "FLOAT", 1, "VALUES", 1),
        ("AI.DAGEXECUTE", "ROUTING", "a:{t2}", "|>", "AI.TENSORSET", "v", "FLOAT", 1, "VALUES", 1,
         "|>", "AI.MODELEXECUTE", "b:{t2}:m", "INPUTS", 2, "v", "v", "OUTPUTS", 2, "s", "p"),
        ("AI.DAGEXECUTE", "ROUTING", "a:{t2}", "|>", "AI.TENSORSET", "v", "FLOAT", 1, "VALUES", 1,
         "|>", "AI.SCRIPTEXECUTE", "b:{t2}:s", "add", "INPUTS", 2, "v", "v", "OUTPUTS", 1, "w"),
        ("AI.DAGEXECUTE_RO", "LOAD", 1, "b:{t2}:x", "|>", "AI.TENSORGET", "b:{t2}:x", "VALUES"),
        ("AI.DAGRUN_RO", "LOAD", 1, x, "|>", "AI.MODELRUN", "b:{t2}:m", "INPUTS", x, x,
         "OUTPUTS", "s", "p"),
    ]
    for command in theirs:
        with pytest.raises(NoPermissionError, match=NOPERM_KEY):
            alice.execute_command(*command)
    # The key is checked when the command arrives, before the script runs.
    assert run_info(owner, "a:{t2}:s")["errors"] == 0
    assert alice.exists("a:{t2}:o") == 0
    assert sorted(owner.keys("b:*")) == bobs_keys
    assert {k: owner.dump(k) for k in bobs_keys} == before
    assert run_info(owner, "b:{t2}:s")["calls"] == 0 and run_info(owner, "b:{t2}:m")["calls"] == 0
    # Each refusal is in the ACL log (entries for one user and key are merged).
    denied = {entry[b"object"]: entry[b"count"] for entry in owner.execute_command("ACL", "LOG", 100)
              if entry[b"username"] == b"alice" and entry[b"reason"] == b"key"}
    assert denied[b"b:{t2}:x"] == 7 and {b"b:{t2}:s", b"b:{t2}:m", b"b:{t2}"} <= set(denied)
    with pytest.raises(NoPermissionError, match="has no permissions to run the"):
        alice.execute_command("AI._SCRIPTSCAN", target_nodes=alice.get_primaries())

    # A script's redis.execute calls run as the user that ran it: alice's
    # script cannot write bob's key it is given as an argument, nor one given
    # in the KEYS of a DAG's script op (which are not keys of the DAG command).
    with pytest.raises(redis.ResponseError, match="Redis command returned an error: NOPERM"):
        alice.execute_command("AI.SCRIPTEXECUTE", "a:{t2}:s", "touch", "INPUTS", 1, x,
                              "ARGS", 2, "b:{t2}:note", "by alice", "OUTPUTS", 1, "a:{t2}:o")
    reply = alice.execute_command("AI.DAGEXECUTE", "ROUTING", "a:{t2}", "|>",
                                  "AI.SCRIPTEXECUTE", "a:{t2}:s", "mark", "KEYS", 1, "b:{t2}:dag",
                                  "ARGS", 1, "by alice")
    assert len(reply) == 1 and "Redis command returned an error: NOPERM" in str(reply[0])
    assert bob.exists("b:{t2}:note", "b:{t2}:dag") == 0
    assert bob.execute_command("AI.SCRIPTEXECUTE", "b:{t2}:s", "touch", "INPUTS", 1, "b:{t2}:x",
                               "ARGS", 2, "b:{t2}:note", "by bob", "OUTPUTS", 1, "b:{t2}:o") == b"OK"
    assert bob.get("b:{t2}:note") == b"by bob"
    # A tenant denied AI.SCRIPTSTORE and AI.SCRIPTSET cannot bring such a script.
    for node in cluster.alive():
        node.client().execute_command("ACL", "SETUSER", "strict", "reset", *TENANT_RULES, "~a:*",
                                      "-ai.scriptstore", "-ai.scriptset")
    strict = cluster.client(username="strict", password="pw")
    with pytest.raises(NoPermissionError, match="has no permissions to run the 'ai.scriptstore'"):
        strict.execute_command("AI.SCRIPTSTORE", "a:{t2}:own", "CPU", "ENTRY_POINTS", 1, "touch",
                               "SOURCE", SCRIPT)
    assert strict.execute_command(*own[5]) == b"OK"  # stored scripts still run
    strict.close()


def test_script_args_are_never_taken_for_keys(cluster, tenants):
    alice, bob = tenants["alice"], tenants["bob"]
    assert bob.execute_command("AI.TENSORSET", "b:{t3}:victim", "FLOAT", 1, "VALUES", 42) == b"OK"
    store_script(alice, "a:{t3}:s")
    assert alice.execute_command("AI.TENSORSET", "a:{t3}:x", "FLOAT", 1, "VALUES", 1) == b"OK"
    # The script's ARGS happen to read "OUTPUTS 1 a:{t3}:decoy"; its real output is bob's key.
    command = ("AI.SCRIPTEXECUTE", "a:{t3}:s", "add", "INPUTS", 2, "a:{t3}:x", "a:{t3}:x",
               "ARGS", 3, "OUTPUTS", 1, "a:{t3}:decoy", "OUTPUTS", 1, "b:{t3}:victim")
    try:
        with pytest.raises(NoPermissionError):
            alice.execute_command(*command)
    finally:
        assert bob.execute_command("AI.TENSORGET", "b:{t3}:victim", "VALUES") == [b"42"]
    node = cluster.primary_for("t3").client()
    keys = node.command_getkeys(*command[:-6], "a", "b", "c", "OUTPUTS", 1, "a:{t3}:o")
    assert [k.decode() if isinstance(k, bytes) else k for k in keys] == [
        "a:{t3}:s", "a:{t3}:x", "a:{t3}:x", "a:{t3}:o"]


def test_read_only_users_run_read_only_dags(cluster, rc):
    for node in cluster.alive():
        node.client().execute_command("ACL", "SETUSER", "reader", "reset", "on", ">pw", "+@all",
                                      "%R~a:*")
    rc.execute_command("AI.TENSORSET", "a:{t4}:x", "FLOAT", 2, "VALUES", 1, 2)
    rc.execute_command("AI.MODELSTORE", "a:{t4}:m", "ONNX", "CPU", "BLOB", onnx_add())
    reader = cluster.client(username="reader", password="pw")
    try:
        assert reader.execute_command("AI.TENSORGET", "a:{t4}:x", "VALUES") == [b"1", b"2"]
        assert reader.execute_command("AI.MODELGET", "a:{t4}:m", "META")[:2] == [b"backend", b"ONNX"]
        with pytest.raises(NoPermissionError):  # writes its outputs
            reader.execute_command("AI.MODELEXECUTE", "a:{t4}:m", "INPUTS", 2, "a:{t4}:x", "a:{t4}:x",
                                   "OUTPUTS", 2, "a:{t4}:s", "a:{t4}:p")
        assert reader.execute_command(
            "AI.DAGEXECUTE_RO", "LOAD", 1, "a:{t4}:x", "|>",
            "AI.MODELEXECUTE", "a:{t4}:m", "INPUTS", 2, "a:{t4}:x", "a:{t4}:x", "OUTPUTS", 2, "s", "p",
            "|>", "AI.TENSORGET", "p", "VALUES") == [b"OK", [b"1", b"4"]]
    finally:
        reader.close()


# --------------------------------------------------------------------------
# the client-side helper


def test_helper_stores_a_model_on_every_shard_next_to_the_data(cluster, rc):
    keys = store_model_on_every_shard(rc, "adder", "ONNX", "CPU", [onnx_add()[:50], onnx_add()[50:]],
                                      tag="v1")
    assert sorted(keys) == sorted(model_keys(rc, "adder"))
    assert {cluster.primary_for(k).port for k in keys} == {n.port for n in cluster.primaries()}
    for key in keys:
        assert rc.execute_command("AI.MODELGET", key, "BLOB") == onnx_add()

    for i in range(30):
        doc = f"doc:{i}"
        model = model_key_for(rc, "adder", doc)
        assert model in keys
        assert cluster.primary_for(model).port == cluster.primary_for(doc).port
        x, y = colocated_key(rc, doc, f"x:{doc}"), colocated_key(rc, doc, f"y:{doc}")
        out = [colocated_key(rc, doc, f"{name}:{doc}") for name in ("sum", "prod")]
        assert {slot(k) for k in (model, x, y, *out)} == {slot(shard_tag_for(rc, doc))}
        rc.set(doc, f"raw data {i}")  # the data itself, on its own shard
        rc.execute_command("AI.TENSORSET", x, "FLOAT", 2, "VALUES", i, 1)
        rc.execute_command("AI.TENSORSET", y, "FLOAT", 2, "VALUES", 2, i)
        assert rc.execute_command("AI.MODELEXECUTE", model, "INPUTS", 2, x, y, "OUTPUTS", 2, *out) == b"OK"
        np.testing.assert_array_equal(tensor(rc, out[0]), [i + 2, i + 1])
    calls = sum(run_info(rc, k)["calls"] for k in keys)
    assert calls == 30 and all(run_info(rc, k)["calls"] > 0 for k in keys)

    # Scripts the same way; a DAG that loads nothing finds the shard by ROUTING.
    scripts = store_script_on_every_shard(rc, "prep", "CPU", SCRIPT, ENTRY_POINTS, tag="v2")
    assert sorted(scripts) == sorted(model_keys(rc, "prep"))
    assert {cluster.primary_for(k).port for k in scripts} == {n.port for n in cluster.primaries()}
    for i in range(12):
        doc = f"doc:{i}"
        script, model = model_key_for(rc, "prep", doc), model_key_for(rc, "adder", doc)
        assert rc.execute_command("AI.DAGEXECUTE", "ROUTING", routing_tag_for(rc, doc), "|>",
                                  "AI.TENSORSET", "x", "FLOAT", 2, "VALUES", i, 1, "|>",
                                  "AI.SCRIPTEXECUTE", script, "add", "INPUTS", 2, "x", "x", "OUTPUTS", 1, "y",
                                  "|>", "AI.MODELEXECUTE", model, "INPUTS", 2, "y", "x", "OUTPUTS", 2, "s", "p",
                                  "|>", "AI.TENSORGET", "s", "VALUES") == [
            b"OK", b"OK", b"OK", [str(3 * i).encode(), b"3"]]
    assert sum(run_info(rc, k)["calls"] for k in scripts) == 12
    assert rc.execute_command("AI.SCRIPTGET", scripts[0], "META")[:4] == [b"device", b"CPU", b"tag", b"v2"]
    assert delete_script_on_every_shard(rc, "prep") == 3
    assert sum(rc.exists(k) for k in scripts) == 0

    with pytest.raises(ValueError):
        model_key_for(rc, "bad{name}", "doc:1")
    assert delete_model_on_every_shard(rc, "adder") == 3
    assert sum(rc.exists(k) for k in keys) == 0


# --------------------------------------------------------------------------
# one model per tenant, on the tenant's shard (docs/model_sessions.md)


def test_helper_stores_each_tenants_model_on_its_shard_under_that_shards_budget(cluster, rc):
    """Nine tenants, one model each, keyed `churn{tenant}`: each model exists
    once, on the primary that owns the tenant's slot, next to the tenant's
    tensors; with room for one loaded session per node, every tenant's run
    answers and no shard holds more than its budget once the runs end."""
    tenants = [f"tenant{i}" for i in range(9)]
    for node in cluster.primaries():
        node.client().execute_command("AI.CONFIG", "MODEL_SESSIONS_MAX", 1)
    try:
        keys = {t: store_tenant_model(rc, t, "churn", "ONNX", "CPU", onnx_add(), tag=t) for t in tenants}
        assert keys["tenant0"] == tenant_key("tenant0", "churn") == "churn{tenant0}"
        scans = {n.port: {k.decode() for k, _ in n.client().execute_command("AI._MODELSCAN")}
                 for n in cluster.primaries()}
        for tenant, key in keys.items():
            holders = [port for port, found in scans.items() if key in found]
            assert holders == [cluster.primary_for(key).port], tenant
        for tenant in tenants:
            a, s, p = (tenant_key(tenant, n) for n in ("a", "s", "p"))
            rc.execute_command("AI.TENSORSET", a, "FLOAT", 2, "VALUES", 2, 3)
            assert rc.execute_command("AI.MODELEXECUTE", keys[tenant], "INPUTS", 2, a, a,
                                      "OUTPUTS", 2, s, p) == b"OK"
            assert rc.execute_command("AI.TENSORGET", s, "VALUES") == [b"4", b"6"]
        for node in cluster.primaries():
            wait_for(lambda n=node: n.client().info("ai_sessions")["ai_loaded"] <= 1, 10, "within budget")
        assert sum(n.client().info("ai_sessions")["ai_evictions"] for n in cluster.primaries()) >= 6
        assert all(delete_tenant_model(rc, t, "churn") for t in tenants)
        assert not delete_tenant_model(rc, "tenant0", "churn")
        with pytest.raises(ValueError):
            tenant_key("a{b", "churn")
    finally:
        for node in cluster.primaries():
            node.client().execute_command("AI.CONFIG", "MODEL_SESSIONS_MAX", 0)


# --------------------------------------------------------------------------
# failover (last: it changes the topology)


def test_killed_primary_fails_over_and_the_replica_serves_the_same_data(cluster, rc, tenants):
    tag = "fo"
    store_add_story(rc, tag)
    big = onnx_mlp()
    assert rc.execute_command("AI.MODELSTORE", "mlp{fo}", "ONNX", "CPU", "TAG", "fraud", "BLOB", big) == b"OK"
    transaction, reference = mb.mlp_inputs(batch=4)
    rc.execute_command("AI.TENSORSET", "tx{fo}", "FLOAT", 4, 30, "BLOB", transaction.tobytes())
    rc.execute_command("AI.TENSORSET", "ref{fo}", "FLOAT", 4, 256, "BLOB", reference.tobytes())
    store_model_on_every_shard(rc, "shared", "ONNX", "CPU", onnx_add())
    shared_key = model_key_for(rc, "shared", "doc:failover")
    # A script, run once (its INCR and outputs replicate), and a DAG's output.
    store_script(rc, "s{fo}")
    script_run = ("AI.SCRIPTEXECUTE", "s{fo}", "run", "KEYS", 2, "n{fo}", "m{fo}",
                  "INPUTS", 2, "a{fo}", "b{fo}", "OUTPUTS", 2, "x{fo}", "y{fo}")
    assert rc.execute_command(*script_run) == b"OK"
    assert rc.execute_command("AI.DAGEXECUTE", "LOAD", 2, "x{fo}", "y{fo}", "PERSIST", 1, "d{fo}", "|>",
                              "AI.SCRIPTEXECUTE", "s{fo}", "add", "INPUTS", 2, "x{fo}", "y{fo}",
                              "OUTPUTS", 1, "d{fo}") == [b"OK"]
    store_script_on_every_shard(rc, "shared_script", "CPU", SCRIPT, ENTRY_POINTS)
    shared_script = model_key_for(rc, "shared_script", "doc:failover")
    primary = cluster.primary_for(tag)
    assert primary.client().execute_command("WAIT", 1, 5000) == 1
    replica = cluster.replicas_of(primary)[0]
    before = {k: primary.client().dump(k) for k in primary.client().keys("*{fo}")}
    assert len(before) == 8 + 5

    started = time.monotonic()
    cluster.kill(primary)
    promoted = wait_for(lambda: replica.client().info("replication")["role"] == "master", 30,
                        "the replica's promotion", interval=0.01)

    def serves() -> bool:
        try:
            return rc.execute_command("AI.TENSORGET", "sum{fo}", "VALUES") == [b"4", b"7"]
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError, RedisClusterException):
            return False

    wait_for(serves, 30, "the cluster client to reach the new primary", interval=0.01)
    serving = time.monotonic() - started
    print(f"\nMEASURED failover (cluster-node-timeout {cluster.node_timeout_ms} ms): replica "
          f"promoted {promoted:.2f} s after SIGKILL, RedisCluster served again after {serving:.2f} s")
    assert promoted < 20

    new_primary = replica.client()
    assert {k: new_primary.dump(k) for k in new_primary.keys("*{fo}")} == before
    assert rc.execute_command("AI.MODELGET", "mlp{fo}", "BLOB") == big
    assert rc.execute_command("AI.MODELGET", "mlp{fo}", "META")[4:6] == [b"tag", b"fraud"]
    # The promoted replica never ran a model; now it does, and gets it right.
    assert run_info(rc, "m{fo}")["calls"] == 0
    assert rc.execute_command("AI.MODELEXECUTE", "mlp{fo}", "INPUTS", 2, "tx{fo}", "ref{fo}",
                              "OUTPUTS", 1, "out{fo}") == b"OK"
    expected = mb.mlp_reference(mb.mlp_weights(), transaction, reference)
    np.testing.assert_allclose(tensor(rc, "out{fo}"), expected, rtol=1e-5, atol=1e-6)
    assert rc.execute_command("AI.MODELEXECUTE", "m{fo}", "INPUTS", 2, "b{fo}", "b{fo}",
                              "OUTPUTS", 2, "sum{fo}", "prod{fo}") == b"OK"
    np.testing.assert_array_equal(tensor(rc, "prod{fo}"), [9, 25])
    assert run_info(rc, "m{fo}")["calls"] == 1
    # The scripts came along and run on the new primary, which never ran them.
    assert rc.execute_command("AI.SCRIPTGET", "s{fo}", "SOURCE") == SCRIPT.encode()
    assert run_info(rc, "s{fo}")["calls"] == 0
    assert rc.execute_command(*script_run) == b"OK"
    assert rc.get("n{fo}") == b"2"
    np.testing.assert_array_equal(tensor(rc, "d{fo}"), [7, 17])
    assert rc.execute_command("AI.DAGEXECUTE", "ROUTING", "{fo}", "|>", "AI.TENSORSET", "v", "FLOAT", 2,
                              "VALUES", 3, 1, "|>", "AI.SCRIPTEXECUTE", "s{fo}", "add", "INPUTS", 2, "v", "v",
                              "OUTPUTS", 1, "w", "|>", "AI.MODELEXECUTE", "m{fo}", "INPUTS", 2, "w", "w",
                              "OUTPUTS", 2, "s", "p", "|>", "AI.TENSORGET", "p", "VALUES") == [
        b"OK", b"OK", b"OK", [b"36", b"4"]]
    assert run_info(rc, "s{fo}")["calls"] == 2
    # The helper names the same keys: tags follow slots, not nodes.
    assert model_key_for(rc, "shared", "doc:failover") == shared_key
    assert rc.execute_command("AI.MODELGET", shared_key, "BLOB") == onnx_add()
    assert model_key_for(rc, "shared_script", "doc:failover") == shared_script
    assert rc.execute_command("AI.SCRIPTGET", shared_script, "SOURCE") == SCRIPT.encode()
    # ACL users are per node; the replica had them too.
    alice = cluster.client(username="alice", password="pw")
    with pytest.raises(NoPermissionError):
        alice.execute_command("AI.TENSORGET", "sum{fo}", "META")
    alice.close()

    # The killed node comes back as a replica of the new primary and gets
    # everything, including what was written after the failover, by a full sync.
    cluster.restart(primary)
    wait_for(lambda: primary.client().info("replication").get("master_port") == replica.port
             and primary.client().info("replication").get("master_link_status") == "up",
             60, "the old primary to rejoin as a replica")
    cluster.wait_healthy(60)
    assert new_primary.execute_command("WAIT", 1, 5000) == 1
    rejoined = primary.client()
    rejoined.execute_command("READONLY")
    np.testing.assert_allclose(tensor(rejoined, "out{fo}"), expected, rtol=1e-5, atol=1e-6)
    assert rejoined.execute_command("AI.MODELGET", "mlp{fo}", "BLOB") == big
    assert rejoined.execute_command("AI.SCRIPTGET", "s{fo}", "SOURCE") == SCRIPT.encode()
    assert rejoined.get("n{fo}") == b"2"
    assert server_says("Full resync from master", "Full resync from primary") in primary.log()
