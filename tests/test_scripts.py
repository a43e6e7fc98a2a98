"""TorchScript scripts next to the data: AI.SCRIPTSTORE / SCRIPTSET / SCRIPTGET /
SCRIPTDEL / SCRIPTEXECUTE / SCRIPTRUN / _SCRIPTSCAN and AI.INFO for scripts.

User stories:
- a developer stores a script with its entry points and reads it back (META
  and SOURCE, in RedisAI's order), lists it, inspects its run statistics and
  deletes it;
- SCRIPTEXECUTE hands a script its INPUTS tensors, its KEYS and its ARGS, and
  writes the tensors it returns to OUTPUTS (one, several, or none);
- old clients keep SCRIPTSET + SCRIPTRUN, whose functions run in RedisAI's
  best-effort mode, `$` variadic inputs included;
- inside a script, redis.execute / redis.asList talk to Redis (results used,
  errors propagated with RedisAI's prefix) and redisAI.model_execute runs a
  stored model;
- what a script writes through redis.execute reaches replicas and the AOF as
  those commands, its outputs as AI.TENSORSET; the script itself never runs
  on a replica;
- scripts survive SAVE + restart, AOF (with and without a rewrite) and DEBUG
  RELOAD, and still run;
- many clients running scripts that call Redis, while others write and
  BGSAVE runs, never deadlock the GIL against the Redis lock.

Texts come from reference sections 3 and 6; redis-py strips a leading "ERR ".
Most stories share one server (FLUSHALL before each); the ones that restart
or replicate start their own.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import redis

import model_builders as mb
from conftest import RedisServer, ServerFactory, wait_until

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
IN_TRANSACTION = "Cannot run RedisAI command within a transaction or a LUA script"
CALL_ERROR = "Redis command returned an error: "

_NUMPY_OF = {
    "FLOAT": np.float32, "DOUBLE": np.float64, "INT8": np.int8, "INT16": np.int16,
    "INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8, "UINT16": np.uint16, "BOOL": np.bool_,
}
_NAME_OF = {np.dtype(v): k for k, v in _NUMPY_OF.items()}

# Entry points follow def fn(tensors: List[Tensor], keys: List[str], args: List[str]).
SCRIPT = '''
def bar(tensors: List[Tensor], keys: List[str], args: List[str]):
    a = tensors[0]
    b = tensors[1]
    return a + b

def scaled(tensors: List[Tensor], keys: List[str], args: List[str]):
    factor = float(args[0])
    shift = int(args[1])
    return tensors[0] * factor, tensors[0] + shift

def as_list(tensors: List[Tensor], keys: List[str], args: List[str]):
    return [tensors[0], tensors[0] * 2, tensors[0] * 3]

def concat_all(tensors: List[Tensor], keys: List[str], args: List[str]):
    return torch.cat(tensors, dim=0)

def mark(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("SET", keys[0], "marked")

def helper_not_entry(a, b):
    return a - b
'''
ENTRY_POINTS = ["bar", "scaled", "as_list", "concat_all", "mark"]

# The calls RedisAI's own redis_scripts.py makes, each result used.
REDIS_SCRIPT = '''
def string_int(v: Any):
    return torch.tensor(int(str(v)))

def int_list(v: Any):
    values = redis.asList(v)
    parts = [torch.tensor(int(str(x))).reshape(1, 1) for x in values]
    return torch.cat(parts, dim=0)

def set_get(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("SET", keys[0], args[0])
    res = redis.execute("GET", keys[0])
    return string_int(res)

def float_set_get(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("SET", keys[0], args[0])
    res = redis.execute("GET", keys[0])
    return torch.tensor(float(str(res)))

def set_incr(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("SET", keys[0], args[0])
    res = redis.execute("INCR", keys[0])
    return string_int(res)

def set_del(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("SET", keys[0], args[0])
    removed = redis.execute("DEL", keys[0])
    after = redis.execute("GET", keys[0])
    missing = 0
    if str(after) == "None":  # TorchScript folds `x is None` to False for an Any
        missing = 1
    return torch.tensor([int(str(removed)), missing])

def rpush_lrange(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("RPUSH", keys[0], args[0], args[1], args[2])
    res = redis.execute("LRANGE", keys[0], "0", "-1")
    return int_list(res)

def hset_hvals(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("HSET", [keys[0]] + args)
    res = redis.execute("HVALS", keys[0])
    return int_list(res)

def list_len(tensors: List[Tensor], keys: List[str], args: List[str]):
    res = redis.execute("LRANGE", keys[0], "0", "-1")
    return torch.tensor(len(redis.asList(res)))

def missing_argument(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("SET", keys[0])
    return tensors[0]

def unknown_command(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("NOSUCHCOMMAND", keys[0])
    return tensors[0]

def wrong_type(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("LPUSH", keys[0], "x")
    return tensors[0]

def write_and_output(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("SET", keys[0], args[0])
    redis.execute("INCR", keys[1])
    redis.execute("RPUSH", keys[2], "a", "b")
    return tensors[0] * 2

def run_model(tensors: List[Tensor], keys: List[str], args: List[str]):
    outputs = redisAI.model_execute(keys[0], tensors, 2)
    return outputs[0], outputs[1]
'''
REDIS_ENTRY_POINTS = ["set_get", "float_set_get", "set_incr", "set_del", "rpush_lrange", "hset_hvals",
                      "list_len", "missing_argument", "unknown_command", "wrong_type",
                      "write_and_output", "run_model"]


# ---------------------------------------------------------------------------
# helpers


def tensorset(r: redis.Redis, key: str, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array)
    assert r.execute_command("AI.TENSORSET", key, _NAME_OF[array.dtype], *array.shape, "BLOB",
                             array.tobytes()) == b"OK"


def tensorget(r: redis.Redis, key: str) -> np.ndarray:
    reply = r.execute_command("AI.TENSORGET", key, "META", "BLOB")
    assert reply[0] == b"dtype" and reply[2] == b"shape" and reply[4] == b"blob", reply
    return np.frombuffer(reply[5], dtype=_NUMPY_OF[reply[1].decode()]).reshape(reply[3])


def scriptexecute(r: redis.Redis, key: str, fn: str, *, keys: list[str] | None = None,
                  inputs: list[str] | None = None, args: list[object] | None = None,
                  outputs: list[str] | None = None, timeout: int | None = None) -> object:
    command: list[object] = ["AI.SCRIPTEXECUTE", key, fn]
    for name, values in (("KEYS", keys), ("INPUTS", inputs), ("ARGS", args), ("OUTPUTS", outputs)):
        if values is not None:
            command += [name, len(values), *values]
    if timeout is not None:
        command += ["TIMEOUT", timeout]
    return r.execute_command(*command)


def run_info(r: redis.Redis, key: str) -> dict[str, object]:
    reply = r.execute_command("AI.INFO", key)
    assert len(reply) == 18, reply
    assert reply[0::2] == [b"key", b"type", b"backend", b"device", b"tag", b"duration", b"samples",
                           b"calls", b"errors"], reply
    return {reply[i].decode(): reply[i + 1] for i in range(0, 18, 2)}


def store(r: redis.Redis, key: str = "s", source: str = SCRIPT, entry_points: list[str] | None = None,
          device: str = "CPU", tag: str | None = None) -> None:
    entry_points = ENTRY_POINTS if entry_points is None else entry_points
    tag_args = ["TAG", tag] if tag is not None else []
    assert r.execute_command("AI.SCRIPTSTORE", key, device, *tag_args, "ENTRY_POINTS", len(entry_points),
                             *entry_points, "SOURCE", source) == b"OK"


def error_of(call: Callable[[], object]) -> str:
    with pytest.raises(redis.ResponseError) as err:
        call()
    return str(err.value)


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def command_calls(r: redis.Redis, command: str) -> int:
    stats = r.info("commandstats").get(f"cmdstat_{command.lower()}")
    return int(stats["calls"]) if stats else 0


# ---------------------------------------------------------------------------
# fixtures


@pytest.fixture
def r(shared_server: RedisServer, request: pytest.FixtureRequest) -> redis.Redis:
    request.node.redis_servers = [shared_server]  # conftest attaches its log on failure
    client = shared_server.client(socket_timeout=60)
    client.flushall()
    return client


# ---------------------------------------------------------------------------
# store, get, scan, info, delete


def test_scriptstore_then_scriptget_meta_and_source(r: redis.Redis) -> None:
    store(r, "s", tag="v1")
    meta = [b"device", b"CPU", b"tag", b"v1", b"Entry Points", [e.encode() for e in ENTRY_POINTS]]
    # No argument, and META SOURCE together: 8 elements in this exact order.
    assert r.execute_command("AI.SCRIPTGET", "s") == meta + [b"source", SCRIPT.encode()]
    assert r.execute_command("AI.SCRIPTGET", "s", "META", "SOURCE") == meta + [b"source", SCRIPT.encode()]
    assert r.execute_command("AI.SCRIPTGET", "s", "meta") == meta
    assert r.execute_command("AI.SCRIPTGET", "s", "SOURCE") == SCRIPT.encode()
    assert r.type("s") == b"AI_SCRIPT"
    # The script's size is accounted for.
    assert r.memory_usage("s") >= len(SCRIPT)


def test_scriptstore_without_tag_and_overwrite(r: redis.Redis) -> None:
    store(r, "s", entry_points=["bar"])
    assert r.execute_command("AI.SCRIPTGET", "s", "META") == [
        b"device", b"CPU", b"tag", b"", b"Entry Points", [b"bar"]]
    tensorset(r, "x", np.array([1, 2], dtype=np.float32))
    assert scriptexecute(r, "s", "bar", inputs=["x", "x"], outputs=["y"]) == b"OK"
    # Storing again replaces the script, its tag, its entry points and its statistics.
    store(r, "s", entry_points=["scaled", "bar"], tag="v2", device="cpu")
    assert r.execute_command("AI.SCRIPTGET", "s", "META") == [
        b"device", b"cpu", b"tag", b"v2", b"Entry Points", [b"scaled", b"bar"]]
    info = run_info(r, "s")
    assert (info["device"], info["tag"], info["calls"]) == (b"cpu", b"v2", 0)
    assert scriptexecute(r, "s", "scaled", inputs=["x"], args=["3", "1"], outputs=["p", "q"]) == b"OK"
    np.testing.assert_array_equal(tensorget(r, "p"), [3, 6])
    np.testing.assert_array_equal(tensorget(r, "q"), [2, 3])


def test_scriptset_stores_a_script_without_entry_points(r: redis.Redis) -> None:
    assert r.execute_command("AI.SCRIPTSET", "old", "CPU", "TAG", "legacy", "SOURCE", SCRIPT) == b"OK"
    assert r.execute_command("AI.SCRIPTSET", "old2", "CPU", "SOURCE", SCRIPT) == b"OK"
    assert r.execute_command("AI.SCRIPTGET", "old", "META") == [
        b"device", b"CPU", b"tag", b"legacy", b"Entry Points", []]
    assert r.execute_command("AI.SCRIPTGET", "old2") == [
        b"device", b"CPU", b"tag", b"", b"Entry Points", [], b"source", SCRIPT.encode()]


def test_scriptscan_lists_scripts_with_their_tags(r: redis.Redis) -> None:
    assert r.execute_command("AI._SCRIPTSCAN") == []
    store(r, "s1", tag="one")
    store(r, "s2")
    r.execute_command("AI.SCRIPTSET", "s3", "CPU", "TAG", "three", "SOURCE", SCRIPT)
    r.execute_command("AI.MODELSTORE", "m", "TORCH", "CPU", "TAG", "a model", "BLOB", mb.torch_add())
    assert sorted(map(tuple, r.execute_command("AI._SCRIPTSCAN"))) == [
        (b"s1", b"one"), (b"s2", b""), (b"s3", b"three")]
    # Models are listed by _MODELSCAN only.
    assert r.execute_command("AI._MODELSCAN") == [[b"m", b"a model"]]
    r.execute_command("AI.SCRIPTDEL", "s2")
    assert sorted(map(tuple, r.execute_command("AI._SCRIPTSCAN"))) == [(b"s1", b"one"), (b"s3", b"three")]


def test_ai_info_counts_script_runs_and_resets(r: redis.Redis) -> None:
    store(r, "s", tag="t")
    # Statistics exist from the moment the script is stored.
    assert run_info(r, "s") == {"key": b"s", "type": b"SCRIPT", "backend": b"TORCH", "device": b"CPU",
                                "tag": b"t", "duration": 0, "samples": -1, "calls": 0, "errors": 0}
    tensorset(r, "a", np.array([[1, 2], [3, 4]], dtype=np.float32))
    tensorset(r, "c", np.array([1, 2, 3], dtype=np.float32))
    for _ in range(3):
        assert scriptexecute(r, "s", "bar", inputs=["a", "a"], outputs=["y"]) == b"OK"
    with pytest.raises(redis.ResponseError):  # shapes [2, 2] and [3] do not add up
        scriptexecute(r, "s", "bar", inputs=["a", "c"], outputs=["y"])
    info = run_info(r, "s")
    # Scripts always report samples -1; a failed run counts a call and an error.
    assert (info["type"], info["backend"], info["samples"], info["calls"], info["errors"]) == (
        b"SCRIPT", b"TORCH", -1, 4, 1)
    assert isinstance(info["duration"], int) and info["duration"] > 0
    assert r.execute_command("AI.INFO", "s", "RESETSTAT") == b"OK"
    info = run_info(r, "s")
    assert (info["duration"], info["calls"], info["errors"]) == (0, 0, 0)


def test_scriptdel_removes_script_and_statistics(r: redis.Redis) -> None:
    store(r, "s")
    assert r.execute_command("AI.SCRIPTDEL", "s") == b"OK"
    assert r.exists("s") == 0
    assert error_of(lambda: r.execute_command("AI.SCRIPTGET", "s")) == "script key is empty"
    assert error_of(lambda: r.execute_command("AI.INFO", "s")) == "cannot find run info for key"
    assert error_of(lambda: r.execute_command("AI.SCRIPTDEL", "s")) == "script key is empty"
    assert r.execute_command("AI._SCRIPTSCAN") == []


def test_dump_restore_copies_a_runnable_script(r: redis.Redis) -> None:
    store(r, "s", tag="dumped")
    payload = r.dump("s")
    assert r.restore("s2", 0, payload) == b"OK"
    assert r.execute_command("AI.SCRIPTGET", "s2") == r.execute_command("AI.SCRIPTGET", "s")
    tensorset(r, "a", np.array([1, 2], dtype=np.float32))
    assert scriptexecute(r, "s2", "bar", inputs=["a", "a"], outputs=["y"]) == b"OK"
    np.testing.assert_array_equal(tensorget(r, "y"), [2, 4])
    assert run_info(r, "s2")["calls"] == 1


# ---------------------------------------------------------------------------
# SCRIPTEXECUTE


def test_scriptexecute_inputs_keys_args_and_outputs(r: redis.Redis) -> None:
    store(r, "s")
    tensorset(r, "a", np.array([[1, 2], [3, 4]], dtype=np.float32))
    tensorset(r, "b", np.array([[10, 20], [30, 40]], dtype=np.float32))
    assert scriptexecute(r, "s", "bar", keys=["s"], inputs=["a", "b"], outputs=["c"]) == b"OK"
    np.testing.assert_array_equal(tensorget(r, "c"), [[11, 22], [33, 44]])
    assert r.execute_command("AI.TENSORGET", "c", "META") == [b"dtype", b"FLOAT", b"shape", [2, 2]]

    # ARGS arrive as strings and the script converts them; a tuple gives two outputs.
    assert scriptexecute(r, "s", "scaled", inputs=["a"], args=["0.5", "7"], outputs=["half", "plus"]) == b"OK"
    np.testing.assert_array_equal(tensorget(r, "half"), [[0.5, 1], [1.5, 2]])
    np.testing.assert_array_equal(tensorget(r, "plus"), [[8, 9], [10, 11]])

    # A List[Tensor] return value gives as many outputs.
    assert scriptexecute(r, "s", "as_list", inputs=["a"], outputs=["l1", "l2", "l3"]) == b"OK"
    np.testing.assert_array_equal(tensorget(r, "l3"), [[3, 6], [9, 12]])

    # Any number of inputs; an output may overwrite an input tensor.
    assert scriptexecute(r, "s", "concat_all", inputs=["a", "b", "a"], outputs=["a"]) == b"OK"
    assert tensorget(r, "a").shape == (6, 2)

    # Integer tensors keep their type.
    tensorset(r, "i", np.array([1, 2, 3], dtype=np.int64))
    assert scriptexecute(r, "s", "bar", inputs=["i", "i"], outputs=["j"]) == b"OK"
    assert r.execute_command("AI.TENSORGET", "j", "META", "VALUES") == [
        b"dtype", b"INT64", b"shape", [3], b"values", [2, 4, 6]]


def test_scriptexecute_scopes_in_any_order_with_timeout(r: redis.Redis) -> None:
    store(r, "s")
    tensorset(r, "a", np.array([1, 2], dtype=np.float32))
    # After the first KEYS or INPUTS scope the others may come in any order.
    assert r.execute_command("AI.SCRIPTEXECUTE", "s", "scaled", "INPUTS", 1, "a", "OUTPUTS", 2, "p", "q",
                             "ARGS", 2, "2", "0", "TIMEOUT", 5000) == b"OK"
    np.testing.assert_array_equal(tensorget(r, "p"), [2, 4])
    assert r.execute_command("AI.SCRIPTEXECUTE", "s", "bar", "KEYS", 1, "k", "OUTPUTS", 1, "z",
                             "INPUTS", 2, "a", "a") == b"OK"
    np.testing.assert_array_equal(tensorget(r, "z"), [2, 4])
    # Keywords are case-insensitive.
    assert r.execute_command("AI.SCRIPTEXECUTE", "s", "bar", "inputs", 2, "a", "a", "outputs", 1, "z2",
                             "timeout", 100) == b"OK"
    np.testing.assert_array_equal(tensorget(r, "z2"), [2, 4])


def test_scriptexecute_without_outputs_runs_void_function(r: redis.Redis) -> None:
    store(r, "s")
    assert scriptexecute(r, "s", "mark", keys=["flag"]) == b"OK"
    assert r.get("flag") == b"marked"
    # A function's return value is ignored when there are no OUTPUTS.
    tensorset(r, "a", np.array([1], dtype=np.float32))
    before = set(r.keys("*"))
    assert scriptexecute(r, "s", "bar", inputs=["a", "a"]) == b"OK"
    assert set(r.keys("*")) == before


def test_scriptexecute_output_onto_a_non_tensor_key_is_wrongtype(r: redis.Redis) -> None:
    store(r, "s")
    tensorset(r, "a", np.array([1, 2], dtype=np.float32))
    r.set("plain", "keep")
    assert error_of(lambda: scriptexecute(r, "s", "bar", inputs=["a", "a"], outputs=["plain"])) == WRONGTYPE
    assert r.get("plain") == b"keep"


def test_script_outputs_keep_dtype_and_shape_and_inputs_stay_untouched(r: redis.Redis) -> None:
    source = '''
def inplace(tensors: List[Tensor], keys: List[str], args: List[str]):
    t = tensors[0]
    t.add_(100)
    return t

def boolean(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] > 1

def scalar(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0].sum()

def transposed(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0].t()
'''
    store(r, "s", source=source, entry_points=["inplace", "boolean", "scalar", "transposed"])
    tensorset(r, "a", np.array([1, 2], dtype=np.float32))
    tensorset(r, "mat", np.arange(1, 7, dtype=np.int32).reshape(2, 3))
    # A script that changes its input in place changes its own copy, not the stored tensor.
    assert scriptexecute(r, "s", "inplace", inputs=["a"], outputs=["o"]) == b"OK"
    np.testing.assert_array_equal(tensorget(r, "o"), [101, 102])
    np.testing.assert_array_equal(tensorget(r, "a"), [1, 2])
    assert scriptexecute(r, "s", "boolean", inputs=["a"], outputs=["o"]) == b"OK"
    assert r.execute_command("AI.TENSORGET", "o", "META", "VALUES") == [
        b"dtype", b"BOOL", b"shape", [2], b"values", [0, 1]]
    # A 0-dim result is a tensor with shape [].
    assert scriptexecute(r, "s", "scalar", inputs=["a"], outputs=["o"]) == b"OK"
    assert r.execute_command("AI.TENSORGET", "o", "META", "VALUES") == [
        b"dtype", b"FLOAT", b"shape", [], b"values", [b"3"]]
    # A non-contiguous result (a transpose) is stored in row-major order.
    assert scriptexecute(r, "s", "transposed", inputs=["mat"], outputs=["o"]) == b"OK"
    assert r.execute_command("AI.TENSORGET", "o", "META", "VALUES") == [
        b"dtype", b"INT32", b"shape", [3, 2], b"values", [1, 4, 2, 5, 3, 6]]


def test_script_may_call_ai_commands_that_do_not_block(r: redis.Redis) -> None:
    source = '''
def set_tensor(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("AI.TENSORSET", keys[0], "FLOAT", "2", "VALUES", "5", "6")
    return tensors[0]

def run_model(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("AI.MODELEXECUTE", keys[0], "INPUTS", "2", "a", "a", "OUTPUTS", "2", "x", "y")
    return tensors[0]
'''
    store(r, "s", source=source, entry_points=["set_tensor", "run_model"])
    r.execute_command("AI.MODELSTORE", "m", "TORCH", "CPU", "BLOB", mb.torch_add())
    tensorset(r, "a", np.array([1, 2], dtype=np.float32))
    assert scriptexecute(r, "s", "set_tensor", keys=["made"], inputs=["a"], outputs=["o"]) == b"OK"
    np.testing.assert_array_equal(tensorget(r, "made"), [5, 6])
    # A blocking AI command cannot run inside a script (use redisAI.model_execute).
    message = error_of(lambda: scriptexecute(r, "s", "run_model", keys=["m"], inputs=["a"], outputs=["o2"]))
    assert message == CALL_ERROR + "ERR " + IN_TRANSACTION
    assert r.exists("x", "y", "o2") == 0


SLOW_SCRIPT = '''
def slow(tensors: List[Tensor], keys: List[str], args: List[str]):
    x = tensors[0]
    w = torch.eye(64) * 0.5
    for i in range(int(args[0])):
        x = torch.tanh(x @ w) + tensors[0]
    return x

def quick(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] + 1
'''


def _slow_steps(r: redis.Redis, seconds: float) -> int:
    """Steps of SLOW_SCRIPT's `slow` that take about `seconds` on this machine, now."""
    started = time.monotonic()
    assert scriptexecute(r, "slow", "slow", inputs=["x"], args=[500], outputs=["calibrated"]) == b"OK"
    elapsed = max(time.monotonic() - started, 1e-3)
    r.delete("calibrated")
    return int(min(500_000, max(100, 500 * seconds / elapsed)))


class Blocked(threading.Thread):
    """One command on a connection of its own; its reply or error in .reply."""

    def __init__(self, server: RedisServer, *command: object) -> None:
        super().__init__(daemon=True)
        self.client = server.client(socket_timeout=60)
        self.command = command
        self.reply: object = None

    def run(self) -> None:
        try:
            self.reply = self.client.execute_command(*self.command)
        except redis.ResponseError as exc:
            self.reply = exc


def test_scriptexecute_timeout_answers_timedout_behind_a_slow_script(
        r: redis.Redis, shared_server: RedisServer) -> None:
    store(r, "slow", source=SLOW_SCRIPT, entry_points=["slow", "quick"])
    tensorset(r, "x", np.ones((64, 64), dtype=np.float32) * 0.01)
    steps = _slow_steps(r, 0.5)
    r.execute_command("AI.INFO", "slow", "RESETSTAT")
    running = Blocked(shared_server, "AI.SCRIPTEXECUTE", "slow", "slow", "INPUTS", 1, "x", "ARGS", 1, steps,
                      "OUTPUTS", 1, "y")
    running.start()
    wait_until(lambda: int(r.info("clients")["blocked_clients"]) == 1, what="the slow script to block")
    # Queued behind it with a short TIMEOUT: skipped, not run, and answered as a status.
    late = [Blocked(shared_server, "AI.SCRIPTEXECUTE", "slow", "quick", "INPUTS", 1, "x", "OUTPUTS", 1, "late",
                    "TIMEOUT", 20),
            Blocked(shared_server, "AI.SCRIPTRUN", "slow", "quick", "TIMEOUT", 20, "INPUTS", "x",
                    "OUTPUTS", "late2")]
    for t in late:
        t.start()
    wait_until(lambda: int(r.info("clients")["blocked_clients"]) == 3, what="the late jobs to queue")
    for t in (running, *late):
        t.join(60)
    assert running.reply == b"OK"
    assert [t.reply for t in late] == [b"TIMEDOUT", b"TIMEDOUT"]
    assert r.exists("late", "late2") == 0
    assert run_info(r, "slow")["calls"] == 1
    assert scriptexecute(r, "slow", "quick", inputs=["x"], outputs=["late"], timeout=10_000) == b"OK"


def test_script_deleted_or_client_gone_while_it_runs(r: redis.Redis, shared_server: RedisServer) -> None:
    store(r, "slow", source=SLOW_SCRIPT, entry_points=["slow", "quick"])
    tensorset(r, "x", np.ones((64, 64), dtype=np.float32) * 0.01)
    steps = _slow_steps(r, 0.4)
    # The key goes away while the job runs: the job finishes with the script it holds.
    running = Blocked(shared_server, "AI.SCRIPTEXECUTE", "slow", "slow", "INPUTS", 1, "x", "ARGS", 1, steps,
                      "OUTPUTS", 1, "y")
    running.start()
    wait_until(lambda: int(r.info("clients")["blocked_clients"]) == 1, what="the slow script to block")
    assert r.execute_command("AI.SCRIPTDEL", "slow") == b"OK"
    running.join(60)
    assert running.reply == b"OK"
    assert tensorget(r, "y").shape == (64, 64)
    assert r.exists("slow") == 0

    # A client that disconnects while blocked leaves no trace but the output.
    store(r, "slow", source=SLOW_SCRIPT, entry_points=["slow", "quick"])
    with socket.create_connection(("127.0.0.1", shared_server.port)) as sock:
        command = ["AI.SCRIPTEXECUTE", "slow", "slow", "INPUTS", "1", "x", "ARGS", "1", str(steps),
                   "OUTPUTS", "1", "gone"]
        sock.sendall(b"*%d\r\n" % len(command)
                     + b"".join(b"$%d\r\n%s\r\n" % (len(a), a.encode()) for a in command))
        wait_until(lambda: int(r.info("clients")["blocked_clients"]) == 1, what="the raw client to block")
    wait_until(lambda: int(r.info("clients")["blocked_clients"]) == 0, what="the job to end")
    assert r.ping() is True
    assert scriptexecute(r, "slow", "quick", inputs=["x"], outputs=["after"]) == b"OK"


def test_entry_point_validation_messages_at_store(r: redis.Redis) -> None:
    store(r, "s", tag="keep")
    source = '''
def good(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0]

def two(tensors: List[Tensor], keys: List[str]):
    return tensors[0]

def typed(tensors: List[Tensor], keys: List[str], args: List[int]):
    return tensors[0]

def single(a: Tensor):
    return a
'''

    def attempt(entry: str) -> str:
        return error_of(lambda: r.execute_command("AI.SCRIPTSTORE", "s", "CPU", "ENTRY_POINTS", 2, "good",
                                                  entry, "SOURCE", source))

    assert attempt("missing") == "Function missing does not exist in the given script."
    assert attempt("two") == "Wrong number of inputs in function two. Expected 3 but was 2"
    assert attempt("single") == "Wrong number of inputs in function single. Expected 3 but was 1"
    assert attempt("typed") == (
        "Wrong inputs type in function typed. Expected signature similar to: "
        "def typed(tensors: List[Tensor], keys: List[str], args: List[str])")
    # The refused stores left the script that was there.
    assert r.execute_command("AI.SCRIPTGET", "s", "META")[3] == b"keep"
    store(r, "s2", source=source, entry_points=["good"])


def test_best_effort_mode_for_scriptset_scripts_with_scriptrun(r: redis.Redis) -> None:
    source = '''
def add(a, b):
    return a + b

def variadic(first: Tensor, rest: List[Tensor]):
    out = first
    for t in rest:
        out = out + t
    return out

def pair(a, b):
    return a + b, a * b
'''
    assert r.execute_command("AI.SCRIPTSET", "old", "CPU", "SOURCE", source) == b"OK"
    tensorset(r, "x", np.array([1, 2], dtype=np.float32))
    tensorset(r, "y", np.array([10, 20], dtype=np.float32))
    tensorset(r, "z", np.array([100, 200], dtype=np.float32))
    # Tensor parameters take the inputs in order.
    assert r.execute_command("AI.SCRIPTRUN", "old", "add", "INPUTS", "x", "y", "OUTPUTS", "o") == b"OK"
    np.testing.assert_array_equal(tensorget(r, "o"), [11, 22])
    # `$` marks a variable-size list; the List[Tensor] parameter takes the rest.
    assert r.execute_command("AI.SCRIPTRUN", "old", "variadic", "INPUTS", "x", "$", "y", "z",
                             "OUTPUTS", "v") == b"OK"
    np.testing.assert_array_equal(tensorget(r, "v"), [111, 222])
    assert r.execute_command("AI.SCRIPTRUN", "old", "variadic", "INPUTS", "x", "y", "z", "y",
                             "OUTPUTS", "v2") == b"OK"
    np.testing.assert_array_equal(tensorget(r, "v2"), [121, 242])
    # A TIMEOUT before INPUTS, and several outputs.
    assert r.execute_command("AI.SCRIPTRUN", "old", "pair", "TIMEOUT", 5000, "INPUTS", "x", "y",
                             "OUTPUTS", "p1", "p2") == b"OK"
    np.testing.assert_array_equal(tensorget(r, "p2"), [10, 40])
    # SCRIPTEXECUTE runs a function that is not an entry point the same way.
    assert scriptexecute(r, "old", "add", inputs=["y", "z"], outputs=["o2"]) == b"OK"
    np.testing.assert_array_equal(tensorget(r, "o2"), [110, 220])
    # Also for a SCRIPTSTORE script: its helper functions run in best-effort mode.
    store(r, "s")
    assert r.execute_command("AI.SCRIPTRUN", "s", "helper_not_entry", "INPUTS", "z", "x",
                             "OUTPUTS", "d") == b"OK"
    np.testing.assert_array_equal(tensorget(r, "d"), [99, 198])
    assert run_info(r, "old")["calls"] == 5


def test_scriptrun_with_an_entry_point_function(r: redis.Redis) -> None:
    store(r, "s")
    tensorset(r, "a", np.array([1, 2], dtype=np.float32))
    # SCRIPTRUN of an entry point passes the inputs as its tensors (no keys, no args).
    assert r.execute_command("AI.SCRIPTRUN", "s", "bar", "INPUTS", "a", "a", "OUTPUTS", "y") == b"OK"
    np.testing.assert_array_equal(tensorget(r, "y"), [2, 4])


def test_command_getkeys_for_script_commands(r: redis.Redis) -> None:
    # (RedisAI's callback understands KEYS/INPUTS/OUTPUTS/TIMEOUT only, so no ARGS here.)
    assert r.command_getkeys("AI.SCRIPTEXECUTE", "s", "fn", "KEYS", 2, "k1", "k2", "INPUTS", 1, "a",
                             "OUTPUTS", 1, "o", "TIMEOUT", 10) == ["s", "k1", "k2", "a", "o"]
    assert r.command_getkeys("AI.SCRIPTRUN", "s", "fn", "INPUTS", "a", "$", "b", "OUTPUTS", "o") == [
        "s", "a", "b", "o"]
    assert r.command_getkeys("AI.SCRIPTSTORE", "s", "CPU", "ENTRY_POINTS", 1, "f", "SOURCE", "x") == ["s"]


# ---------------------------------------------------------------------------
# inside a script: redis.execute, redis.asList, redisAI.model_execute


def test_redis_execute_results_are_usable_in_the_script(r: redis.Redis) -> None:
    store(r, "rs", source=REDIS_SCRIPT, entry_points=REDIS_ENTRY_POINTS)

    def run(fn: str, keys: list[str], args: list[object]) -> list[object]:
        assert scriptexecute(r, "rs", fn, keys=keys, args=args, outputs=["out"]) == b"OK"
        return r.execute_command("AI.TENSORGET", "out", "VALUES")

    assert run("set_get", ["int"], [42]) == [42]
    assert r.get("int") == b"42"
    assert run("float_set_get", ["f"], ["1.5"]) == [b"1.5"]
    assert run("set_incr", ["n"], [41]) == [42]
    assert r.get("n") == b"42"
    assert run("set_del", ["gone"], ["x"]) == [1, 1]
    assert r.exists("gone") == 0
    assert run("rpush_lrange", ["list"], [1, 2, 3]) == [1, 2, 3]
    assert r.lrange("list", 0, -1) == [b"1", b"2", b"3"]
    assert run("list_len", ["list"], []) == [3]
    assert run("hset_hvals", ["hash"], ["f1", 7, "f2", 8]) == [7, 8]
    assert r.hgetall("hash") == {b"f1": b"7", b"f2": b"8"}


def test_redis_error_inside_a_script_fails_the_run(r: redis.Redis) -> None:
    store(r, "rs", source=REDIS_SCRIPT, entry_points=REDIS_ENTRY_POINTS)
    tensorset(r, "a", np.array([1, 2], dtype=np.float32))
    message = error_of(lambda: scriptexecute(r, "rs", "missing_argument", keys=["k"], inputs=["a"],
                                             outputs=["o"]))
    assert CALL_ERROR in message and "wrong number of arguments" in message
    message = error_of(lambda: scriptexecute(r, "rs", "unknown_command", keys=["k"], inputs=["a"],
                                             outputs=["o"]))
    assert message.startswith(CALL_ERROR), message
    r.set("str", "v")
    message = error_of(lambda: scriptexecute(r, "rs", "wrong_type", keys=["str"], inputs=["a"],
                                             outputs=["o"]))
    assert CALL_ERROR in message and WRONGTYPE in message
    # Nothing was written for the failed runs, and they count as errors.
    assert r.exists("o", "k") == 0
    assert r.get("str") == b"v"
    assert run_info(r, "rs")["errors"] == 3


def test_model_execute_inside_a_script(r: redis.Redis) -> None:
    store(r, "rs", source=REDIS_SCRIPT, entry_points=REDIS_ENTRY_POINTS)
    r.execute_command("AI.MODELSTORE", "m", "TORCH", "CPU", "BLOB", mb.torch_add())
    r.execute_command("AI.MODELSTORE", "mo", "ONNX", "CPU", "BLOB", mb.onnx_add())
    tensorset(r, "a", np.array([2, 3], dtype=np.float32))
    tensorset(r, "b", np.array([5, 7], dtype=np.float32))
    for model in ("m", "mo"):
        assert scriptexecute(r, "rs", "run_model", keys=[model], inputs=["a", "b"],
                             outputs=["sum", "product"]) == b"OK"
        np.testing.assert_array_equal(tensorget(r, "sum"), [7, 10])
        np.testing.assert_array_equal(tensorget(r, "product"), [10, 21])
        r.delete("sum", "product")
    # A missing model and a key of another type fail the script with the model's error.
    assert error_of(lambda: scriptexecute(r, "rs", "run_model", keys=["nope"], inputs=["a", "b"],
                                          outputs=["sum", "product"])) == "model key is empty"
    r.set("str", "x")
    assert WRONGTYPE in error_of(lambda: scriptexecute(r, "rs", "run_model", keys=["str"], inputs=["a", "b"],
                                                       outputs=["sum", "product"]))
    assert r.exists("sum", "product") == 0


# ---------------------------------------------------------------------------
# devices, transactions


@pytest.mark.skipif("_cuda_available()", reason="this machine has CUDA: a GPU script would be stored")
@pytest.mark.parametrize("device", ["GPU", "gpu:0"])
def test_gpu_script_without_cuda_is_refused(r: redis.Redis, device: str) -> None:
    assert error_of(lambda: store(r, "g", device=device)) == "GPU requested but Torch couldn't find CUDA"
    assert r.exists("g") == 0
    assert r.execute_command("AI._SCRIPTSCAN") == []


@pytest.mark.gpu
@pytest.mark.skipif("not _cuda_available()", reason="no CUDA device on this machine")
def test_gpu_script_runs_and_returns_cpu_tensors(r: redis.Redis) -> None:
    store(r, "g", device="GPU:0", entry_points=["bar", "scaled"])
    tensorset(r, "a", np.array([1, 2], dtype=np.float32))
    assert scriptexecute(r, "g", "scaled", inputs=["a"], args=["2", "1"], outputs=["p", "q"]) == b"OK"
    np.testing.assert_array_equal(tensorget(r, "p"), [2, 4])
    np.testing.assert_array_equal(tensorget(r, "q"), [2, 3])
    assert run_info(r, "g")["device"] == b"GPU:0"


def test_unsupported_script_device(r: redis.Redis) -> None:
    assert error_of(lambda: store(r, "g", device="TPU")) == "unsupported device"
    assert r.exists("g") == 0


def test_script_on_cpu_1_runs_on_its_own_queue(r: redis.Redis) -> None:
    store(r, "s1", device="CPU:1")
    tensorset(r, "a", np.array([1, 2], dtype=np.float32))
    assert scriptexecute(r, "s1", "bar", inputs=["a", "a"], outputs=["y"]) == b"OK"
    np.testing.assert_array_equal(tensorget(r, "y"), [2, 4])
    assert run_info(r, "s1")["device"] == b"CPU:1"


def test_scriptstore_inside_multi(r: redis.Redis) -> None:
    """Storing a script inside MULTI compiles it at once (running one: see
    tests/test_inference_in_transactions.py)."""
    tensorset(r, "a", np.array([1, 2], dtype=np.float32))
    # Storing a script inside MULTI works (it does not block).
    pipe = r.pipeline(transaction=True)
    pipe.execute_command("AI.SCRIPTSTORE", "s2", "CPU", "ENTRY_POINTS", 1, "bar", "SOURCE", SCRIPT)
    assert pipe.execute() == [b"OK"]
    assert scriptexecute(r, "s2", "bar", inputs=["a", "a"], outputs=["y"]) == b"OK"


# ---------------------------------------------------------------------------
# replication and the AOF: redis.execute writes go out as themselves,
# outputs as AI.TENSORSET, the script never runs on a replica


def _wait_for_link(replica: redis.Redis) -> None:
    wait_until(lambda: replica.info("replication").get("master_link_status") == "up",
               what="the replica to sync")


def test_script_writes_and_outputs_replicate_without_running_the_script(
        server_factory: ServerFactory) -> None:
    primary = server_factory(server_args=["--repl-diskless-sync-delay", "0"])
    replica = server_factory(server_args=["--replicaof", "127.0.0.1", str(primary.port)])
    rp, rr = primary.client(socket_timeout=60), replica.client(socket_timeout=60)
    _wait_for_link(rr)

    store(rp, "rs", source=REDIS_SCRIPT, entry_points=REDIS_ENTRY_POINTS, tag="rep")
    tensorset(rp, "a", np.array([1, 2], dtype=np.float32))
    rp.set("k2", 10)
    assert scriptexecute(rp, "rs", "write_and_output", keys=["k1", "k2", "k3"], inputs=["a"],
                         args=["hello"], outputs=["out"]) == b"OK"
    assert rp.execute_command("WAIT", 1, 10000) == 1

    assert rr.get("k1") == b"hello"
    assert rr.get("k2") == b"11"
    assert rr.lrange("k3", 0, -1) == [b"a", b"b"]
    np.testing.assert_array_equal(tensorget(rr, "out"), [2, 4])
    assert rr.execute_command("AI.SCRIPTGET", "rs", "META")[:4] == [b"device", b"CPU", b"tag", b"rep"]
    # The replica got the commands, not the script: it never ran it.
    assert run_info(rr, "rs")["calls"] == 0
    assert run_info(rp, "rs")["calls"] == 1
    assert command_calls(rr, "AI.SCRIPTEXECUTE") == 0
    assert command_calls(rr, "AI.TENSORSET") >= 2  # the input, then the output
    assert command_calls(rr, "SET") >= 2 and command_calls(rr, "INCR") == 1
    assert command_calls(rr, "RPUSH") == 1

    # A replica refuses to run scripts itself (SCRIPTEXECUTE writes).
    with pytest.raises(redis.exceptions.ReadOnlyError):
        scriptexecute(rr, "rs", "write_and_output", keys=["k1", "k2", "k3"], inputs=["a"], args=["x"],
                      outputs=["out"])
    # SCRIPTDEL replicates.
    assert rp.execute_command("AI.SCRIPTDEL", "rs") == b"OK"
    assert rp.execute_command("WAIT", 1, 10000) == 1
    assert rr.exists("rs") == 0


def _aof_commands(workdir: Path) -> list[list[bytes]]:
    """Every command in the AOF files under workdir (RESP arrays), oldest file first."""
    commands: list[list[bytes]] = []
    files = sorted((workdir / "appendonlydir").glob("*.aof"),
                   key=lambda p: (".incr." in p.name, p.name))
    for path in files:
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            assert data[pos:pos + 1] == b"*", (path, pos, data[pos:pos + 20])
            end = data.index(b"\r\n", pos)
            count = int(data[pos + 1:end])
            pos = end + 2
            args = []
            for _ in range(count):
                end = data.index(b"\r\n", pos)
                length = int(data[pos + 1:end])
                args.append(data[end + 2:end + 2 + length])
                pos = end + 2 + length + 2
            commands.append(args)
    return commands


def test_aof_holds_the_script_writes_and_outputs_and_replays_them(server_factory: ServerFactory) -> None:
    server = server_factory(server_args=["--appendonly", "yes", "--appendfsync", "always",
                                         "--aof-use-rdb-preamble", "no"])
    r = server.client(socket_timeout=60)
    store(r, "rs", source=REDIS_SCRIPT, entry_points=REDIS_ENTRY_POINTS)
    tensorset(r, "a", np.array([1, 2], dtype=np.float32))
    assert scriptexecute(r, "rs", "write_and_output", keys=["k1", "k2", "k3"], inputs=["a"],
                         args=["hello"], outputs=["out"]) == b"OK"
    names = [c[0].upper() for c in _aof_commands(server.workdir)]
    assert b"AI.SCRIPTEXECUTE" not in names
    assert b"AI.SCRIPTSTORE" in names
    assert {b"SET", b"INCR", b"RPUSH"} <= set(names)
    tensorsets = [c for c in _aof_commands(server.workdir) if c[0].upper() == b"AI.TENSORSET"]
    assert tensorsets[-1] == [b"AI.TENSORSET", b"out", b"FLOAT", b"2", b"BLOB",
                              np.array([2, 4], dtype=np.float32).tobytes()]

    server.restart()
    r = server.client(socket_timeout=60)
    assert (r.get("k1"), r.get("k2"), r.lrange("k3", 0, -1)) == (b"hello", b"1", [b"a", b"b"])
    np.testing.assert_array_equal(tensorget(r, "out"), [2, 4])
    # Replaying the AOF did not run the script again.
    assert run_info(r, "rs")["calls"] == 0


# ---------------------------------------------------------------------------
# persistence


PERSISTENCE_MODES = {
    "save-and-restart": ["--dbfilename", "dump.rdb"],
    "aof-restart": ["--appendonly", "yes", "--appendfsync", "always"],
    "aof-rewrite-restart": ["--appendonly", "yes", "--appendfsync", "always", "--aof-use-rdb-preamble", "no"],
    "debug-reload": [],
}


@pytest.mark.parametrize("mode", list(PERSISTENCE_MODES))
def test_scripts_persist_and_still_run(server_factory: ServerFactory, mode: str) -> None:
    server = server_factory(server_args=PERSISTENCE_MODES[mode])
    r = server.client(socket_timeout=60)
    store(r, "s", tag="kept")
    store(r, "s_gpu_free", device="CPU:1", entry_points=["bar"])
    old_source = "def add(a, b):\n    return a + b\n"
    r.execute_command("AI.SCRIPTSET", "old", "CPU", "TAG", "legacy", "SOURCE", old_source)
    tensorset(r, "a", np.array([1, 2], dtype=np.float32))
    assert scriptexecute(r, "s", "bar", inputs=["a", "a"], outputs=["y"]) == b"OK"
    before = {key: r.execute_command("AI.SCRIPTGET", key) for key in ("s", "s_gpu_free", "old")}

    if mode == "save-and-restart":
        assert r.save() is True
        server.restart()
    elif mode == "aof-restart":
        server.restart()
    elif mode == "aof-rewrite-restart":
        r.bgrewriteaof()
        wait_until(lambda: not any(int(r.info("persistence")[k]) for k in
                                   ("aof_rewrite_in_progress", "aof_rewrite_scheduled")),
                   what="the AOF rewrite")
        server.restart()
    else:
        assert r.execute_command("DEBUG", "RELOAD") == b"OK"
    r = server.client(socket_timeout=60)

    assert {key: r.execute_command("AI.SCRIPTGET", key) for key in before} == before
    assert sorted(map(tuple, r.execute_command("AI._SCRIPTSCAN"))) == [
        (b"old", b"legacy"), (b"s", b"kept"), (b"s_gpu_free", b"")]
    for key in before:  # statistics are recreated for loaded scripts
        assert run_info(r, key)["type"] == b"SCRIPT"
    assert scriptexecute(r, "s", "scaled", inputs=["a"], args=["3", "1"], outputs=["p", "q"]) == b"OK"
    np.testing.assert_array_equal(tensorget(r, "p"), [3, 6])
    assert scriptexecute(r, "s_gpu_free", "bar", inputs=["a", "y"], outputs=["z"]) == b"OK"
    np.testing.assert_array_equal(tensorget(r, "z"), [3, 6])
    assert r.execute_command("AI.SCRIPTRUN", "old", "add", "INPUTS", "a", "y", "OUTPUTS", "o") == b"OK"
    np.testing.assert_array_equal(tensorget(r, "o"), [3, 6])


# ---------------------------------------------------------------------------
# no deadlock between the GIL and the Redis lock


DEADLOCK_SCRIPT = '''
def bump(tensors: List[Tensor], keys: List[str], args: List[str]):
    n = redis.execute("INCR", keys[0])
    seen = redis.execute("GET", keys[0])
    redis.execute("SET", keys[1], str(seen))
    redis.execute("INCR", keys[2])
    return tensors[0] + int(str(n))
'''


def test_concurrent_scripts_calling_redis_with_writers_and_bgsave_never_deadlock(
        server_factory: ServerFactory) -> None:
    """For ~5 s: 16 clients run a script whose redis.execute calls (INCR, GET, SET, INCR) need
    the Redis lock from a worker holding the GIL; 2 clients run the same script inside DAGs;
    4 clients pipeline SET/INCR/TENSORSET/MODELEXECUTE/SCRIPTEXECUTE; one stores a script
    inside MULTI (the main thread, holding the Redis lock, then needs the GIL); BGSAVE forks
    again and again. Every client must finish (30 s socket timeouts bound a deadlock), with
    no error, and the counters must add up exactly."""
    server = server_factory(module_args=["THREADS_PER_QUEUE", "4"])
    r = server.client(socket_timeout=60)
    store(r, "bump", source=DEADLOCK_SCRIPT, entry_points=["bump"])
    store(r, "plain", entry_points=["bar"])
    tensorset(r, "t", np.zeros(4, dtype=np.float32))
    r.execute_command("AI.MODELSTORE", "m", "TORCH", "CPU", "BLOB", mb.torch_add())
    duration_s, n_scripts, n_writers, n_dags = 5.0, 16, 4, 2
    stop_at = time.monotonic() + duration_s
    script_calls = [0] * n_scripts
    writer_calls = [0] * n_writers
    dag_calls = [0] * n_dags
    bgsaves = [0]
    stores = [0]
    errors: list[BaseException] = []

    def scripts(i: int) -> None:
        c = server.client(socket_timeout=30)
        try:
            while time.monotonic() < stop_at:
                assert scriptexecute(c, "bump", "bump", keys=["counter", f"last:{i}", f"mine:{i}"],
                                     inputs=["t"], outputs=[f"out:{i}"]) == b"OK"
                script_calls[i] += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def writers(i: int) -> None:
        c = server.client(socket_timeout=30)
        try:
            while time.monotonic() < stop_at:
                n = writer_calls[i]
                pipe = c.pipeline(transaction=False)
                pipe.set(f"w:{i}:{n}", "x" * 100)
                pipe.incr("writes")
                pipe.execute_command("AI.TENSORSET", f"wt:{i}", "FLOAT", 4, "VALUES", n, n, n, n)
                pipe.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 2, f"wt:{i}", f"wt:{i}",
                                     "OUTPUTS", 2, f"ws:{i}", f"wp:{i}")
                pipe.execute_command("AI.SCRIPTEXECUTE", "plain", "bar", "INPUTS", 2, f"wt:{i}", "t",
                                     "OUTPUTS", 1, f"wo:{i}")
                replies = pipe.execute()
                assert replies[0] is True and isinstance(replies[1], int), replies
                assert replies[2:] == [b"OK", b"OK", b"OK"], replies
                writer_calls[i] += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def dags(i: int) -> None:
        c = server.client(socket_timeout=30)
        try:
            while time.monotonic() < stop_at:
                reply = c.execute_command(
                    "AI.DAGEXECUTE", "LOAD", 1, "t", "|>",
                    "AI.SCRIPTEXECUTE", "bump", "bump", "KEYS", 3, "counter", f"dlast:{i}", f"dmine:{i}",
                    "INPUTS", 1, "t", "OUTPUTS", 1, "o", "|>", "AI.TENSORGET", "o", "META")
                assert reply == [b"OK", [b"dtype", b"FLOAT", b"shape", [4]]], reply
                dag_calls[i] += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def storer() -> None:
        # SCRIPTSTORE inside MULTI compiles on the main thread, which then holds the
        # Redis lock and needs the GIL: the opposite order of a script's redis.execute.
        c = server.client(socket_timeout=30)
        try:
            while time.monotonic() < stop_at:
                pipe = c.pipeline(transaction=True)
                pipe.execute_command("AI.SCRIPTSTORE", "stored", "CPU", "ENTRY_POINTS", 1, "bump",
                                     "SOURCE", DEADLOCK_SCRIPT)
                assert pipe.execute() == [b"OK"]
                stores[0] += 1
                time.sleep(0.02)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def saver() -> None:
        c = server.client(socket_timeout=30)
        try:
            while time.monotonic() < stop_at:
                try:
                    c.bgsave()
                    bgsaves[0] += 1
                except redis.ResponseError as exc:  # one already running
                    assert "in progress" in str(exc), exc
                time.sleep(0.05)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = ([threading.Thread(target=scripts, args=(i,), daemon=True) for i in range(n_scripts)]
               + [threading.Thread(target=writers, args=(i,), daemon=True) for i in range(n_writers)]
               + [threading.Thread(target=dags, args=(i,), daemon=True) for i in range(n_dags)]
               + [threading.Thread(target=saver, daemon=True), threading.Thread(target=storer, daemon=True)])
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration_s + 60)
    assert not any(t.is_alive() for t in threads), "clients still blocked: the server deadlocked"
    assert [f"{type(e).__name__}: {e}" for e in errors] == []

    total = sum(script_calls) + sum(dag_calls)
    print(f"script calls {sum(script_calls)}, DAG runs {sum(dag_calls)}, writer loops {sum(writer_calls)}, "
          f"BGSAVEs {bgsaves[0]}, stores in MULTI {stores[0]}")
    assert sum(script_calls) > n_scripts and min(dag_calls) > 0 and sum(writer_calls) > 0
    assert bgsaves[0] > 0 and stores[0] > 0
    assert r.ping() is True
    # Every INCR of every script run happened exactly once.
    assert int(r.get("counter")) == total
    for i in range(n_scripts):
        assert int(r.get(f"mine:{i}")) == script_calls[i]
        assert 1 <= int(r.get(f"last:{i}")) <= total
    for i in range(n_dags):
        assert int(r.get(f"dmine:{i}")) == dag_calls[i]
    assert int(r.get("writes")) == sum(writer_calls)
    assert len(r.keys("w:*")) == sum(writer_calls)
    info = run_info(r, "bump")
    assert (info["calls"], info["errors"]) == (total, 0)
    assert run_info(r, "plain")["calls"] == sum(writer_calls)
    wait_until(lambda: int(r.info("persistence")["rdb_bgsave_in_progress"]) == 0, what="the last BGSAVE")
    assert r.info("persistence")["rdb_last_bgsave_status"] == "ok"
