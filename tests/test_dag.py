"""Whole pipelines in one round trip: AI.DAGEXECUTE / AI.DAGEXECUTE_RO and the
deprecated AI.DAGRUN / AI.DAGRUN_RO.

User stories:
- an application loads tensors from keys, sets new ones, runs models and
  scripts on them and reads results back in one command; tensors in between
  never appear in the keyspace, and only PERSIST keys are written;
- when any op fails nothing is written; the reply has one entry per op, the
  error as an element, NA for what did not run;
- read-only DAGs refuse what writes, and run on a read-only replica;
- ops placed on two devices run at the same time;
- AI.INFO counts each model and script op of a DAG; a DAG TIMEOUT answers
  TIMEDOUT; cluster clients find the keys with COMMAND GETKEYS.

Texts come from reference section 3 (AI.DAGEXECUTE, AI.INFO); redis-py strips
a leading "ERR ". Most stories share one server (FLUSHALL before each),
started with INTRA_OP_PARALLELISM 1 so that one op keeps to one core.
"""

from __future__ import annotations

import io
import threading
import time
import warnings
from collections.abc import Callable

import numpy as np
import pytest
import redis

import model_builders as mb
from conftest import RedisServer, ServerFactory, wait_until
from keyspace import assert_intact, snapshot


_NUMPY_OF = {
    "FLOAT": np.float32, "DOUBLE": np.float64, "INT8": np.int8, "INT16": np.int16,
    "INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8, "UINT16": np.uint16, "BOOL": np.bool_,
}
_NAME_OF = {np.dtype(v): k for k, v in _NUMPY_OF.items()}

SCRIPT = '''
def bar(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] + tensors[1]

def scale(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] * float(args[0])

def remember(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("SET", keys[0], str(int(tensors[0].sum().item())))
    return tensors[0] + 1
'''
OLD_SCRIPT = '''
def add(a, b):
    return a + b

def total(first: Tensor, rest: List[Tensor]):
    out = first
    for t in rest:
        out = out + t
    return out
'''

A = np.array([[1, 2], [3, 4], [5, 6]], dtype=np.float32)
B = np.array([[10, 20], [30, 40], [50, 60]], dtype=np.float32)


# ---------------------------------------------------------------------------
# helpers


def tensorset(r: redis.Redis, key: str, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array)
    assert r.execute_command("AI.TENSORSET", key, _NAME_OF[array.dtype], *array.shape, "BLOB",
                             array.tobytes()) == b"OK"


def tensorget(r: redis.Redis, key: str) -> np.ndarray:
    return from_meta_blob(r.execute_command("AI.TENSORGET", key, "META", "BLOB"))


def from_meta_blob(reply: list[object]) -> np.ndarray:
    assert reply[0] == b"dtype" and reply[2] == b"shape" and reply[4] == b"blob", reply
    return np.frombuffer(reply[5], dtype=_NUMPY_OF[reply[1].decode()]).reshape(reply[3])


def tensorset_op(key: str, array: np.ndarray) -> list[object]:
    array = np.ascontiguousarray(array)
    return ["|>", "AI.TENSORSET", key, _NAME_OF[array.dtype], *array.shape, "BLOB", array.tobytes()]


def run_info(r: redis.Redis, key: str) -> dict[str, object]:
    reply = r.execute_command("AI.INFO", key)
    assert len(reply) == 18, reply
    return {reply[i].decode(): reply[i + 1] for i in range(0, 18, 2)}


def error_of(call: Callable[[], object]) -> str:
    with pytest.raises(redis.ResponseError) as err:
        call()
    return str(err.value)


def slow_torch_model() -> bytes:
    """forward(x [64, 64], n INT64 [1]) -> x after n rounds of tanh(y @ w) + x: CPU time set by n."""
    import torch

    class Slow(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.eye(64) * 0.5, requires_grad=False)

        def forward(self, x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
            y = x
            for _ in range(int(n.item())):
                y = torch.tanh(y @ self.w) + x
            return y

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(Slow()), buffer)
    return buffer.getvalue()


# ---------------------------------------------------------------------------
# fixtures


SHARED_SERVER_MODULE_ARGS = ["INTRA_OP_PARALLELISM", "1"]


@pytest.fixture(scope="module")
def blobs() -> dict[str, bytes]:
    return {"add": mb.torch_add(), "slow": slow_torch_model()}


@pytest.fixture
def r(shared_server: RedisServer, request: pytest.FixtureRequest, blobs: dict[str, bytes]) -> redis.Redis:
    """A clean keyspace holding model m (TORCH a, b -> a + b, a * b) on CPU, its copy m1
    on CPU:1, script s (SCRIPTSTORE), script old (SCRIPTSET) and tensors a, b."""
    request.node.redis_servers = [shared_server]  # conftest attaches its log on failure
    client = shared_server.client(socket_timeout=60)
    client.flushall()
    client.execute_command("AI.MODELSTORE", "m", "TORCH", "CPU", "BLOB", blobs["add"])
    client.execute_command("AI.MODELSTORE", "m1", "TORCH", "CPU:1", "BLOB", blobs["add"])
    client.execute_command("AI.SCRIPTSTORE", "s", "CPU", "ENTRY_POINTS", 3, "bar", "scale", "remember",
                           "SOURCE", SCRIPT)
    client.execute_command("AI.SCRIPTSET", "old", "CPU", "SOURCE", OLD_SCRIPT)
    tensorset(client, "a", A)
    tensorset(client, "b", B)
    return client


# ---------------------------------------------------------------------------
# the pipeline, the keyspace and the reply


def test_dagexecute_runs_a_pipeline_and_persists_only_persist_keys(r: redis.Redis) -> None:
    before = snapshot(r)
    c = np.array([[1, 1], [1, 1], [1, 1]], dtype=np.float32)
    reply = r.execute_command(
        "AI.DAGEXECUTE", "LOAD", 2, "a", "b", "PERSIST", 1, "result", "|>",
        *tensorset_op("c", c)[1:],
        "|>", "AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "c", "OUTPUTS", 2, "sum", "product",
        "|>", "AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "sum", "b", "OUTPUTS", 1, "result",
        "|>", "AI.SCRIPTEXECUTE", "s", "scale", "INPUTS", 1, "result", "ARGS", 1, "0.5", "OUTPUTS", 1, "half",
        "|>", "AI.TENSORGET", "half", "VALUES",
        "|>", "AI.TENSORGET", "product", "META", "BLOB")
    expected_result = A + c + B
    assert reply[:4] == [b"OK", b"OK", b"OK", b"OK"]
    assert [float(v) for v in reply[4]] == list((expected_result * 0.5).reshape(-1))
    np.testing.assert_array_equal(from_meta_blob(reply[5]), A * c)
    assert len(reply) == 6
    # Only the PERSIST key was written; c, sum, product and half never touched the keyspace.
    after = snapshot(r)
    assert set(after) == set(before) | {b"result"}
    assert {k: v for k, v in after.items() if k != b"result"} == before
    np.testing.assert_array_equal(tensorget(r, "result"), expected_result)


def test_dag_names_shadow_keys_without_touching_them(r: redis.Redis) -> None:
    before = snapshot(r)
    # An op output named like a LOAD key (and like another key) replaces it inside the DAG only.
    reply = r.execute_command(
        "AI.DAGEXECUTE", "LOAD", 1, "a", "|>",
        "AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "a", "OUTPUTS", 2, "a", "b",
        "|>", "AI.TENSORGET", "a", "VALUES",
        "|>", "AI.TENSORSET", "x", "FLOAT", 1, "VALUES", 1,
        "|>", "AI.TENSORSET", "x", "FLOAT", 1, "VALUES", 2,
        "|>", "AI.TENSORGET", "x", "VALUES")
    assert reply[0] == b"OK"
    assert [float(v) for v in reply[1]] == list((A * 2).reshape(-1))
    assert reply[2:] == [b"OK", b"OK", [b"2"]]
    assert_intact(r, before)


def test_persist_a_load_key_and_a_dag_of_tensor_ops_only(r: redis.Redis) -> None:
    # PERSIST may name a LOAD key: it is written back as loaded.
    assert r.execute_command("AI.DAGEXECUTE", "LOAD", 1, "a", "PERSIST", 2, "a", "copy", "|>",
                             "AI.TENSORSET", "copy", "INT8", 2, "VALUES", 1, 2,
                             "|>", "AI.TENSORGET", "a", "META") == [
        b"OK", [b"dtype", b"FLOAT", b"shape", [3, 2]]]
    np.testing.assert_array_equal(tensorget(r, "a"), A)
    assert r.execute_command("AI.TENSORGET", "copy", "VALUES") == [1, 2]
    # ROUTING alone is enough for a DAG of tensor ops, which needs no worker.
    assert r.execute_command("AI.DAGEXECUTE", "ROUTING", "anything", "|>",
                             "AI.TENSORSET", "t", "DOUBLE", 2, "VALUES", 1.5, 2.5,
                             "|>", "AI.TENSORGET", "t", "VALUES",
                             "|>", "AI.TENSORGET", "t", "BLOB",
                             "|>", "AI.TENSORGET", "t") == [
        b"OK", [b"1.5", b"2.5"], np.array([1.5, 2.5]).tobytes(),
        [b"dtype", b"DOUBLE", b"shape", [2], b"blob", np.array([1.5, 2.5]).tobytes()]]
    assert r.exists("t") == 0


def test_nothing_is_written_when_an_op_fails(r: redis.Redis) -> None:
    tensorset(r, "wide", np.ones((3, 4), dtype=np.float32))
    before = snapshot(r)
    reply = r.execute_command(
        "AI.DAGEXECUTE", "LOAD", 2, "a", "wide", "PERSIST", 2, "first", "result", "|>",
        "AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "a", "OUTPUTS", 2, "first", "p",
        "|>", "AI.MODELEXECUTE", "m", "INPUTS", 2, "first", "wide", "OUTPUTS", 2, "bad", "p2",
        "|>", "AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "bad", "p2", "OUTPUTS", 1, "result",
        "|>", "AI.TENSORGET", "result", "VALUES",
        "|>", "AI.TENSORGET", "first", "VALUES")
    assert len(reply) == 5
    assert reply[0] == b"OK"
    # The error is an element of the reply, not the reply.
    assert isinstance(reply[1], redis.ResponseError)
    assert "The size of tensor a (2) must match the size of tensor b (4)" in str(reply[1])
    # Ops after the failure did not run; a tensor never produced reads NA.
    assert reply[2] == b"NA"
    assert reply[3] == b"NA"
    # A tensor that was produced before the failure is still answered.
    assert [float(v) for v in reply[4]] == list((A * 2).reshape(-1))
    # PERSIST wrote nothing, although "first" was computed.
    assert_intact(r, before)


def test_failing_script_op_stops_the_dag(r: redis.Redis) -> None:
    before = snapshot(r)
    reply = r.execute_command(
        "AI.DAGEXECUTE", "LOAD", 1, "a", "PERSIST", 1, "out", "|>",
        "AI.SCRIPTEXECUTE", "s", "scale", "INPUTS", 1, "a", "ARGS", 1, "not-a-number", "OUTPUTS", 1, "y",
        "|>", "AI.MODELEXECUTE", "m", "INPUTS", 2, "y", "y", "OUTPUTS", 2, "out", "p")
    # float("not-a-number") raised inside the script: its message is the element.
    assert isinstance(reply[0], redis.ResponseError) and str(reply[0]) and reply[1] == b"NA"
    assert_intact(r, before)


def test_persist_onto_a_key_of_another_type_writes_nothing(r: redis.Redis) -> None:
    r.set("plain", "keep")
    before = snapshot(r)
    reply = r.execute_command("AI.DAGEXECUTE", "LOAD", 1, "a", "PERSIST", 2, "new", "plain", "|>",
                              "AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "a", "OUTPUTS", 2, "new", "plain")
    # One entry per op, then one more for the failed persist.
    assert reply[0] == b"OK" and len(reply) == 2
    assert isinstance(reply[1], redis.ResponseError) and "WRONGTYPE" in str(reply[1])
    assert_intact(r, before)


def test_dagexecute_ro_runs_and_refuses_writes(r: redis.Redis) -> None:
    before = snapshot(r)
    reply = r.execute_command("AI.DAGEXECUTE_RO", "LOAD", 2, "a", "b", "|>",
                              "AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "b", "OUTPUTS", 2, "s", "p",
                              "|>", "AI.TENSORGET", "s", "META", "BLOB")
    assert reply[0] == b"OK"
    np.testing.assert_array_equal(from_meta_blob(reply[1]), A + B)
    assert error_of(lambda: r.execute_command(
        "AI.DAGEXECUTE_RO", "LOAD", 1, "a", "PERSIST", 1, "s", "|>",
        "AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "a", "OUTPUTS", 2, "s", "p")) == (
        "PERSIST cannot be specified in a read-only DAG")
    assert error_of(lambda: r.execute_command(
        "AI.DAGEXECUTE_RO", "LOAD", 1, "a", "|>",
        "AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "a", "a", "OUTPUTS", 1, "y")) == (
        "AI.SCRIPTEXECUTE command cannot be specified in a read-only DAG")
    assert_intact(r, before)


def test_deprecated_dagrun_with_modelrun_and_scriptrun(r: redis.Redis) -> None:
    before = snapshot(r)
    reply = r.execute_command(
        "AI.DAGRUN", "LOAD", 1, "a", "PERSIST", 1, "total", "|>",
        "AI.TENSORSET", "one", "FLOAT", 3, 2, "VALUES", 1, 1, 1, 1, 1, 1,
        "|>", "AI.MODELRUN", "m", "INPUTS", "a", "one", "OUTPUTS", "s", "p",
        "|>", "AI.SCRIPTRUN", "old", "total", "INPUTS", "s", "$", "p", "one", "OUTPUTS", "total",
        "|>", "AI.SCRIPTRUN", "old", "add", "INPUTS", "total", "total", "OUTPUTS", "twice",
        "|>", "AI.TENSORGET", "twice", "VALUES")
    expected = (A + 1) + A + 1
    assert reply[:4] == [b"OK", b"OK", b"OK", b"OK"]
    assert [float(v) for v in reply[4]] == list((expected * 2).reshape(-1))
    after = snapshot(r)
    assert set(after) == set(before) | {b"total"}
    np.testing.assert_array_equal(tensorget(r, "total"), expected)
    # DAGRUN needs none of LOAD/PERSIST; DAGRUN_RO runs models.
    assert r.execute_command("AI.DAGRUN", "|>", "AI.TENSORSET", "x", "FLOAT", 1, "VALUES", 4,
                             "|>", "AI.TENSORGET", "x", "VALUES") == [b"OK", [b"4"]]
    assert r.execute_command("AI.DAGRUN_RO", "LOAD", 1, "b", "|>",
                             "AI.MODELRUN", "m", "INPUTS", "b", "b", "OUTPUTS", "s", "p",
                             "|>", "AI.TENSORGET", "p", "VALUES")[1] == [
        str(int(v)).encode() for v in (B * B).reshape(-1)]
    assert error_of(lambda: r.execute_command("AI.DAGRUN_RO", "PERSIST", 1, "x", "|>",
                                              "AI.TENSORSET", "x", "FLOAT", 1)) == (
        "PERSIST cannot be specified in a read-only DAG")


def test_script_op_calling_redis_writes_through_redis_execute(r: redis.Redis) -> None:
    # A script op's own Redis writes happen (they are not DAG tensors); its output stays local.
    reply = r.execute_command("AI.DAGEXECUTE", "LOAD", 1, "a", "|>",
                              "AI.SCRIPTEXECUTE", "s", "remember", "KEYS", 1, "memo", "INPUTS", 1, "a",
                              "OUTPUTS", 1, "y",
                              "|>", "AI.TENSORGET", "y", "VALUES")
    assert reply == [b"OK", [b"2", b"3", b"4", b"5", b"6", b"7"]]
    assert r.get("memo") == b"21"
    assert r.exists("y") == 0


def test_command_getkeys_for_dag_commands(r: redis.Redis) -> None:
    dag = ["LOAD", 2, "a", "b", "PERSIST", 1, "out", "ROUTING", "tag", "TIMEOUT", 100, "|>",
           "AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "b", "OUTPUTS", 2, "s", "p",
           "|>", "AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "s", "p", "OUTPUTS", 1, "out",
           "|>", "AI.TENSORGET", "out", "VALUES"]
    # LOAD/PERSIST keys, the ROUTING value and the model/script keys; DAG-local names are not keys.
    assert r.command_getkeys("AI.DAGEXECUTE", *dag) == ["a", "b", "out", "tag", "m", "s"]
    assert r.command_getkeys("AI.DAGEXECUTE_RO", "LOAD", 1, "a", "|>", "AI.MODELEXECUTE", "m", "INPUTS",
                             1, "a", "OUTPUTS", 1, "y") == ["a", "m"]
    assert r.command_getkeys("AI.DAGRUN", "LOAD", 1, "a", "PERSIST", 1, "z", "|>",
                             "AI.MODELRUN", "m", "INPUTS", "a", "a", "OUTPUTS", "s", "p",
                             "|>", "AI.SCRIPTRUN", "old", "add", "INPUTS", "s", "p", "OUTPUTS", "z") == [
        "a", "z", "m", "old"]
    assert r.command_getkeys("AI.DAGRUN_RO", "LOAD", 1, "a", "|>", "AI.TENSORGET", "a") == ["a"]


# ---------------------------------------------------------------------------
# statistics


def test_ai_info_counts_model_and_script_ops_of_dags(r: redis.Redis) -> None:
    dag = ["AI.DAGEXECUTE", "LOAD", 2, "a", "b", "|>",
           "AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "b", "OUTPUTS", 2, "s1", "p1",
           "|>", "AI.MODELEXECUTE", "m", "INPUTS", 2, "s1", "p1", "OUTPUTS", 2, "s2", "p2",
           "|>", "AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "s2", "p2", "OUTPUTS", 1, "y"]
    for _ in range(2):
        assert r.execute_command(*dag) == [b"OK", b"OK", b"OK"]
    info = run_info(r, "m")
    # Two ops per DAG, each a batch of dim0 = 3.
    assert (info["calls"], info["samples"], info["errors"]) == (4, 12, 0)
    assert info["duration"] > 0
    script = run_info(r, "s")
    assert (script["calls"], script["samples"], script["errors"]) == (2, -1, 0)

    # A failing op counts a call and an error; the op it stops counts nothing.
    tensorset(r, "wide", np.ones((3, 4), dtype=np.float32))
    reply = r.execute_command("AI.DAGEXECUTE", "LOAD", 2, "a", "wide", "|>",
                              "AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "wide", "OUTPUTS", 2, "s1", "p1",
                              "|>", "AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 2, "s1", "p1", "OUTPUTS", 1, "y")
    assert isinstance(reply[0], redis.ResponseError) and reply[1] == b"NA"
    info = run_info(r, "m")
    assert (info["calls"], info["samples"], info["errors"]) == (5, 12, 1)
    assert run_info(r, "s")["calls"] == 2

    # A DAG refused while parsing counts nothing.
    with pytest.raises(redis.ResponseError, match="INPUT key cannot be found in DAG"):
        r.execute_command("AI.DAGEXECUTE", "LOAD", 1, "a", "|>",
                          "AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "nowhere", "OUTPUTS", 2, "s", "p")
    assert run_info(r, "m")["calls"] == 5


def test_slowlog_holds_the_dag_with_its_background_time(r: redis.Redis, blobs: dict[str, bytes]) -> None:
    r.execute_command("AI.MODELSTORE", "slow", "TORCH", "CPU", "BLOB", blobs["slow"])
    tensorset(r, "x", np.ones((64, 64), dtype=np.float32))
    tensorset(r, "n", np.array([3000], dtype=np.int64))
    r.config_set("slowlog-log-slower-than", 0)
    try:
        r.slowlog_reset()
        started = time.monotonic()
        assert r.execute_command("AI.DAGEXECUTE", "LOAD", 2, "x", "n", "|>",
                                 "AI.MODELEXECUTE", "slow", "INPUTS", 2, "x", "n", "OUTPUTS", 1, "y") == [b"OK"]
        elapsed_us = (time.monotonic() - started) * 1e6
        entries = [e for e in r.slowlog_get(128) if e["command"].startswith(b"AI.DAGEXECUTE")]
        assert len(entries) == 1
        # The entry includes the time spent on the worker, not only the parsing.
        slow_duration = run_info(r, "slow")["duration"]
        assert 0.5 * slow_duration <= entries[0]["duration"] <= elapsed_us * 1.1 + 1000
    finally:
        r.config_set("slowlog-log-slower-than", 10000)


# ---------------------------------------------------------------------------
# devices and timeouts


def _timed(call: Callable[[], object]) -> tuple[float, object]:
    started = time.monotonic()
    reply = call()
    return time.monotonic() - started, reply


def test_ops_on_two_devices_run_in_parallel(r: redis.Redis, blobs: dict[str, bytes]) -> None:
    """A slow model on CPU and its copy on CPU:1 in one DAG: the DAG takes clearly less
    wall time than the two runs' own durations (AI.INFO, measured on the workers) added
    up. The machine may be shared, so the check is relative to those durations, which
    grow with the load as much as the DAG does, and one clean attempt out of five is
    enough."""
    r.execute_command("AI.MODELSTORE", "slow", "TORCH", "CPU", "BLOB", blobs["slow"])
    r.execute_command("AI.MODELSTORE", "slow1", "TORCH", "CPU:1", "BLOB", blobs["slow"])
    tensorset(r, "x", np.ones((64, 64), dtype=np.float32) * 0.01)
    # Calibrate: about 300 ms per run on this machine, now.
    tensorset(r, "n", np.array([2000], dtype=np.int64))
    seconds, _ = _timed(lambda: r.execute_command("AI.MODELEXECUTE", "slow", "INPUTS", 2, "x", "n",
                                                  "OUTPUTS", 1, "y"))
    steps = int(min(200_000, max(200, 2000 * 0.3 / max(seconds, 1e-3))))
    tensorset(r, "n", np.array([steps], dtype=np.int64))

    def dag(second_model: str) -> list[object]:
        return r.execute_command("AI.DAGEXECUTE", "LOAD", 2, "x", "n", "|>",
                                 "AI.MODELEXECUTE", "slow", "INPUTS", 2, "x", "n", "OUTPUTS", 1, "y0",
                                 "|>", "AI.MODELEXECUTE", second_model, "INPUTS", 2, "x", "n", "OUTPUTS", 1, "y1",
                                 "|>", "AI.TENSORGET", "y0", "BLOB", "|>", "AI.TENSORGET", "y1", "BLOB")

    def op_durations() -> float:
        return sum(int(run_info(r, key)["duration"]) for key in ("slow", "slow1")) / 1e6

    attempts = []
    for _ in range(5):
        for key in ("slow", "slow1"):
            r.execute_command("AI.INFO", key, "RESETSTAT")
        parallel, reply = _timed(lambda: dag("slow1"))  # one op on CPU, one on CPU:1
        assert reply[:2] == [b"OK", b"OK"] and reply[2] == reply[3]
        summed = op_durations()
        serial, reply_serial = _timed(lambda: dag("slow"))  # both on the CPU queue, for the report
        assert reply_serial[2] == reply[2]
        attempts.append((round(parallel, 3), round(summed, 3), round(serial, 3)))
        if parallel < 0.8 * summed:
            break
    print(f"(DAG wall s, sum of op durations s, same DAG on one device s): {attempts}; steps {steps}")
    assert any(p < 0.8 * d for p, d, _ in attempts), (
        f"the two ops did not overlap: (wall, summed durations, serial wall) {attempts}")
    # Run one after the other on a single device, the same ops never overlap.
    for key in ("slow",):
        r.execute_command("AI.INFO", key, "RESETSTAT")
    serial, _ = _timed(lambda: dag("slow"))
    assert serial >= 0.95 * int(run_info(r, "slow")["duration"]) / 1e6


def test_ops_wait_for_inputs_made_on_another_device(r: redis.Redis) -> None:
    # CPU:1 -> CPU -> CPU:1: each sub-job waits for the other device's output.
    reply = r.execute_command("AI.DAGEXECUTE", "LOAD", 2, "a", "b", "PERSIST", 1, "s3", "|>",
                              "AI.MODELEXECUTE", "m1", "INPUTS", 2, "a", "b", "OUTPUTS", 2, "s1", "p1",
                              "|>", "AI.MODELEXECUTE", "m", "INPUTS", 2, "s1", "p1", "OUTPUTS", 2, "s2", "p2",
                              "|>", "AI.MODELEXECUTE", "m1", "INPUTS", 2, "s2", "p2", "OUTPUTS", 2, "s3", "p3",
                              "|>", "AI.TENSORGET", "p3", "BLOB")
    s1, p1 = A + B, A * B
    s2, p2 = s1 + p1, s1 * p1
    assert reply[:3] == [b"OK", b"OK", b"OK"]
    np.testing.assert_array_equal(np.frombuffer(reply[3], dtype=np.float32).reshape(3, 2), s2 * p2)
    np.testing.assert_array_equal(tensorget(r, "s3"), s2 + p2)
    assert run_info(r, "m1")["calls"] == 2 and run_info(r, "m")["calls"] == 1

    # A failure on one device releases the other device's waiting op.
    tensorset(r, "wide", np.ones((3, 4), dtype=np.float32))
    before = snapshot(r)
    seconds, reply = _timed(lambda: r.execute_command(
        "AI.DAGEXECUTE", "LOAD", 2, "a", "wide", "PERSIST", 1, "z", "|>",
        "AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "wide", "OUTPUTS", 2, "s", "p",
        "|>", "AI.MODELEXECUTE", "m1", "INPUTS", 2, "s", "p", "OUTPUTS", 2, "z", "q"))
    assert isinstance(reply[0], redis.ResponseError) and reply[1] == b"NA"
    assert seconds < 10
    assert_intact(r, before)


def test_dag_timeout_answers_timedout(r: redis.Redis, shared_server: RedisServer,
                                     blobs: dict[str, bytes]) -> None:
    r.execute_command("AI.MODELSTORE", "slow", "TORCH", "CPU", "BLOB", blobs["slow"])
    tensorset(r, "x", np.ones((64, 64), dtype=np.float32) * 0.01)
    tensorset(r, "n", np.array([2000], dtype=np.int64))
    seconds, _ = _timed(lambda: r.execute_command("AI.MODELEXECUTE", "slow", "INPUTS", 2, "x", "n",
                                                  "OUTPUTS", 1, "y"))
    steps = int(min(400_000, max(400, 2000 * 0.4 / max(seconds, 1e-3))))  # about 400 ms
    tensorset(r, "n", np.array([steps], dtype=np.int64))
    r.execute_command("AI.INFO", "slow", "RESETSTAT")
    r.delete("y")
    before = snapshot(r)

    # 1. The DAG waits behind another client's slow run and is late when a worker reaches it.
    result: dict[str, object] = {}

    def slow_run() -> None:
        result["slow"] = r.execute_command("AI.MODELEXECUTE", "slow", "INPUTS", 2, "x", "n",
                                           "OUTPUTS", 1, "y")

    other = shared_server.client(socket_timeout=60)
    thread = threading.Thread(target=slow_run, daemon=True)
    thread.start()
    wait_until(lambda: int(other.info("clients")["blocked_clients"]) == 1, what="the slow run to block")
    reply = other.execute_command("AI.DAGEXECUTE", "LOAD", 1, "a", "PERSIST", 1, "out", "TIMEOUT", 20, "|>",
                                  "AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "a", "OUTPUTS", 2, "out", "p")
    thread.join(30)
    assert reply == b"TIMEDOUT"  # a status reply, not an array and not an error
    assert result["slow"] == b"OK"
    assert run_info(r, "m")["calls"] == 0  # skipped, not run
    r.delete("y")
    assert_intact(r, before)

    # 2. The first op runs past the deadline: the next op is skipped, the one that ran counts.
    reply = r.execute_command("AI.DAGEXECUTE", "LOAD", 3, "x", "n", "a", "PERSIST", 1, "out", "TIMEOUT", 50,
                              "|>", "AI.MODELEXECUTE", "slow", "INPUTS", 2, "x", "n", "OUTPUTS", 1, "y",
                              "|>", "AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "a", "OUTPUTS", 2, "out", "p")
    assert reply == b"TIMEDOUT"
    assert run_info(r, "slow")["calls"] == 2 and run_info(r, "m")["calls"] == 0
    assert_intact(r, before)

    # 3. A generous TIMEOUT runs; 0 and negative values get past the parser and mean none (quirk).
    for timeout in (60000, 0, -5):
        assert r.execute_command("AI.DAGEXECUTE", "LOAD", 1, "a", "TIMEOUT", timeout, "|>",
                                 "AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "a", "OUTPUTS", 2, "s", "p",
                                 "|>", "AI.TENSORGET", "s", "VALUES")[0] == b"OK"
    assert run_info(r, "m")["calls"] == 3


# ---------------------------------------------------------------------------
# replication


def test_persisted_tensors_replicate_and_read_only_dags_run_on_a_replica(
        server_factory: ServerFactory, blobs: dict[str, bytes]) -> None:
    primary = server_factory(server_args=["--repl-diskless-sync-delay", "0"])
    replica = server_factory(server_args=["--replicaof", "127.0.0.1", str(primary.port)])
    rp, rr = primary.client(socket_timeout=60), replica.client(socket_timeout=60)
    wait_until(lambda: rr.info("replication").get("master_link_status") == "up", what="the replica to sync")

    rp.execute_command("AI.MODELSTORE", "m", "TORCH", "CPU", "BLOB", blobs["add"])
    tensorset(rp, "a", A)
    reply = rp.execute_command("AI.DAGEXECUTE", "LOAD", 1, "a", "PERSIST", 1, "sum", "|>",
                               "AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "a", "OUTPUTS", 2, "sum", "product")
    assert reply == [b"OK"]
    assert rp.execute_command("WAIT", 1, 10000) == 1
    # The persisted key reached the replica as AI.TENSORSET; the DAG itself did not run there.
    np.testing.assert_array_equal(tensorget(rr, "sum"), A * 2)
    assert rr.exists("product") == 0
    assert run_info(rr, "m")["calls"] == 0
    stats = rr.info("commandstats")
    assert "cmdstat_ai.dagexecute" not in stats
    assert int(stats["cmdstat_ai.tensorset"]["calls"]) == 2  # a, then sum

    # A read-only DAG runs on the read-only replica; one that writes is refused there.
    reply = rr.execute_command("AI.DAGEXECUTE_RO", "LOAD", 2, "sum", "a", "|>",
                               "AI.MODELEXECUTE", "m", "INPUTS", 2, "sum", "a", "OUTPUTS", 2, "s", "p",
                               "|>", "AI.TENSORGET", "p", "BLOB")
    assert reply[0] == b"OK"
    np.testing.assert_array_equal(np.frombuffer(reply[1], dtype=np.float32).reshape(3, 2), A * 2 * A)
    assert run_info(rr, "m")["calls"] == 1
    with pytest.raises(redis.exceptions.ReadOnlyError):
        rr.execute_command("AI.DAGEXECUTE", "LOAD", 1, "a", "|>", "AI.TENSORGET", "a", "VALUES")
