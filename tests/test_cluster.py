"""AI.* on a real Redis Cluster: 3 primaries, 3 replicas, the module on every node.

User stories: an application uses redis-py's RedisCluster (and an operator
`redis-cli -c`) to store tensors and models and run them on hash-tagged keys;
the client routes each command by the keys the module declares, and Redis
refuses a command whose keys span slots with CROSSSLOT. Replicas serve the
read-only AI commands after READONLY and send writes to their primary; their
model statistics stay at zero because they never run a model. Tenants that
share the cluster are kept apart by ACL key patterns. A helper in
`redisai_py.cluster` puts one model on every shard and names the copy next to
a given data key. Finally a primary is killed with SIGKILL: its replica is
promoted and serves the same models and tensors (the time it takes is
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
from redisai_py.cluster import (colocated_key, delete_model_on_every_shard, model_key_for,
                                model_keys, shard_tag_for, store_model_on_every_shard)

CROSSSLOT = "CROSSSLOT Keys in request don't hash to the same slot"


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
    replica = cluster.replicas_of(primary)[0].client()

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
    # Writes still go to the primary, READONLY or not.
    for command in [("AI.MODELEXECUTE", "m{ro}", "INPUTS", 2, "a{ro}", "b{ro}", "OUTPUTS", 2, "s{ro}", "p{ro}"),
                    ("AI.TENSORSET", "a{ro}", "FLOAT", 1, "VALUES", 1),
                    ("AI.MODELDEL", "m{ro}")]:
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
    reads = {"ai.tensorget", "ai.modelget", "ai._modelscan", "ai.info"}
    grows = {"ai.tensorset", "ai.modelstore", "ai.modelset", "ai.modelexecute", "ai.modelrun"}
    writes = grows | {"ai.modeldel", "ai.config"}
    movable = {"ai.modelexecute", "ai.modelrun"}
    keyless = {"ai._modelscan", "ai.config"}
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


# --------------------------------------------------------------------------
# tenants


TENANT_RULES = ["on", ">pw", "resetkeys", "+@all", "-ai.config", "-ai._modelscan"]


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
        with pytest.raises(NoPermissionError, match="no permissions to access one of the keys"):
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

    with pytest.raises(ValueError):
        model_key_for(rc, "bad{name}", "doc:1")
    assert delete_model_on_every_shard(rc, "adder") == 3
    assert sum(rc.exists(k) for k in keys) == 0


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
    primary = cluster.primary_for(tag)
    assert primary.client().execute_command("WAIT", 1, 5000) == 1
    replica = cluster.replicas_of(primary)[0]
    before = {k: primary.client().dump(k) for k in primary.client().keys("*{fo}")}
    assert len(before) == 8

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
    # The helper names the same keys: tags follow slots, not nodes.
    assert model_key_for(rc, "shared", "doc:failover") == shared_key
    assert rc.execute_command("AI.MODELGET", shared_key, "BLOB") == onnx_add()
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
    assert "Full resync from master" in primary.log()
