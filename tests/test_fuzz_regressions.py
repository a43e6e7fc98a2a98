"""Failures the fuzzer (tests/test_fuzz.py, benchmarks/fuzz.py) found, each
kept as the smallest story that showed it.

Names that are not UTF-8. Entry points, TF node names and devices are bytes
a client sends. The shim handed them to Python through a getter that, for
bytes that are not UTF-8, returned a tuple with a hole and left a
UnicodeDecodeError pending. The exception then surfaced at an unrelated C
call: for a script, inside the __enter__ of the lock that guards the
registration of TorchScript's redis/redisAI ops, after the lock was taken.
The store was refused with a SystemError, and the lock was never released,
so every later SCRIPTSTORE, and every script run that compiles, waited
forever (found as `AI.SCRIPTSTORE s CPU ENTRY_POINTS 1 "\\x91" SOURCE ...`).
A TF model's input names went through the same getter: the store got a
SystemError text, or the server died of SIGSEGV when the hole was read as a
name (`AI.MODELSTORE m TF CPU INPUTS 2 "\x91" b OUTPUTS 1 mul BLOB <graph>`).
Undecodable bytes now become U+FFFD, and the name fails as unknown names do.

A script function name that is not UTF-8. The worker made the function
name a str with PyUnicode_FromString, which fails for such bytes, then
called the script runtime with the NULL (which ends the argument list) and
released it: SIGSEGV on the worker thread. Found as
`AI.SCRIPTEXECUTE s "\x91" INPUTS 1 x` (any stored script, any tensor x).
The name is now decoded like the others and is an unknown function.

A model payload that claims a huge blob. RESTORE hands a model's DUMP
payload to our RDB decoder, which allocated the blob length the payload
claimed before reading any chunk; Redis ends the process when an
allocation fails ("Out Of Memory allocating 9223372036854775807 bytes!").
Found as RESTORE of a re-signed payload with that one field changed. The
decoder now only compares the claimed length with the chunks it reads.

A short AI.FCALL from a user with key patterns. AI.FCALL declares Redis
FCALL's key spec (the key count at index 2) but declared no arity, and
Redis 7.0's key search checks only that the count's offset from the start
of the spec, not its place in argv, is within argv: `AI.FCALL` or
`AI.FCALL fn` sent by a user limited to some keys made the ACL check read
past argv, and the server died of SIGSEGV. Found by the fuzzer's lane that
runs as such a user (`AI.FCALL` alone, after a mutation cut it short).
AI.FCALL and AI.FCALL_RO now declare FCALL's arity (-3), and Redis answers
the wrong count itself.

The same read past argv from inside: a function's execute() (and, now that
it runs as the caller, a script's redis.execute) ran Redis's ACL check on
the command it was given before Redis checked its argument count, so
execute("FCALL"), execute("ZUNION") or execute("AI.FCALL") as such a user
crashed the server too. The count is checked first now (ERR wrong number of
arguments).

Each story gets a fresh server: before the fixes a bad store left the
server unable to store scripts, and a bad RESTORE killed it.
"""

from __future__ import annotations

import numpy as np
import pytest
import redis

import fuzz_dump
import model_builders as mb
from conftest import RedisServer

NOT_UTF8 = b"\x91"
REPLACEMENT = "\ufffd"  # what the undecodable byte becomes in the error text

SCRIPT = b"""
def add(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] + tensors[1]
"""


@pytest.fixture
def client(server: RedisServer) -> redis.Redis:
    """A client that fails a test on a missing reply instead of hanging."""
    return server.client(socket_timeout=30)


def set_pair(client: redis.Redis) -> None:
    for key, values in (("x", [1, 2]), ("y", [10, 20])):
        client.execute_command("AI.TENSORSET", key, "FLOAT", 2, "VALUES", *values)


def tensor_values(client: redis.Redis, key: str) -> list[float]:
    return [float(v) for v in client.execute_command("AI.TENSORGET", key, "VALUES")]


def test_script_entry_point_that_is_not_utf8_is_refused_and_scripts_still_store_and_run(client: redis.Redis):
    assert client.execute_command("AI.SCRIPTSTORE", "s", "CPU", "ENTRY_POINTS", 1, "add", "SOURCE", SCRIPT) == b"OK"

    with pytest.raises(redis.ResponseError) as refused:
        client.execute_command("AI.SCRIPTSTORE", "bad", "CPU", "ENTRY_POINTS", 1, NOT_UTF8, "SOURCE", SCRIPT)
    assert str(refused.value) == f"Function {REPLACEMENT} does not exist in the given script."
    assert client.exists("bad") == 0

    # The next store compiles (it waited forever before the fix) and both scripts run.
    assert client.execute_command("AI.SCRIPTSTORE", "s2", "CPU", "ENTRY_POINTS", 1, "add", "SOURCE", SCRIPT) == b"OK"
    set_pair(client)
    for key in ("s", "s2"):
        assert client.execute_command("AI.SCRIPTEXECUTE", key, "add", "INPUTS", 2, "x", "y",
                                      "OUTPUTS", 1, "sum") == b"OK"
        assert tensor_values(client, "sum") == [11.0, 22.0]
    assert client.ping() is True


def test_script_device_that_is_not_utf8_is_a_cpu_device(client: redis.Redis):
    # RedisAI takes any device that starts with CPU as the CPU.
    device = b"CPU" + NOT_UTF8
    assert client.execute_command("AI.SCRIPTSTORE", "s", device, "ENTRY_POINTS", 1, "add", "SOURCE", SCRIPT) == b"OK"
    meta = client.execute_command("AI.SCRIPTGET", "s", "META")
    assert meta[:2] == [b"device", device]  # stored as sent

    set_pair(client)
    assert client.execute_command("AI.SCRIPTEXECUTE", "s", "add", "INPUTS", 2, "x", "y", "OUTPUTS", 1, "sum") == b"OK"
    assert tensor_values(client, "sum") == [11.0, 22.0]


def test_tf_input_name_that_is_not_utf8_gets_tfs_message_and_models_still_store(client: redis.Redis):
    graph = mb.tf_graph_def_mul()

    with pytest.raises(redis.ResponseError) as refused:
        client.execute_command("AI.MODELSTORE", "bad", "TF", "CPU", "INPUTS", 2, NOT_UTF8, "b",
                               "OUTPUTS", 1, "mul", "BLOB", graph)
    assert str(refused.value) == f'Input node named "{REPLACEMENT}" not found in TF graph.'
    assert client.exists("bad") == 0

    assert client.execute_command("AI.MODELSTORE", "m", "TF", "CPU", "INPUTS", 2, "a", "b",
                                  "OUTPUTS", 1, "mul", "BLOB", graph) == b"OK"
    set_pair(client)
    assert client.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 2, "x", "y", "OUTPUTS", 1, "product") == b"OK"
    assert np.allclose(tensor_values(client, "product"), [10.0, 40.0])


@pytest.mark.parametrize("command", [
    ("AI.SCRIPTEXECUTE", "s", NOT_UTF8, "INPUTS", 1, "x"),
    ("AI.SCRIPTEXECUTE", "s", NOT_UTF8, "INPUTS", 2, "x", "y", "OUTPUTS", 1, "sum"),
    ("AI.SCRIPTRUN", "s", NOT_UTF8, "INPUTS", "x", "y", "OUTPUTS", "sum"),
])
def test_script_function_name_that_is_not_utf8_is_an_unknown_function(client: redis.Redis,
                                                                        command: tuple[object, ...]):
    assert client.execute_command("AI.SCRIPTSTORE", "s", "CPU", "ENTRY_POINTS", 1, "add", "SOURCE", SCRIPT) == b"OK"
    set_pair(client)

    with pytest.raises(redis.ResponseError) as refused:
        client.execute_command(*command)
    assert str(refused.value) == f"Function does not exist: {REPLACEMENT}"
    assert client.exists("sum") == 0

    reply = client.execute_command("AI.DAGEXECUTE", "LOAD", 2, "x", "y", "|>",
                                   "AI.SCRIPTEXECUTE", "s", NOT_UTF8, "INPUTS", 2, "x", "y", "OUTPUTS", 1, "sum")
    assert [str(element) for element in reply] == [f"Function does not exist: {REPLACEMENT}"]
    assert client.execute_command("AI.SCRIPTEXECUTE", "s", "add", "INPUTS", 2, "x", "y", "OUTPUTS", 1, "sum") == b"OK"
    assert tensor_values(client, "sum") == [11.0, 22.0]


@pytest.mark.parametrize("claimed", [2**63 - 1, 2**64 - 1, "one byte more", "one byte less"])
def test_restore_of_a_model_payload_that_misstates_its_blob_length_is_refused(client: redis.Redis,
                                                                              claimed: int | str):
    blob = mb.onnx_add()
    assert client.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", blob) == b"OK"
    payload = client.dump("m")
    value = fuzz_dump.decode(payload)
    # The length comes right before the chunk count, after the names (reference section 9).
    at = next(i for i, (op, item) in enumerate(value.fields) if op == fuzz_dump.OP_UINT and item == len(blob))
    length = {"one byte more": len(blob) + 1, "one byte less": len(blob) - 1}.get(claimed, claimed)
    value.fields[at] = (fuzz_dump.OP_UINT, length)

    with pytest.raises(redis.ResponseError, match="^Bad data format$"):
        client.restore("copy", 0, value.encode())
    assert client.exists("copy") == 0
    assert client.dump("m") == payload

    # The same payload, re-signed unchanged, restores a model that runs.
    assert client.restore("copy", 0, fuzz_dump.decode(payload).encode()) == b"OK"
    set_pair(client)
    assert client.execute_command("AI.MODELEXECUTE", "copy", "INPUTS", 2, "x", "y",
                                  "OUTPUTS", 2, "sum", "product") == b"OK"
    assert tensor_values(client, "sum") == [11.0, 22.0]


# --------------------------------------------------------------------------
# short commands from a user with key patterns

PROBE_LIBRARY = b"""#!python name=probe
from redisai_py.functions import execute, register_function

def run(keys, args):
    return execute(*args)

register_function("probe_run", run)
"""
PROBE_SCRIPT = b"""
def run(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute(args[0], args[1:])
"""


@pytest.fixture
def tenant(server: RedisServer, client: redis.Redis) -> redis.Redis:
    """A user limited to a:* keys (the ACL check then looks for keys), with a
    function and a script that run whatever command they are given."""
    client.execute_command("ACL", "SETUSER", "tenant", "on", ">pw", "resetkeys", "~a:*", "+@all")
    assert client.execute_command("AI.FUNCTION", "LOAD", PROBE_LIBRARY) == b"probe"
    assert client.execute_command("AI.SCRIPTSTORE", "a:s", "CPU", "ENTRY_POINTS", 1, "run",
                                  "SOURCE", PROBE_SCRIPT) == b"OK"
    return server.client(username="tenant", password="pw", socket_timeout=30)


@pytest.mark.parametrize("command", [("AI.FCALL",), ("AI.FCALL", "probe_run"), ("AI.FCALL_RO",),
                                     ("AI.FCALL_RO", "probe_run")])
def test_fcall_without_its_key_count_is_a_wrong_count_for_a_user_with_key_patterns(
        client: redis.Redis, tenant: redis.Redis, command: tuple[str, ...]):
    with pytest.raises(redis.ResponseError,
                       match=f"^wrong number of arguments for '{command[0].lower()}' command$"):
        tenant.execute_command(*command)
    assert client.ping() is True
    # The same commands with their count still run, for both users.
    for user in (tenant, client):
        assert user.execute_command("AI.FCALL", "probe_run", 1, "a:k", "SET", "a:k", "v") == b"OK"
        assert user.execute_command("AI.FCALL", "probe_run", 0, "GET", "a:k") == b"v"


@pytest.mark.parametrize("inner", [("FCALL",), ("FCALL", "f"), ("ZUNION",), ("EVAL", "return 1"),
                                   ("AI.FCALL",), ("AI.FCALL", "probe_run")])
def test_a_short_command_from_a_function_or_script_is_a_wrong_count(client: redis.Redis, tenant: redis.Redis,
                                                                     inner: tuple[str, ...]):
    with pytest.raises(redis.ResponseError, match="^wrong number of arguments$"):
        tenant.execute_command("AI.FCALL", "probe_run", 0, *inner)
    with pytest.raises(redis.ResponseError,
                       match="^Redis command returned an error: ERR wrong number of arguments$"):
        tenant.execute_command("AI.SCRIPTEXECUTE", "a:s", "run", "KEYS", 1, "a:k", "ARGS", len(inner), *inner)
    assert client.ping() is True
    # The full command runs (ZUNION with its count reads keys the tenant may read).
    assert tenant.execute_command("AI.FCALL", "probe_run", 0, "ZUNION", 2, "a:x", "a:y") == []
