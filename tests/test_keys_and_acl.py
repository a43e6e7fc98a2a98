"""The tensor commands declare their key, so Redis can route and guard it.

User stories: a cluster client asks COMMAND GETKEYS which key an
AI.TENSORSET / AI.TENSORGET touches; a tool reads the key specs from COMMAND
INFO; an operator gives a tenant the keys under `a:` only, through ACL key
patterns, and expects every attempt on another tenant's keys to be refused
with NOPERM before the command runs (the keyspace unchanged); a read-only
pattern (%R~) lets a reader fetch tensors but not store them, and a
write-only one (%W~) the opposite.

Two gates the module keeps itself, because Redis 7.0 cannot put module
commands in ACL categories: AI.CONFIG's setters are refused to a user who
may not run CONFIG SET (AI.CONFIG GET stays open to all who may run
AI.CONFIG), and a TorchScript script's redis.execute runs as the user that
ran the script, so a tenant limited to a:* cannot reach b:* through a
script, whoever stored it.
"""

from __future__ import annotations

import pytest
import redis

import model_builders as mb
from conftest import SERVER_KIND, server_says
from keyspace import assert_intact, snapshot

NOPERM_KEY = server_says("no permissions to access one of the keys used as arguments",
                         "No permissions to access a key")
TENSORSET_B = ("AI.TENSORSET", "b:x", "FLOAT", 2, "VALUES", 9, 9)
TENSORSET_A = ("AI.TENSORSET", "a:x", "INT16", 2, "VALUES", 3, 4)


def raw(server) -> redis.Redis:
    """A RESP3 client without redis-py's reply parsing (COMMAND replies come
    back as Redis sends them, key specs as maps)."""
    client = server.client(protocol=3)
    client.response_callbacks.clear()
    return client


def tensor_get(client: redis.Redis, key: str) -> list[object]:
    return client.execute_command("AI.TENSORGET", key, "META", "BLOB")


@pytest.fixture
def tenants(server, r):
    """A keyspace with one tensor under each tenant's prefix, and users."""
    r.execute_command("AI.TENSORSET", "a:x", "FLOAT", 2, "VALUES", 1, 2)
    r.execute_command("AI.TENSORSET", "b:x", "UINT8", 3, "VALUES", 7, 8, 9)
    r.set("b:plain", "not a tensor")
    acl = [
        ("tenant", "~a:*", "+@all"),
        ("narrow", "~a:*", "-@all", "+ai.tensorset", "+ai.tensorget"),
        ("reader", "%R~a:*", "+@all"),
        ("writer", "%W~a:*", "+@all"),
    ]
    for user, *rules in acl:
        assert r.acl_setuser(user, enabled=True, passwords=["+pw"], reset_keys=True) is True
        r.execute_command("ACL", "SETUSER", user, *rules)
    return server


def as_user(server, user: str) -> redis.Redis:
    return server.client(username=user, password="pw")


# --------------------------------------------------------------------------
# COMMAND GETKEYS / GETKEYSANDFLAGS / INFO


def test_command_getkeys_answers_the_tensor_key(server):
    c = raw(server)
    assert c.execute_command("COMMAND", "GETKEYS", "AI.TENSORSET", "a:x", "FLOAT", 2, 2,
                             "VALUES", 1, 2, 3, 4) == [b"a:x"]
    assert c.execute_command("COMMAND", "GETKEYS", "AI.TENSORSET", "k{t}", "STRING",
                             "BLOB", b"x\0") == [b"k{t}"]
    assert c.execute_command("COMMAND", "GETKEYS", "AI.TENSORGET", "a:x") == [b"a:x"]
    assert c.execute_command("COMMAND", "GETKEYS", "ai.tensorget", "a:x", "META",
                             "VALUES") == [b"a:x"]
    # The access each command needs: TENSORSET replaces the value without
    # reading it; TENSORGET only reads.
    assert c.execute_command("COMMAND", "GETKEYSANDFLAGS", "AI.TENSORSET", "a:x", "FLOAT",
                             "VALUES", 1) == [[b"a:x", [b"OW", b"update"]]]
    assert c.execute_command("COMMAND", "GETKEYSANDFLAGS", "AI.TENSORGET", "a:x",
                             "META") == [[b"a:x", [b"RO", b"access"]]]
    # AI.CONFIG touches no key.
    with pytest.raises(redis.ResponseError, match="has no key arguments"):
        c.execute_command("COMMAND", "GETKEYS", "AI.CONFIG", "MODEL_CHUNK_SIZE", 1024)


@pytest.mark.parametrize("count", [2**31, 2**32 + 1, 2**63 - 1, -(2**63), 2**64])
def test_command_getkeys_with_a_count_near_the_limits(server, count):
    """A count the arguments cannot hold names no keys: the walk stops at it (it once
    stepped to a negative position and read before argv)."""
    c = raw(server)
    assert c.execute_command("COMMAND", "GETKEYS", "AI.MODELEXECUTE", "m", "INPUTS", count, "a", "b",
                             "OUTPUTS", 1, "o") == [b"m"]
    assert c.execute_command("COMMAND", "GETKEYS", "AI.SCRIPTEXECUTE", "s", "fn", "INPUTS", 1, "a",
                             "ARGS", count, "x", "OUTPUTS", 1, "o") == [b"s", b"a"]
    assert c.execute_command("COMMAND", "GETKEYS", "AI.DAGEXECUTE", "PERSIST", 1, "p", "LOAD", count,
                             "a", "|>", "AI.MODELEXECUTE", "m", "INPUTS", 1, "a", "OUTPUTS", 1, "p") == [b"p", b"m"]
    assert c.ping()


def _key_spec(flags: list[bytes]) -> dict[bytes, object]:
    return {
        b"flags": flags,
        b"begin_search": {b"type": b"index", b"spec": {b"index": 1}},
        b"find_keys": {b"type": b"range",
                       b"spec": {b"lastkey": 0, b"keystep": 1, b"limit": 0}},
    }


def test_command_info_shows_the_key_specs(server):
    c = raw(server)
    tensorset, tensorget, config = c.execute_command("COMMAND", "INFO", "ai.tensorset",
                                                     "AI.TENSORGET", "ai.config")
    # name, arity, flags, first key, last key, step, ACL categories, tips,
    # key specs, subcommands
    assert tensorset[:6] == [b"ai.tensorset", -1, [b"write", b"denyoom", b"module"], 1, 1, 1]
    assert tensorset[8] == [_key_spec([b"OW", b"update"])]
    assert tensorget[:6] == [b"ai.tensorget", -1, [b"readonly", b"module"], 1, 1, 1]
    assert tensorget[8] == [_key_spec([b"RO", b"access"])]
    assert config[:6] == [b"ai.config", -1, [b"write", b"module"], 0, 0, 0]
    assert config[8] == []


# --------------------------------------------------------------------------
# ACL key patterns


@pytest.mark.parametrize("user", ["tenant", "narrow"])
def test_tenant_reaches_its_own_keys_and_no_others(tenants, r, user):
    c = as_user(tenants, user)
    assert c.execute_command(*TENSORSET_A) == b"OK"
    assert tensor_get(c, "a:x") == [b"dtype", b"INT16", b"shape", [2], b"blob",
                                    b"\x03\x00\x04\x00"]
    assert c.execute_command("AI.TENSORSET", "a:new", "STRING", "VALUES", "hi") == b"OK"
    assert tensor_get(c, "a:new") == [b"dtype", b"STRING", b"shape", [], b"blob", b"hi\0"]

    before = snapshot(r)
    refused = [
        TENSORSET_B,
        ("AI.TENSORSET", "b:new", "FLOAT", 1, "VALUES", 1),  # a key that does not exist
        ("AI.TENSORSET", "b:plain", "FLOAT", 1, "VALUES", 1),  # NOPERM, not WRONGTYPE
        ("AI.TENSORGET", "b:x"),
        ("AI.TENSORGET", "b:x", "VALUES"),
        ("AI.TENSORGET", "b:missing", "META"),
        ("ai.tensorget", "B:X"),  # key patterns are case-sensitive: still not a:*
    ]
    for command in refused:
        with pytest.raises(redis.exceptions.NoPermissionError, match=NOPERM_KEY):
            c.execute_command(*command)
    assert_intact(r, before)

    # Every refusal is in the ACL log, naming the key (repeats of the same
    # key are one entry with a count).
    counts: dict[str, int] = {}
    for entry in r.acl_log():
        if entry["object"] == "client|setinfo":
            continue  # redis-py's handshake: Valkey has the command, and "narrow" may not run it
        assert (entry["reason"], entry["username"], entry["context"]) == ("key", user, "toplevel")
        counts[entry["object"]] = counts.get(entry["object"], 0) + entry["count"]
    assert counts == {"b:x": 3, "b:new": 1, "b:plain": 1, "b:missing": 1, "B:X": 1}


def test_narrow_tenant_gets_only_the_two_tensor_commands(tenants, r):
    c = as_user(tenants, "narrow")
    for command in [("AI.CONFIG", "MODEL_CHUNK_SIZE", 1024), ("GET", "a:x"), ("DEL", "a:x")]:
        with pytest.raises(redis.exceptions.NoPermissionError, match="permissions to run"):
            c.execute_command(*command)
    assert tensor_get(r, "a:x") == [b"dtype", b"FLOAT", b"shape", [2], b"blob",
                                    b"\x00\x00\x80?\x00\x00\x00@"]


def test_refusal_inside_multi_and_inside_a_script(tenants, r):
    c = as_user(tenants, "tenant")
    before = snapshot(r)

    pipe = c.pipeline(transaction=True)
    pipe.execute_command(*TENSORSET_A)
    pipe.execute_command(*TENSORSET_B)
    with pytest.raises(redis.exceptions.NoPermissionError, match=NOPERM_KEY):
        pipe.execute()
    # The whole transaction was discarded: a:x is unchanged too.
    assert_intact(r, before)

    # A script that names the key only in ARGV hits the same check.
    script = "return redis.call('AI.TENSORSET', ARGV[1], 'FLOAT', 1, 'VALUES', 5)"
    with pytest.raises(redis.ResponseError, match=server_says(
            "can't access at least one of the keys", f"ACL failure in script: {NOPERM_KEY}")):
        c.eval(script, 0, "b:x")
    assert_intact(r, before)
    assert c.eval(script, 0, "a:x") == b"OK"
    assert tensor_get(r, "a:x") == [b"dtype", b"FLOAT", b"shape", [1], b"blob", b"\x00\x00\xa0@"]


def test_acl_dryrun_agrees(tenants, r):
    def dryrun(user, *command):
        return r.execute_command("ACL", "DRYRUN", user, *command)

    def refused(user, key):
        who = server_says("This user", f"User {user}")
        return f"{who} has no permissions to access the '{key}' key".encode()

    assert dryrun("tenant", *TENSORSET_A) == b"OK"
    assert dryrun("tenant", *TENSORSET_B) == refused("tenant", "b:x")
    assert dryrun("reader", "AI.TENSORGET", "a:x") == b"OK"
    assert dryrun("reader", *TENSORSET_A) == refused("reader", "a:x")
    assert dryrun("writer", *TENSORSET_A) == b"OK"
    assert dryrun("writer", "AI.TENSORGET", "a:x") == refused("writer", "a:x")


def test_read_only_pattern_reads_but_cannot_write(tenants, r):
    c = as_user(tenants, "reader")
    before = snapshot(r)
    assert tensor_get(c, "a:x") == [b"dtype", b"FLOAT", b"shape", [2], b"blob",
                                    b"\x00\x00\x80?\x00\x00\x00@"]
    assert c.execute_command("AI.TENSORGET", "a:x", "VALUES") == [b"1", b"2"]
    for command in [TENSORSET_A, ("AI.TENSORSET", "a:new", "FLOAT", 1, "VALUES", 1),
                    ("AI.TENSORGET", "b:x")]:
        with pytest.raises(redis.exceptions.NoPermissionError, match=NOPERM_KEY):
            c.execute_command(*command)
    assert_intact(r, before)


def test_write_only_pattern_writes_but_cannot_read(tenants, r):
    c = as_user(tenants, "writer")
    with pytest.raises(redis.exceptions.NoPermissionError, match=NOPERM_KEY):
        c.execute_command("AI.TENSORGET", "a:x", "META")
    assert c.execute_command(*TENSORSET_A) == b"OK"
    assert tensor_get(r, "a:x") == [b"dtype", b"INT16", b"shape", [2], b"blob",
                                    b"\x03\x00\x04\x00"]
    before = snapshot(r)
    with pytest.raises(redis.exceptions.NoPermissionError, match=NOPERM_KEY):
        c.execute_command(*TENSORSET_B)
    assert_intact(r, before)


# ACL categories (servers whose module API has them: Valkey, Redis 7.2+)

READ_COMMANDS = {"ai.tensorget", "ai.modelget", "ai._modelscan", "ai.scriptget", "ai._scriptscan",
                 "ai.dagexecute_ro", "ai.dagrun_ro", "ai.info", "ai.fcall_ro",
                 "ai._readthrough"}  # what a GET of a read-through trigger's key becomes


@pytest.mark.skipif(SERVER_KIND == "redis",
                    reason="Redis 7.0 has no ACL categories for module commands")
def test_read_and_write_categories_grant_the_ai_commands(tenants, r):
    assert {c for c in r.acl_cat("read") if c.startswith("ai.")} == READ_COMMANDS
    assert "ai.config" in r.acl_cat("admin")
    assert {"ai.function", "ai.fcall", "ai.fcall_ro"} <= set(r.acl_cat("scripting"))
    assert "ai.function" in r.acl_cat("admin") and "ai.function" in r.acl_cat("dangerous")
    r.execute_command("ACL", "SETUSER", "cat-reader", "on", ">pw", "~*", "+@read")
    r.execute_command("ACL", "SETUSER", "cat-writer", "on", ">pw", "~*", "+@write")
    reader, writer = as_user(tenants, "cat-reader"), as_user(tenants, "cat-writer")
    before = snapshot(r)

    assert reader.execute_command("AI.TENSORGET", "b:x", "VALUES") == [7, 8, 9]
    for command in [TENSORSET_A, ("AI.CONFIG", "MODEL_CHUNK_SIZE", 1024)]:
        with pytest.raises(redis.exceptions.NoPermissionError, match="has no permissions to run"):
            reader.execute_command(*command)
    with pytest.raises(redis.exceptions.NoPermissionError, match="has no permissions to run"):
        writer.execute_command("AI.TENSORGET", "a:x", "META")
    assert_intact(r, before)
    assert writer.execute_command(*TENSORSET_A) == b"OK"
    assert tensor_get(r, "a:x") == [b"dtype", b"INT16", b"shape", [2], b"blob", b"\x03\x00\x04\x00"]


# --------------------------------------------------------------------------
# AI.CONFIG's setters: only for users who may run CONFIG SET

CONFIG_SETTERS = [
    ("AI.CONFIG", "BACKENDSPATH", "/tmp"),
    ("AI.CONFIG", "LOADBACKEND", "TORCH", "redisai_torch.so"),
    ("AI.CONFIG", "MODEL_CHUNK_SIZE", 1024),
    ("AI.CONFIG", "CACHE_MEMORY", 0),
    ("AI.CONFIG", "CACHE_FLUSH"),
    ("AI.CONFIG", "MODEL_SESSIONS_MEMORY", 1),
    ("AI.CONFIG", "MODEL_SESSIONS_MAX", 1),
    ("AI.CONFIG", "WORKER_SPIN_US", 0),
]
CONFIG_NAMES = ["BACKENDSPATH", "MODEL_CHUNK_SIZE", "CACHE_MEMORY", "MODEL_SESSIONS_MEMORY",
                "MODEL_SESSIONS_MAX", "WORKER_SPIN_US"]
NO_CONFIG_SET = "no permissions to change AI.CONFIG settings \\(that needs the right to run CONFIG SET\\)"


def config_values(client: redis.Redis) -> list[object]:
    return [client.execute_command("AI.CONFIG", "GET", name) for name in CONFIG_NAMES]


def test_config_setters_need_the_right_to_run_config_set(server, r):
    # An operator's helper may run everything but CONFIG SET: it reads the
    # settings and may not change them, directly, in MULTI or from Lua.
    r.execute_command("ACL", "SETUSER", "helper", "on", ">pw", "~*", "+@all", "-config|set")
    helper = as_user(server, "helper")
    before = config_values(r)
    assert config_values(helper) == before
    for command in CONFIG_SETTERS:
        with pytest.raises(redis.exceptions.NoPermissionError, match=NO_CONFIG_SET):
            helper.execute_command(*command)
    with pytest.raises(redis.exceptions.NoPermissionError, match=NO_CONFIG_SET):
        helper.eval("return redis.call('AI.CONFIG', 'MODEL_CHUNK_SIZE', '1024')", 0)
    pipe = helper.pipeline(transaction=True)
    pipe.execute_command("AI.CONFIG", "CACHE_MEMORY", 0)
    pipe.execute_command("AI.CONFIG", "GET", "CACHE_MEMORY")
    refused, value = pipe.execute(raise_on_error=False)
    assert isinstance(refused, redis.exceptions.NoPermissionError) and value == before[2]
    assert config_values(r) == before

    # The user allowed CONFIG SET (here the default user) changes them.
    assert r.execute_command("AI.CONFIG", "MODEL_CHUNK_SIZE", 1024) == b"OK"
    assert r.execute_command("AI.CONFIG", "MODEL_SESSIONS_MAX", 7) == b"OK"
    assert helper.execute_command("AI.CONFIG", "GET", "MODEL_CHUNK_SIZE") == 1024
    assert helper.execute_command("AI.CONFIG", "GET", "MODEL_SESSIONS_MAX") == 7


def test_config_setters_refused_without_the_dangerous_category(server, r):
    # "+@all -@dangerous" is the usual way to keep a user from admin
    # commands. It does not remove AI.CONFIG (in no category on Redis 7.0,
    # in @admin only on Valkey), so the user reads the settings, and the
    # module refuses the setters (CONFIG SET is @dangerous).
    r.execute_command("ACL", "SETUSER", "safe", "on", ">pw", "~*", "+@all", "-@dangerous")
    safe = as_user(server, "safe")
    before = config_values(r)
    for command in CONFIG_SETTERS:
        with pytest.raises(redis.exceptions.NoPermissionError, match=NO_CONFIG_SET):
            safe.execute_command(*command)
    assert config_values(safe) == before
    assert config_values(r) == before


# --------------------------------------------------------------------------
# A script's redis.execute runs as the user that ran the script

TENANT_SCRIPT = """
def touch(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("SET", args[0], args[1])
    return tensors[0]

def mark(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("SET", keys[0], args[0])

def read(tensors: List[Tensor], keys: List[str], args: List[str]):
    return torch.tensor(len(str(redis.execute("GET", args[0]))))

def run_model(tensors: List[Tensor], keys: List[str], args: List[str]):
    return redisAI.model_execute(args[0], tensors, 2)

def forked_set(key: str) -> int:
    redis.execute("SET", key, "forked")
    return 1

def forked(tensors: List[Tensor], keys: List[str], args: List[str]):
    torch.jit.wait(torch.jit.fork(forked_set, keys[0]))
"""
REFUSED_IN_SCRIPT = ("Redis command returned an error: NOPERM this user has no permissions to run this "
                     "command or to access its keys")


def touch(key: str, value: str) -> tuple[object, ...]:
    return ("AI.SCRIPTEXECUTE", "a:s", "touch", "INPUTS", 1, "a:x", "ARGS", 2, key, value,
            "OUTPUTS", 1, "a:out")


def run_model(model: str) -> tuple[object, ...]:
    return ("AI.SCRIPTEXECUTE", "a:s", "run_model", "INPUTS", 2, "a:x", "a:x", "ARGS", 1, model,
            "OUTPUTS", 2, "a:sum", "a:product")


def test_a_script_reaches_only_the_keys_its_caller_may(tenants, r):
    # The operator stores the script; tenant (~a:*) runs it.
    assert r.execute_command("AI.SCRIPTSTORE", "a:s", "CPU", "ENTRY_POINTS", 5, "touch", "mark", "read",
                             "run_model", "forked", "SOURCE", TENANT_SCRIPT) == b"OK"
    r.set("b:secret", "bob's")
    for model in ("a:m", "b:m"):
        assert r.execute_command("AI.MODELSTORE", model, "ONNX", "CPU", "BLOB", mb.onnx_add()) == b"OK"
    c = as_user(tenants, "tenant")
    assert c.execute_command(*touch("a:note", "mine")) == b"OK"
    assert r.get("a:note") == b"mine"
    assert c.execute_command(*run_model("a:m")) == b"OK"
    assert c.execute_command("AI.TENSORGET", "a:sum", "VALUES") == [b"2", b"4"]
    before = snapshot(r)

    # ARGS are not keys of the command: the check happens when the script
    # calls Redis, as the tenant, for writes and reads alike.
    refused = [
        touch("b:note", "by a"),
        touch("b:secret", "overwritten"),
        ("AI.SCRIPTEXECUTE", "a:s", "read", "INPUTS", 1, "a:x", "ARGS", 1, "b:secret", "OUTPUTS", 1, "a:out"),
    ]
    for command in refused:
        with pytest.raises(redis.ResponseError, match=REFUSED_IN_SCRIPT):
            c.execute_command(*command)
    # A model the script names is read as the tenant too.
    with pytest.raises(redis.exceptions.NoPermissionError,
                       match="this user has no permissions to access the model's key"):
        c.execute_command(*run_model("b:m"))
    # A DAG's script op gets KEYS that are not keys of AI.DAGEXECUTE, so only
    # this check guards them.
    reply = c.execute_command("AI.DAGEXECUTE", "ROUTING", "a:s", "|>",
                              "AI.SCRIPTEXECUTE", "a:s", "mark", "KEYS", 1, "b:dag", "ARGS", 1, "by a")
    assert len(reply) == 1 and REFUSED_IN_SCRIPT in str(reply[0])
    # From Lua and in MULTI the main thread runs the script's calls itself;
    # they are still the tenant's.
    with pytest.raises(redis.ResponseError, match=REFUSED_IN_SCRIPT):
        c.eval("return redis.call(unpack(ARGV))", 0, *touch("b:lua", "by a"))
    pipe = c.pipeline(transaction=True)
    pipe.execute_command(*touch("b:multi", "by a"))
    (result,) = pipe.execute(raise_on_error=False)
    assert REFUSED_IN_SCRIPT in str(result)
    # A task TorchScript forks onto its own threads has no caller: refused.
    with pytest.raises(redis.ResponseError, match="redis.execute runs only on its script's own thread"):
        c.execute_command("AI.SCRIPTEXECUTE", "a:s", "forked", "KEYS", 1, "a:forked")
    assert_intact(r, before)

    # The operator's own runs of the same script reach every key.
    assert r.execute_command(*touch("b:note", "by the operator")) == b"OK"
    assert r.get("b:note") == b"by the operator"


def test_a_script_runs_only_the_commands_its_caller_may(tenants, r):
    assert r.execute_command("AI.SCRIPTSTORE", "a:s", "CPU", "ENTRY_POINTS", 1, "touch",
                             "SOURCE", TENANT_SCRIPT) == b"OK"
    r.execute_command("ACL", "SETUSER", "noset", "on", ">pw", "~*", "+@all", "-set")
    before = snapshot(r)
    with pytest.raises(redis.ResponseError, match=REFUSED_IN_SCRIPT):
        as_user(tenants, "noset").execute_command(*touch("a:note", "x"))
    assert_intact(r, before)
    assert as_user(tenants, "tenant").execute_command(*touch("a:note", "x")) == b"OK"
