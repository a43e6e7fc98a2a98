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
