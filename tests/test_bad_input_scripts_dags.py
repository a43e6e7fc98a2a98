"""Every parser path of AI.SCRIPTSTORE / SCRIPTSET / SCRIPTGET / SCRIPTDEL /
SCRIPTEXECUTE / SCRIPTRUN and AI.DAGEXECUTE(_RO) / AI.DAGRUN(_RO) that refuses
its input, scripts that do not compile or fail while running, and keys that
are missing or hold something else.

Each story starts from the same keyspace: script `s` (SCRIPTSTORE, tag
"keep"), script `old` (SCRIPTSET, no entry points), the TORCH model `m`
(a, b -> a + b, a * b), the tensors `a` and `b` and the string `plain`. It
sends one bad command and checks the exact error line, read from a raw
socket so that the presence or absence of the "ERR " prefix is checked too
(reference section 11: some texts have none). Then it proves that the server
still answers, that nothing stored has changed (keyspace.assert_intact) and
that `s` still runs.

Texts come from reference section 3 (parsers) and section 6 (scripts). The
stories share one server, started once for this file, with FLUSHALL before
each.
"""

from __future__ import annotations

import functools
import socket

import numpy as np
import pytest
import redis

import model_builders as mb
from conftest import RedisServer
from keyspace import assert_intact, snapshot

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
TENSOR_EMPTY = "ERR tensor key is empty or in a different shard"
SCRIPT_EMPTY = "ERR script key is empty"

SCRIPT = '''
def bar(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] + tensors[1]

def number(tensors: List[Tensor], keys: List[str], args: List[str]):
    return len(keys)

def boom(tensors: List[Tensor], keys: List[str], args: List[str]):
    assert len(keys) > 100, "boom: the script gave up"
    return tensors[0]

def mismatch(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] + torch.ones(5)

def read_key(tensors: List[Tensor], keys: List[str], args: List[str]):
    value = redis.execute("GET", keys[0])
    return torch.tensor(int(str(value)))

def no_model(tensors: List[Tensor], keys: List[str], args: List[str]):
    return redisAI.model_execute(keys[0], tensors, 2)[0]
'''
ENTRY_POINTS = ["bar", "number", "boom", "mismatch", "read_key", "no_model"]
OLD_SCRIPT = '''
def add(a, b):
    return a + b

def typed(a: Tensor, n: int):
    return a * n
'''

A = np.array([1, 2], dtype=np.float32)
B = np.array([3, 5], dtype=np.float32)


def arity(command: str) -> str:
    return f"ERR wrong number of arguments for '{command}' command"


@functools.cache
def torch_add() -> bytes:
    return mb.torch_add()


def resp(*args: object) -> bytes:
    out = b"*%d\r\n" % len(args)
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out += b"$%d\r\n%s\r\n" % (len(data), data)
    return out


def error_line(server: RedisServer, *command: object) -> str:
    """The reply's first line, as sent: an error reply is one line starting with '-'."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(resp(*command))
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    line = data.decode(errors="replace").rstrip("\r\n")
    assert line.startswith("-"), f"not an error reply: {line[:200]!r}"
    return line[1:]


# Counts near the integer limits: each once made a parser index past argv.
INT64_MAX = 2**63 - 1
BEYOND_INT64 = 2**64

# ---------------------------------------------------------------------------
# fixtures


@pytest.fixture
def r(shared_server: RedisServer, request: pytest.FixtureRequest) -> redis.Redis:
    request.node.redis_servers = [shared_server]  # conftest attaches its log on failure
    client = shared_server.client(socket_timeout=60)
    client.flushall()
    assert client.execute_command("AI.SCRIPTSTORE", "s", "CPU", "TAG", "keep", "ENTRY_POINTS",
                                  len(ENTRY_POINTS), *ENTRY_POINTS, "SOURCE", SCRIPT) == b"OK"
    assert client.execute_command("AI.SCRIPTSET", "old", "CPU", "SOURCE", OLD_SCRIPT) == b"OK"
    assert client.execute_command("AI.MODELSTORE", "m", "TORCH", "CPU", "BLOB", torch_add()) == b"OK"
    for key, array in (("a", A), ("b", B)):
        client.execute_command("AI.TENSORSET", key, "FLOAT", *array.shape, "BLOB", array.tobytes())
    client.set("plain", "keep")
    return client


def still_serves(r: redis.Redis) -> None:
    assert r.execute_command("AI.SCRIPTGET", "s", "META")[:4] == [b"device", b"CPU", b"tag", b"keep"]
    assert r.execute_command("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a", "b", "OUTPUTS", 1,
                             "check") == b"OK"
    assert r.execute_command("AI.TENSORGET", "check", "VALUES") == [b"4", b"7"]


def refused(server: RedisServer, r: redis.Redis, command: tuple[object, ...], expected: str) -> None:
    before = snapshot(r)
    assert error_line(server, *command) == expected
    assert_intact(r, before)
    still_serves(r)


SRC = SCRIPT

# ---------------------------------------------------------------------------
# AI.SCRIPTSTORE / AI.SCRIPTSET / AI.SCRIPTGET / AI.SCRIPTDEL

SCRIPT_STORAGE_CASES = [
    pytest.param(("AI.SCRIPTSTORE", "s", "CPU", "ENTRY_POINTS", 1, "bar", "SOURCE"),
                 arity("AI.SCRIPTSTORE"), id="scriptstore-arity"),
    pytest.param(("ai.scriptStore", "s", "CPU"), arity("ai.scriptStore"), id="scriptstore-arity-as-typed"),
    pytest.param(("AI.SCRIPTSTORE", "s", "CPU", "TAG", "t", "SOURCE", SRC, "x"),
                 "ERR Insufficient arguments, missing script entry points", id="scriptstore-no-entry-points"),
    pytest.param(("AI.SCRIPTSTORE", "s", "CPU", "SOURCE", SRC, "bar", "x", "y"),
                 "ERR Insufficient arguments, missing script entry points", id="scriptstore-source-first"),
    pytest.param(("AI.SCRIPTSTORE", "s", "CPU", "ENTRY_POINTS", "two", "bar", "SOURCE", SRC),
                 "ERR Non numeric entry points number provided to AI.SCRIPTSTORE command",
                 id="scriptstore-entry-count-not-numeric"),
    pytest.param(("AI.SCRIPTSTORE", "s", "CPU", "ENTRY_POINTS", 5, "bar", "SOURCE", SRC),
                 "ERR Insufficient arguments, missing script entry points", id="scriptstore-too-few-entries"),
    pytest.param(("AI.SCRIPTSTORE", "s", "CPU", "ENTRY_POINTS", INT64_MAX, "bar", "SOURCE", SRC),
                 "ERR Insufficient arguments, missing script entry points", id="scriptstore-entries-int64-max"),
    pytest.param(("AI.SCRIPTSTORE", "s", "CPU", "ENTRY_POINTS", 2**31, "bar", "SOURCE", SRC),
                 "ERR Insufficient arguments, missing script entry points", id="scriptstore-entries-2-31"),
    pytest.param(("AI.SCRIPTSTORE", "s", "CPU", "ENTRY_POINTS", 2**32 + 1, "bar", "SOURCE", SRC),
                 "ERR Insufficient arguments, missing script entry points", id="scriptstore-entries-2-32-plus-1"),
    pytest.param(("AI.SCRIPTSTORE", "s", "CPU", "ENTRY_POINTS", -(2**63), "bar", "SOURCE", SRC),
                 "ERR Non numeric entry points number provided to AI.SCRIPTSTORE command",
                 id="scriptstore-entries-int64-min"),
    pytest.param(("AI.SCRIPTSTORE", "s", "CPU", "ENTRY_POINTS", BEYOND_INT64, "bar", "SOURCE", SRC),
                 "ERR Non numeric entry points number provided to AI.SCRIPTSTORE command",
                 id="scriptstore-entries-beyond-int64"),
    pytest.param(("AI.SCRIPTSTORE", "s", "CPU", "ENTRY_POINTS", 1, "bar", "SRC", SRC),
                 "ERR Insufficient arguments, missing script SOURCE", id="scriptstore-no-source-keyword"),
    pytest.param(("AI.SCRIPTSTORE", "s", "CPU", "ENTRY_POINTS", 2, "bar", "boom", "SOURCE"),
                 "ERR Insufficient arguments, missing script SOURCE", id="scriptstore-source-without-text"),
    pytest.param(("AI.SCRIPTSTORE", "plain", "CPU", "ENTRY_POINTS", 1, "bar", "SOURCE", SRC),
                 WRONGTYPE, id="scriptstore-onto-string"),
    pytest.param(("AI.SCRIPTSTORE", "m", "CPU", "ENTRY_POINTS", 1, "bar", "SOURCE", SRC),
                 WRONGTYPE, id="scriptstore-onto-model"),
    pytest.param(("AI.SCRIPTSTORE", "a", "CPU", "ENTRY_POINTS", 1, "bar", "SOURCE", SRC),
                 WRONGTYPE, id="scriptstore-onto-tensor"),
    pytest.param(("AI.SCRIPTSTORE", "s", "TPU", "ENTRY_POINTS", 1, "bar", "SOURCE", SRC),
                 "ERR unsupported device", id="scriptstore-unsupported-device"),
    pytest.param(("AI.SCRIPTSTORE", "s", "CPU", "ENTRY_POINTS", 2, "bar", "nope", "SOURCE", SRC),
                 "Function nope does not exist in the given script.", id="scriptstore-entry-missing"),
    pytest.param(("AI.SCRIPTSTORE", "s", "CPU", "ENTRY_POINTS", 1, "add", "SOURCE", OLD_SCRIPT),
                 "Wrong number of inputs in function add. Expected 3 but was 2", id="scriptstore-entry-arity"),
    pytest.param(("AI.SCRIPTSTORE", "s", "CPU", "ENTRY_POINTS", 1, "f", "SOURCE",
                  "def f(tensors: List[Tensor], keys: List[str], args: List[Tensor]):\n    return tensors[0]\n"),
                 "Wrong inputs type in function f. Expected signature similar to: "
                 "def f(tensors: List[Tensor], keys: List[str], args: List[str])", id="scriptstore-entry-types"),
    pytest.param(("AI.SCRIPTSET", "s", "CPU", "TAG", "t", "SOURCE"), arity("AI.SCRIPTSET"),
                 id="scriptset-arity-6"),
    pytest.param(("AI.SCRIPTSET", "s", "CPU", "SOURCE"), arity("AI.SCRIPTSET"), id="scriptset-arity-4"),
    pytest.param(("AI.SCRIPTSET", "s", "CPU", "SRC", SRC), "ERR Insufficient arguments, missing script SOURCE",
                 id="scriptset-no-source"),
    pytest.param(("AI.SCRIPTSET", "s", "CPU", "TAG", "t", "SRC", SRC),
                 "ERR Insufficient arguments, missing script SOURCE", id="scriptset-tag-no-source"),
    pytest.param(("AI.SCRIPTSET", "plain", "CPU", "SOURCE", SRC), WRONGTYPE, id="scriptset-onto-string"),
    pytest.param(("AI.SCRIPTGET",), arity("AI.SCRIPTGET"), id="scriptget-arity-1"),
    pytest.param(("AI.SCRIPTGET", "s", "META", "SOURCE", "x"), arity("AI.SCRIPTGET"), id="scriptget-arity-5"),
    pytest.param(("AI.SCRIPTGET", "nope"), SCRIPT_EMPTY, id="scriptget-missing"),
    pytest.param(("AI.SCRIPTGET", "nope", "META"), SCRIPT_EMPTY, id="scriptget-missing-meta"),
    pytest.param(("AI.SCRIPTGET", "m"), WRONGTYPE, id="scriptget-model"),
    pytest.param(("AI.SCRIPTGET", "plain", "SOURCE"), WRONGTYPE, id="scriptget-string"),
    pytest.param(("AI.SCRIPTDEL",), arity("AI.SCRIPTDEL"), id="scriptdel-arity-1"),
    pytest.param(("AI.SCRIPTDEL", "s", "extra"), arity("AI.SCRIPTDEL"), id="scriptdel-arity-3"),
    pytest.param(("AI.SCRIPTDEL", "nope"), SCRIPT_EMPTY, id="scriptdel-missing"),
    pytest.param(("AI.SCRIPTDEL", "a"), WRONGTYPE, id="scriptdel-tensor"),
    pytest.param(("AI.SCRIPTDEL", "m"), WRONGTYPE, id="scriptdel-model"),
    pytest.param(("AI.INFO", "nope"), "ERR cannot find run info for key", id="info-missing"),
    pytest.param(("AI._SCRIPTSCAN", "x"), arity("AI._SCRIPTSCAN"), id="scriptscan-arity"),
]


@pytest.mark.parametrize("command, expected", SCRIPT_STORAGE_CASES)
def test_script_storage_commands_refuse(shared_server: RedisServer, r: redis.Redis,
                                        command: tuple[object, ...], expected: str) -> None:
    refused(shared_server, r, command, expected)


@pytest.mark.parametrize("source, fragment", [
    pytest.param("def bar(tensors: List[Tensor], keys: List[str], args: List[str]):\n    return nowhere\n",
                 "nowhere", id="undefined-name"),
    pytest.param("def bar(tensors: List[Tensor], keys: List[str], args: List[str]):\n    return (\n",
                 "expected", id="syntax-error"),
    pytest.param("def bar(tensors: List[Tensor], keys: List[str], args: List[str]):\n"
                 "    return tensors[0] + 'text'\n", "", id="type-error"),
    pytest.param("this is not python", "expected def", id="not-python"),
])
@pytest.mark.parametrize("command", ["AI.SCRIPTSTORE", "AI.SCRIPTSET"])
def test_script_that_does_not_compile_is_refused(shared_server: RedisServer, r: redis.Redis, command: str,
                                                 source: str, fragment: str) -> None:
    before = snapshot(r)
    args = ("ENTRY_POINTS", 1, "bar") if command == "AI.SCRIPTSTORE" else ()
    for key in ("s", "fresh"):  # replacing a script, and a new key
        line = error_line(shared_server, command, key, "CPU", *args, "SOURCE", source)
        # TorchScript's message, on one line.
        assert line and "\n" not in line and "\r" not in line
        assert fragment in line
    assert_intact(r, before)
    still_serves(r)


# ---------------------------------------------------------------------------
# AI.SCRIPTEXECUTE

EXECUTE_CASES = [
    pytest.param(("AI.SCRIPTEXECUTE", "s"), "ERR wrong number of arguments for 'AI.SCRIPTEXECUTE' command",
                 id="arity"),
    pytest.param(("ai.scriptexecute", "s"), "ERR wrong number of arguments for 'AI.SCRIPTEXECUTE' command",
                 id="arity-hard-coded-name"),
    pytest.param(("AI.SCRIPTEXECUTE", "nope", "bar", "INPUTS", 1, "a"), SCRIPT_EMPTY, id="script-missing"),
    pytest.param(("AI.SCRIPTEXECUTE", "nope", "bar", "BAD"), SCRIPT_EMPTY, id="script-checked-first"),
    pytest.param(("AI.SCRIPTEXECUTE", "a", "bar", "INPUTS", 1, "a"), WRONGTYPE, id="script-is-tensor"),
    pytest.param(("AI.SCRIPTEXECUTE", "m", "bar", "INPUTS", 1, "a"), WRONGTYPE, id="script-is-model"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar"),
                 "ERR KEYS or INPUTS scope must be provided first for AI.SCRIPTEXECUTE command", id="no-scope"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "OUTPUTS", 2, "a", "a"),
                 "ERR KEYS or INPUTS scope must be provided first for AI.SCRIPTEXECUTE command",
                 id="outputs-first"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "ARGS", 1, "x", "INPUTS", 1, "a"),
                 "ERR KEYS or INPUTS scope must be provided first for AI.SCRIPTEXECUTE command", id="args-first"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "TIMEOUT", 10),
                 "ERR KEYS or INPUTS scope must be provided first for AI.SCRIPTEXECUTE command",
                 id="timeout-first"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "KEYS", INT64_MAX, "k", "INPUTS", 1, "a"),
                 "ERR Number of pre declared KEYS to be used in the command does not match the number of "
                 "given arguments", id="keys-count-int64-max"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "KEYS", BEYOND_INT64, "k", "INPUTS", 1, "a"),
                 "ERR Invalid or negative value found in number of KEYS", id="keys-count-beyond-int64"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2**32 + 2, "a", "b", "OUTPUTS", 1, "y"),
                 "ERR number of inputs to AI.SCRIPTEXECUTE command does not match the number of given arguments",
                 id="inputs-count-2-32-plus-2"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a", "b", "ARGS", 2**31, "x"),
                 "ERR number of args to AI.SCRIPTEXECUTE command does not match the number of given arguments",
                 id="args-count-2-31"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a", "b", "OUTPUTS", INT64_MAX, "y"),
                 "ERR number of outputs to AI.SCRIPTEXECUTE command does not match the number of given "
                 "arguments", id="outputs-count-int64-max"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", -(2**63), "a"),
                 "ERR Invalid argument for inputs count in AI.SCRIPTEXECUTE", id="inputs-count-int64-min"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "KEYS", 1, "k", "KEYS", 1, "k"),
                 "ERR Already Encountered KEYS scope in AI.SCRIPTEXECUTE command", id="keys-twice"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 1, "a", "INPUTS", 1, "b"),
                 "ERR Already Encountered INPUTS scope in AI.SCRIPTEXECUTE command", id="inputs-twice"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 1, "a", "ARGS", 1, "x", "ARGS", 1, "y"),
                 "ERR Already Encountered ARGS scope in AI.SCRIPTEXECUTE command", id="args-twice"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 1, "a", "OUTPUTS", 1, "y", "OUTPUTS", 1, "z"),
                 "ERR Already Encountered OUTPUTS scope in AI.SCRIPTEXECUTE command", id="outputs-twice"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 1, "a", "FOO"),
                 "ERR Invalid AI.SCRIPTEXECUTE command. Unexpected argument: FOO", id="unknown-token"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 1, "a", "b", "OUTPUTS", 1, "y"),
                 "ERR Invalid AI.SCRIPTEXECUTE command. Unexpected argument: b", id="extra-input"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a", "b", "TIMEOUT"),
                 "ERR No value provided for TIMEOUT in AI.SCRIPTEXECUTE", id="timeout-no-value"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a", "b", "TIMEOUT", "soon"),
                 "ERR Invalid value for TIMEOUT", id="timeout-not-a-number"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a", "b", "TIMEOUT", 0),
                 "ERR Invalid value for TIMEOUT", id="timeout-zero"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a", "b", "TIMEOUT", -7),
                 "ERR Invalid value for TIMEOUT", id="timeout-negative"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a", "b", "TIMEOUT", 10, "OUTPUTS", 1, "y"),
                 "ERR Encountered problem parsing AI.SCRIPTEXECUTE", id="args-after-timeout"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "KEYS", 1),
                 "ERR Missing arguments after KEYS keyword", id="keys-count-only"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "KEYS"),
                 "ERR Missing arguments after KEYS keyword", id="keys-nothing"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "KEYS", "one", "k"),
                 "ERR Invalid or negative value found in number of KEYS", id="keys-count-not-numeric"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "KEYS", 0, "k"),
                 "ERR Invalid or negative value found in number of KEYS", id="keys-count-zero"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "KEYS", -1, "k"),
                 "ERR Invalid or negative value found in number of KEYS", id="keys-count-negative"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "KEYS", 3, "k1", "k2"),
                 "ERR Number of pre declared KEYS to be used in the command does not match the number of "
                 "given arguments", id="keys-too-few"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS"),
                 "ERR Invalid arguments provided to AI.SCRIPTEXECUTE", id="inputs-no-count"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 1, "a", "ARGS"),
                 "ERR Invalid arguments provided to AI.SCRIPTEXECUTE", id="args-no-count"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "KEYS", 1, "k", "OUTPUTS"),
                 "ERR Invalid arguments provided to AI.SCRIPTEXECUTE", id="outputs-no-count"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", "two", "a", "b"),
                 "ERR Invalid argument for inputs count in AI.SCRIPTEXECUTE", id="inputs-count-not-numeric"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 1, "a", "ARGS", "x", "y"),
                 "ERR Invalid argument for keys count in AI.SCRIPTEXECUTE", id="args-count-not-numeric"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 1, "a", "OUTPUTS", "x", "y"),
                 "ERR Invalid argument for outputs count in AI.SCRIPTEXECUTE", id="outputs-count-not-numeric"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 3, "a", "b"),
                 "ERR number of inputs to AI.SCRIPTEXECUTE command does not match the number of given arguments",
                 id="inputs-too-few"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 1, "a", "ARGS", 3, "x", "y"),
                 "ERR number of args to AI.SCRIPTEXECUTE command does not match the number of given arguments",
                 id="args-too-few"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 1, "a", "OUTPUTS", 3, "y", "z"),
                 "ERR number of outputs to AI.SCRIPTEXECUTE command does not match the number of given arguments",
                 id="outputs-too-few"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a", "nope", "OUTPUTS", 1, "y"),
                 TENSOR_EMPTY, id="input-missing"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a", "plain", "OUTPUTS", 1, "y"),
                 WRONGTYPE, id="input-is-string"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a", "m", "OUTPUTS", 1, "y"),
                 WRONGTYPE, id="input-is-model"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "plain"),
                 WRONGTYPE, id="output-is-string"),
]


@pytest.mark.parametrize("command, expected", EXECUTE_CASES)
def test_scriptexecute_refuses(shared_server: RedisServer, r: redis.Redis, command: tuple[object, ...],
                               expected: str) -> None:
    refused(shared_server, r, command, expected)
    # Parse errors count nothing: the one call is still_serves's.
    assert r.execute_command("AI.INFO", "s")[14:] == [b"calls", 1, b"errors", 0]


# ---------------------------------------------------------------------------
# scripts that fail while running

RUN_FAILURES = [
    # (command, exact error line or None, fragment that must appear)
    pytest.param(("AI.SCRIPTEXECUTE", "s", "nofn", "INPUTS", 1, "a", "OUTPUTS", 1, "y"),
                 "Function does not exist: nofn", id="function-missing"),
    pytest.param(("AI.SCRIPTRUN", "old", "add", "INPUTS", "a", "OUTPUTS", "y"),
                 "Wrong number of inputs provided to function: add", id="best-effort-too-few-inputs"),
    pytest.param(("AI.SCRIPTRUN", "old", "typed", "INPUTS", "a", "b", "OUTPUTS", "y"),
                 "Unsupported input type in function definition: typed", id="best-effort-int-parameter"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a", "b", "OUTPUTS", 2, "y", "z"),
                 "Function returned unexpected number of outputs - bar", id="too-many-outputs"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "number", "KEYS", 1, "k", "OUTPUTS", 1, "y"),
                 "Function returned non-tensor valuesnumber", id="non-tensor-return"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "boom", "KEYS", 1, "k", "INPUTS", 1, "a", "OUTPUTS", 1, "y"),
                 "boom: the script gave up", id="script-raises"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "mismatch", "INPUTS", 1, "a", "OUTPUTS", 1, "y"),
                 "The size of tensor a (2) must match the size of tensor b (5)", id="torch-error"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "read_key", "KEYS", 1, "nokey", "OUTPUTS", 1, "y"),
                 "", id="redis-key-missing"),  # GET gives None; int(str(None)) fails
    pytest.param(("AI.SCRIPTEXECUTE", "s", "no_model", "KEYS", 1, "nomodel", "INPUTS", 2, "a", "b",
                  "OUTPUTS", 1, "y"), "model key is empty", id="model-key-missing"),
    pytest.param(("AI.SCRIPTEXECUTE", "s", "no_model", "KEYS", 1, "plain", "INPUTS", 2, "a", "b",
                  "OUTPUTS", 1, "y"), "WRONGTYPE", id="model-key-wrong-type"),
]


@pytest.mark.parametrize("command, fragment", RUN_FAILURES)
def test_script_failing_at_run_time(shared_server: RedisServer, r: redis.Redis, command: tuple[object, ...],
                                    fragment: str) -> None:
    before = snapshot(r)
    line = error_line(shared_server, *command)
    assert fragment in line and "\n" not in line, line
    assert_intact(r, before)
    script = command[1].decode() if isinstance(command[1], bytes) else str(command[1])
    info = r.execute_command("AI.INFO", script)
    assert info[14:] == [b"calls", 1, b"errors", 1], info
    still_serves(r)


def test_entry_point_messages_have_no_err_prefix(shared_server: RedisServer, r: redis.Redis) -> None:
    before = snapshot(r)
    assert error_line(shared_server, "AI.SCRIPTSTORE", "x", "CPU", "ENTRY_POINTS", 1, "nope", "SOURCE",
                      SCRIPT) == "Function nope does not exist in the given script."
    assert_intact(r, before)


@pytest.mark.skipif("__import__('torch').cuda.is_available()", reason="this machine has CUDA")
def test_gpu_script_without_cuda(shared_server: RedisServer, r: redis.Redis) -> None:
    before = snapshot(r)
    line = error_line(shared_server, "AI.SCRIPTSTORE", "s", "GPU:0", "ENTRY_POINTS", 1, "bar", "SOURCE", SCRIPT)
    assert line.removeprefix("ERR ") == "GPU requested but Torch couldn't find CUDA"
    assert_intact(r, before)
    still_serves(r)


# ---------------------------------------------------------------------------
# AI.SCRIPTRUN (deprecated)

SCRIPTRUN_CASES = [
    pytest.param(("AI.SCRIPTRUN", "old"), "ERR wrong number of arguments for 'AI.SCRIPTRUN' command",
                 id="arity"),
    pytest.param(("AI.SCRIPTRUN", "nope", "add", "INPUTS", "a", "b", "OUTPUTS", "y"), SCRIPT_EMPTY,
                 id="script-missing"),
    pytest.param(("AI.SCRIPTRUN", "plain", "add", "INPUTS", "a", "b", "OUTPUTS", "y"), WRONGTYPE,
                 id="script-is-string"),
    pytest.param(("AI.SCRIPTRUN", "old", "add", "TIMEOUT", 10, "TIMEOUT", 20, "INPUTS", "a", "b", "OUTPUTS", "y"),
                 "ERR Already encountered an TIMEOUT section in SCRIPTRUN", id="timeout-twice"),
    pytest.param(("AI.SCRIPTRUN", "old", "add", "INPUTS", "a", "OUTPUTS", "y", "INPUTS", "b"),
                 "ERR Already encountered an INPUTS section in SCRIPTRUN", id="inputs-after-outputs"),
    pytest.param(("AI.SCRIPTRUN", "old", "add", "INPUTS", "a", "INPUTS", "b", "OUTPUTS", "y"),
                 "ERR Already encountered an INPUTS keyword in SCRIPTRUN", id="inputs-twice"),
    pytest.param(("AI.SCRIPTRUN", "old", "add", "INPUTS", "a", "b", "OUTPUTS", "y", "OUTPUTS", "z"),
                 "ERR Already encountered an OUTPUTS keyword in SCRIPTRUN", id="outputs-twice"),
    pytest.param(("AI.SCRIPTRUN", "old", "add", "INPUTS", "a", "b", "OUTPUTS", "$", "y"),
                 "ERR Encountered a variable size list of tensors outside of input section",
                 id="dollar-in-outputs"),
    pytest.param(("AI.SCRIPTRUN", "old", "add", "INPUTS", "a", "$", "b", "$", "a", "OUTPUTS", "y"),
                 "ERR Already encountered a variable size list of tensors", id="dollar-twice"),
    pytest.param(("AI.SCRIPTRUN", "old", "add", "FOO", "INPUTS", "a", "b", "OUTPUTS", "y"),
                 "ERR Unrecongnized parameter to SCRIPTRUN", id="token-before-inputs"),
    pytest.param(("AI.SCRIPTRUN", "old", "add", "INPUTS", "a", "nope", "OUTPUTS", "y"), TENSOR_EMPTY,
                 id="input-missing"),
    pytest.param(("AI.SCRIPTRUN", "old", "add", "INPUTS", "a", "plain", "OUTPUTS", "y"), WRONGTYPE,
                 id="input-is-string"),
]


@pytest.mark.parametrize("command, expected", SCRIPTRUN_CASES)
def test_scriptrun_refuses(shared_server: RedisServer, r: redis.Redis, command: tuple[object, ...],
                           expected: str) -> None:
    refused(shared_server, r, command, expected)


# ---------------------------------------------------------------------------
# AI.DAGEXECUTE / AI.DAGEXECUTE_RO / AI.DAGRUN / AI.DAGRUN_RO

MODEL_OP = ("|>", "AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "b", "OUTPUTS", 2, "s", "p")
DAG_CASES = [
    pytest.param(("AI.DAGEXECUTE", "LOAD", 1, "a", "|>"), "ERR missing arguments for 'AI.DAGEXECUTE' command",
                 id="dagexecute-arity"),
    pytest.param(("AI.DAGEXECUTE_RO", "LOAD", 1, "a", "|>"),
                 "ERR missing arguments for 'AI.DAGEXECUTE_RO' command", id="dagexecute-ro-arity"),
    pytest.param(("AI.DAGRUN", "|>", "AI.TENSORGET"), "ERR wrong number of arguments for 'AI.DAGRUN' command",
                 id="dagrun-arity"),
    pytest.param(("AI.DAGRUN_RO", "|>", "AI.TENSORGET"),
                 "ERR wrong number of arguments for 'AI.DAGRUN_RO' command", id="dagrun-ro-arity"),
    pytest.param(("AI.DAGEXECUTE", "ROUTING", "a", "PERSIST", 1, "a", "BAD_ARG"),
                 "ERR Invalid DAG command. Unexpected argument:  BAD_ARG", id="unexpected-argument"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", INT64_MAX, "a", "|>", "AI.TENSORGET", "a"),
                 "ERR number of keys to LOAD into DAG does not match the number of given arguments",
                 id="load-count-int64-max"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", 2**32 + 1, "a", "|>", "AI.TENSORGET", "a"),
                 "ERR number of keys to LOAD into DAG does not match the number of given arguments",
                 id="load-count-2-32-plus-1"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", BEYOND_INT64, "a", "|>", "AI.TENSORGET", "a"),
                 "ERR invalid or negative value found in number of keys to LOAD", id="load-count-beyond-int64"),
    pytest.param(("AI.DAGEXECUTE", "PERSIST", 2**31, "y", "|>", "AI.TENSORSET", "y", "FLOAT", 1, "VALUES", 1),
                 "ERR number of keys to PERSIST after DAG execution does not match the number of given arguments",
                 id="persist-count-2-31"),
    pytest.param(("AI.DAGEXECUTE", "PERSIST", -(2**63), "y", "|>", "AI.TENSORSET", "y", "FLOAT", 1, "VALUES", 1),
                 "ERR invalid or negative value found in number of keys to PERSIST", id="persist-count-int64-min"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.MODELEXECUTE", "m", "INPUTS", INT64_MAX, "a",
                  "OUTPUTS", 1, "s"), "Number of keys given as INPUTS here does not match model definition",
                 id="model-op-input-count-int64-max"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", INT64_MAX,
                  "a"), "ERR number of inputs to AI.SCRIPTEXECUTE command does not match the number of given "
                 "arguments", id="script-op-input-count-int64-max"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", 1, "a", "LOAD", 1, "b", "|>", "AI.TENSORGET", "a"),
                 "ERR Invalid DAG command. Unexpected argument:  LOAD", id="load-twice"),
    pytest.param(("AI.DAGEXECUTE", "ROUTING", "a", "ROUTING", "b", "|>", "AI.TENSORGET", "a"),
                 "ERR Invalid DAG command. Unexpected argument:  ROUTING", id="routing-twice"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.TENSORGET", "a", "|>"),
                 "ERR Invalid DAG command. Unexpected argument:  |>", id="trailing-arrow"),
    pytest.param(("AI.DAGEXECUTE", "TIMEOUT", 100, "|>", "AI.TENSORSET", "x", "FLOAT", 1),
                 "ERR AI.DAGEXECUTE and AI.DAGEXECUTE_RO commands must contain at least one out of ROUTING, "
                 "LOAD, PERSIST keywords", id="no-load-persist-routing"),
    pytest.param(("AI.DAGEXECUTE_RO", "|>", "AI.TENSORSET", "x", "FLOAT", 1, 2, "VALUES", 5, 10),
                 "ERR AI.DAGEXECUTE and AI.DAGEXECUTE_RO commands must contain at least one out of ROUTING, "
                 "LOAD, PERSIST keywords", id="ro-no-load-persist-routing"),
    pytest.param(("AI.DAGEXECUTE", "ROUTING", "a", "LOAD", 1, "a"), "ERR DAG is empty", id="no-ops"),
    pytest.param(("AI.DAGEXECUTE", "PERSIST", 2, "x", "y", "LOAD"),
                 "ERR missing arguments after LOAD keyword in DAG command", id="load-nothing"),
    pytest.param(("AI.DAGEXECUTE", "PERSIST", 2, "x", "y", "LOAD", 1),
                 "ERR missing arguments after LOAD keyword in DAG command", id="load-count-only"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", "notnumber", "|>", "AI.TENSORGET", "a", "VALUES"),
                 "ERR invalid or negative value found in number of keys to LOAD", id="load-count-not-numeric"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", 0, "a", "|>", "AI.TENSORGET", "a", "VALUES"),
                 "ERR invalid or negative value found in number of keys to LOAD", id="load-count-zero"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", -2, "a", "b", "|>", "AI.TENSORGET", "a", "VALUES"),
                 "ERR invalid or negative value found in number of keys to LOAD", id="load-count-negative"),
    pytest.param(("AI.DAGEXECUTE", "ROUTING", "a", "LOAD", 2, "a"),
                 "ERR number of keys to LOAD into DAG does not match the number of given arguments",
                 id="load-too-few"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", 2, "a", "|>", "AI.TENSORGET", "a", "VALUES"),
                 "ERR number of keys to LOAD into DAG does not match the number of given arguments",
                 id="load-too-few-before-op"),
    pytest.param(("AI.DAGEXECUTE", "ROUTING", "nope", "LOAD", 1, "nope"), TENSOR_EMPTY, id="load-missing-key"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", 2, "a", "nope", "|>", "AI.TENSORGET", "a"), TENSOR_EMPTY,
                 id="load-second-key-missing"),
    pytest.param(("AI.DAGEXECUTE", "ROUTING", "plain", "LOAD", 1, "plain"), WRONGTYPE, id="load-string"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", 1, "m", "|>", "AI.TENSORGET", "m"), WRONGTYPE, id="load-model"),
    pytest.param(("AI.DAGEXECUTE", "ROUTING", "a", "LOAD", 1, "a", "PERSIST"),
                 "ERR missing arguments after PERSIST keyword in DAG command", id="persist-nothing"),
    pytest.param(("AI.DAGEXECUTE", "ROUTING", "a", "LOAD", 1, "a", "PERSIST", 1),
                 "ERR missing arguments after PERSIST keyword in DAG command", id="persist-count-only"),
    pytest.param(("AI.DAGEXECUTE", "ROUTING", "a", "PERSIST", "not_number", "a"),
                 "ERR invalid or negative value found in number of keys to PERSIST", id="persist-count-not-numeric"),
    pytest.param(("AI.DAGEXECUTE", "ROUTING", "a", "PERSIST", 0, "a"),
                 "ERR invalid or negative value found in number of keys to PERSIST", id="persist-count-zero"),
    pytest.param(("AI.DAGEXECUTE", "ROUTING", "a", "PERSIST", 2, "a"),
                 "ERR number of keys to PERSIST after DAG execution does not match the number of given arguments",
                 id="persist-too-few"),
    pytest.param(("AI.DAGEXECUTE", "PERSIST", 2, "y", "|>", "AI.TENSORSET", "y", "FLOAT", 1),
                 "ERR number of keys to PERSIST after DAG execution does not match the number of given arguments",
                 id="persist-too-few-before-op"),
    pytest.param(("AI.DAGEXECUTE", "PERSIST", 2, "y", "y", "|>", "AI.TENSORSET", "y", "FLOAT", 1),
                 "ERR PERSIST keys must be unique", id="persist-twice-the-same"),
    pytest.param(("AI.DAGEXECUTE", "PERSIST", 1, "zz", "|>", "AI.TENSORSET", "y", "FLOAT", 1),
                 "ERR PERSIST key cannot be found in DAG", id="persist-never-produced"),
    pytest.param(("AI.DAGEXECUTE_RO", "PERSIST", 1, "y", "|>", "AI.TENSORSET", "y", "FLOAT", 1, 2, "VALUES", 5, 10),
                 "ERR PERSIST cannot be specified in a read-only DAG", id="ro-persist"),
    pytest.param(("AI.DAGRUN_RO", "PERSIST", 1, "y", "|>", "AI.TENSORSET", "y", "FLOAT", 1),
                 "ERR PERSIST cannot be specified in a read-only DAG", id="dagrun-ro-persist"),
    pytest.param(("AI.DAGEXECUTE", "PERSIST", 3, "a", "b", "c", "ROUTING"), "ERR Missing ROUTING value",
                 id="routing-no-value"),
    pytest.param(("AI.DAGEXECUTE", "ROUTING", "a", "PERSIST", 1, "a", "TIMEOUT"),
                 "ERR No value provided for TIMEOUT", id="timeout-no-value"),
    pytest.param(("AI.DAGEXECUTE", "ROUTING", "a", "PERSIST", 1, "a", "TIMEOUT", "not_number"),
                 "ERR Invalid value for TIMEOUT", id="timeout-not-a-number"),
    pytest.param(("AI.DAGEXECUTE", "ROUTING", "a", "|>", "AI.NOCOMMAND", "a", "FLOAT", 1),
                 "Unsupported command within DAG", id="unsupported-op"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "SET", "x", "1"), "Unsupported command within DAG",
                 id="redis-command-as-op"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.MODELRUN", "m", "INPUTS", "a", "a", "OUTPUTS",
                  "s", "p"), "Deprecated AI.MODELRUN cannot be used in AI.DAGEXECUTE command", id="modelrun-op"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.SCRIPTRUN", "old", "add", "INPUTS", "a", "a",
                  "OUTPUTS", "y"), "Deprecated AI.SCRIPTRUN cannot be used in AI.DAGEXECUTE command",
                 id="scriptrun-op"),
    pytest.param(("AI.DAGRUN", "LOAD", 1, "a", *MODEL_OP[:5], "a", "a", *MODEL_OP[7:]),
                 "AI.MODELEXECUTE cannot be used in a deprecated AI.DAGRUN command", id="dagrun-modelexecute"),
    pytest.param(("AI.DAGRUN", "LOAD", 1, "a", "|>", "AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a", "a",
                  "OUTPUTS", 1, "y"), "AI.SCRIPTEXECUTE cannot be used in a deprecated AI.DAGRUN command",
                 id="dagrun-scriptexecute"),
    pytest.param(("AI.DAGEXECUTE_RO", "LOAD", 1, "a", "|>", "AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a",
                  "a"), "ERR AI.SCRIPTEXECUTE command cannot be specified in a read-only DAG", id="ro-scriptexecute"),
    pytest.param(("AI.DAGEXECUTE", "ROUTING", "a", "|>", "AI.TENSORSET", "a", "FLOAT", 1, "|>", "AI.TENSORGET"),
                 "wrong number of arguments for 'AI.TENSORGET' command", id="op-tensorget-arity"),
    pytest.param(("AI.DAGEXECUTE", "ROUTING", "a", "|>", "AI.TENSORSET", "a", "FLOAT", 1, "|>", "AI.TENSORGET",
                  "a", "META", "BLOB", "extra"),
                 "wrong number of arguments for 'AI.TENSORGET' command", id="op-tensorget-too-many"),
    pytest.param(("AI.DAGEXECUTE", "ROUTING", "a", "|>", "AI.TENSORSET", "a", "FLOAT", 1, "|>", "AI.TENSORSET"),
                 "wrong number of arguments for 'AI.TENSORSET' command", id="op-tensorset-arity"),
    pytest.param(("AI.DAGEXECUTE", "ROUTING", "a", "|>", "AI.TENSORSET", "x", "INT128", 1),
                 "ERR invalid data type", id="op-tensorset-bad-type"),
    pytest.param(("AI.DAGEXECUTE", "ROUTING", "a", "|>", "AI.TENSORSET", "x", "FLOAT", 2, "VALUES", 1),
                 "ERR wrong number of values was given in 'AI.TENSORSET' command", id="op-tensorset-few-values"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.TENSORGET", "a", "FOO"),
                 "ERR unsupported data format", id="op-tensorget-bad-format"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.TENSORGET", "b", "VALUES"),
                 "ERR INPUT key cannot be found in DAG", id="op-tensorget-not-in-dag"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", 1, "a", *MODEL_OP),
                 "ERR INPUT key cannot be found in DAG", id="model-input-only-in-keyspace"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", 2, "a", "b", *MODEL_OP, "TIMEOUT", 100),
                 "ERR TIMEOUT not allowed within a DAG command", id="model-op-timeout"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", 2, "a", "b", "|>", "AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a",
                  "b", "OUTPUTS", 1, "y", "TIMEOUT", 100),
                 "ERR TIMEOUT not allowed within a DAG command", id="script-op-timeout"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.MODELEXECUTE", "nomodel", "INPUTS", 1, "a",
                  "OUTPUTS", 1, "y"), "ERR model key is empty", id="model-missing"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.MODELEXECUTE", "plain", "INPUTS", 1, "a",
                  "OUTPUTS", 1, "y"), WRONGTYPE, id="model-is-string"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.MODELEXECUTE", "m", "INPUTS", 1, "a",
                  "OUTPUTS", 2, "s", "p"), "Number of keys given as INPUTS here does not match model definition",
                 id="model-input-count"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "a",
                  "OUTPUTS", 1, "s"), "Number of keys given as OUTPUTS here does not match model definition",
                 id="model-output-count"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.SCRIPTEXECUTE", "nope", "bar", "INPUTS", 1, "a"),
                 SCRIPT_EMPTY, id="script-missing"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.SCRIPTEXECUTE", "m", "bar", "INPUTS", 1, "a"),
                 WRONGTYPE, id="script-is-model"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.SCRIPTEXECUTE", "s", "INPUTS", 1, "a",
                  "OUTPUTS", 1, "y"), "ERR Invalid AI.SCRIPTEXECUTE command. Unexpected argument: 1",
                 id="script-op-function-missing"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a",
                  "b", "OUTPUTS", 1, "y"), "ERR INPUT key cannot be found in DAG", id="script-input-not-in-dag"),
    pytest.param(("AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a",
                  "a", "OUTPUTS", 1, "y", "OUTPUTS", 1, "z"),
                 "ERR Already Encountered OUTPUTS scope in AI.SCRIPTEXECUTE command", id="script-op-outputs-twice"),
    pytest.param(("AI.DAGRUN", "LOAD", 1, "a", "|>", "AI.SCRIPTRUN", "old", "add", "INPUTS", "a", "OUTPUTS",
                  "$", "y"), "ERR Encountered a variable size list of tensors outside of input section",
                 id="dagrun-scriptrun-dollar-in-outputs"),
    pytest.param(("AI.DAGRUN", "LOAD", 1, "a", "|>", "AI.MODELRUN", "m", "INPUTS", "a", "OUTPUTS", "s", "p"),
                 "Number of keys given as INPUTS here does not match model definition",
                 id="dagrun-modelrun-input-count"),
]


@pytest.mark.parametrize("command, expected", DAG_CASES)
def test_dag_commands_refuse(shared_server: RedisServer, r: redis.Redis, command: tuple[object, ...],
                             expected: str) -> None:
    refused(shared_server, r, command, expected)
    # Parse errors count nothing.
    assert r.execute_command("AI.INFO", "m")[14:] == [b"calls", 0, b"errors", 0]


def test_dag_run_failure_is_an_element_and_writes_nothing(r: redis.Redis) -> None:
    before = snapshot(r)
    reply = r.execute_command("AI.DAGEXECUTE", "LOAD", 2, "a", "b", "PERSIST", 1, "y", "|>",
                              "AI.SCRIPTEXECUTE", "s", "boom", "INPUTS", 1, "a", "OUTPUTS", 1, "t",
                              "|>", "AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "t", "b", "OUTPUTS", 1, "y",
                              "|>", "AI.TENSORGET", "y", "VALUES")
    assert len(reply) == 3
    assert isinstance(reply[0], redis.ResponseError) and "boom: the script gave up" in str(reply[0])
    assert reply[1:] == [b"NA", b"NA"]
    assert_intact(r, before)
    still_serves(r)


def test_largest_timeouts_mean_no_deadline(r: redis.Redis) -> None:
    """TIMEOUT 2^63-1 is a valid, if patient, deadline: the run finishes, where a sum that
    wrapped into the past would answer TIMEDOUT."""
    assert r.execute_command("AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "y",
                             "TIMEOUT", INT64_MAX) == b"OK"
    assert r.execute_command("AI.TENSORGET", "y", "VALUES") == [b"4", b"7"]
    reply = r.execute_command("AI.DAGEXECUTE", "LOAD", 2, "a", "b", "PERSIST", 1, "z", "TIMEOUT", INT64_MAX,
                              "|>", "AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "z")
    assert reply == [b"OK"]
    assert r.execute_command("AI.TENSORGET", "z", "VALUES") == [b"4", b"7"]
