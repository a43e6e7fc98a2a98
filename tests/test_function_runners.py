"""A user runs models, scripts and DAGs from an in-server function with
RedisGears' `redisAI` runners, and sees the runs in AI.INFO as runs of the
model: they went through the model's device queue, not the function's thread.

Each story loads a library, stores a small model or script, calls the
function with AI.FCALL and checks the reply, the keyspace and AI.INFO.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from conftest import RedisServer, wait_until
from keyspace import assert_intact, snapshot
from model_builders import onnx_add, torch_add

SHARED_SERVER_MODULE_ARGS = ["FUNCTION_THREADS", "2"]

RUNNERS = '''#!python name=runners
import redisAI
from redisai_py.functions import register_function

def inputs(args):
    a = redisAI.createTensorFromValues("FLOAT", [2], [float(args[0]), float(args[1])])
    b = redisAI.createTensorFromValues("FLOAT", [2], [10.0, 20.0])
    return a, b

def sum_and_product(keys, args):
    """A runner of the add model with the inputs of args, both outputs asked for."""
    a, b = inputs(args)
    runner = redisAI.createModelRunner(keys[0])
    redisAI.modelRunnerAddInput(runner, "a", a)
    redisAI.modelRunnerAddInput(runner, "b", b)
    redisAI.modelRunnerAddOutput(runner, "sum")
    redisAI.modelRunnerAddOutput(runner, "product")
    return runner

def model_sync(keys, args):
    a, b = inputs(args)
    runner = redisAI.createModelRunner(keys[0])
    assert redisAI.modelRunnerAddInput(runner, "a", a) == 1
    redisAI.modelRunnerAddInput(runner, "b", b)
    assert redisAI.modelRunnerAddOutput(runner, "sum") == 1
    redisAI.modelRunnerAddOutput(runner, "product")
    total, product = redisAI.modelRunnerRun(runner)
    return [redisAI.tensorToFlatList(total), redisAI.tensorToFlatList(product),
            list(redisAI.tensorGetDims(total))]

async def model_async(keys, args):
    runner = sum_and_product(keys, args)
    total, _ = await redisAI.modelRunnerRunAsync(runner)
    return redisAI.tensorToFlatList(total)

async def many_async(keys, args):
    import asyncio
    runs = []
    for i in range(int(args[0])):
        runner = redisAI.createModelRunner(keys[0])
        redisAI.modelRunnerAddInput(runner, "a", redisAI.createTensorFromValues("FLOAT", [2], [float(i), 0.0]))
        redisAI.modelRunnerAddInput(runner, "b", redisAI.createTensorFromValues("FLOAT", [2], [1.0, 1.0]))
        redisAI.modelRunnerAddOutput(runner, "sum")
        redisAI.modelRunnerAddOutput(runner, "product")
        runs.append(redisAI.modelRunnerRunAsync(runner))
    return [redisAI.tensorToFlatList(out[0])[0] for out in await asyncio.gather(*runs)]

def reuse(keys, args):
    runner = sum_and_product(keys, args)
    redisAI.modelRunnerRun(runner)
    return redisAI.modelRunnerRun(runner)

def async_without_await(keys, args):
    return redisAI.modelRunnerRunAsync(redisAI.createModelRunner(keys[0]))

async def started_not_awaited(keys, args):
    runner = sum_and_product(keys, args)
    redisAI.modelRunnerRunAsync(runner)
    return "left running"

def runner_of(keys, args):
    redisAI.createModelRunner(keys[0])
    return "made"

def store_result(keys, args):
    runner = sum_and_product(keys, args)
    total, _ = redisAI.modelRunnerRun(runner)
    redisAI.setTensorInKey(keys[1], total)
    return "OK"

for f in (model_sync, model_async, many_async, reuse, async_without_await, started_not_awaited, runner_of):
    register_function(f.__name__, f, flags=["no-writes"])
register_function("store_result", store_result)
'''

SCRIPT = '''
def add(a, b):
    return a + b

def entry(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] * 2, tensors[1] * 3
'''

SCRIPT_RUNNERS = '''#!python name=scripts
import redisAI
from redisai_py.functions import register_function

def t(values):
    return redisAI.createTensorFromValues("FLOAT", [len(values)], [float(v) for v in values])

def script_sync(keys, args):
    runner = redisAI.createScriptRunner(keys[0], args[0].decode())
    assert redisAI.scriptRunnerAddInput(runner, t([1, 2])) == 1
    assert redisAI.scriptRunnerAddInputList(runner, [t([3, 4])]) == 1
    assert redisAI.scriptRunnerAddOutput(runner) == 1
    if args[0] == b"entry":
        redisAI.scriptRunnerAddOutput(runner)
    return [redisAI.tensorToFlatList(o) for o in redisAI.scriptRunnerRun(runner)]

async def script_async(keys, args):
    runner = redisAI.createScriptRunner(keys[0], "add")
    redisAI.scriptRunnerAddInput(runner, t([1, 2]))
    redisAI.scriptRunnerAddInput(runner, t([5, 5]))
    redisAI.scriptRunnerAddOutput(runner)
    (out,) = await redisAI.scriptRunnerRunAsync(runner)
    return redisAI.tensorToFlatList(out)

async def dag(keys, args):
    runner = redisAI.createDAGRunner()
    assert runner.Input("a", t([1, 2])) is runner
    out = await (runner.TensorSet("b", t([10, 20]))
                 .ModelRun(name=keys[0], inputs=["a", "b"], outputs=["s", "p"])
                 .ScriptRun(name=keys[1], func="add", inputs=["s", "p"], outputs=["r"])
                 .TensorGet("r").TensorGet("s").Run())
    return [redisAI.tensorToFlatList(o) for o in out]

async def dag_string(keys, args):
    runner = redisAI.createDAGRunner().OpsFromString(
        f"|> AI.TENSORSET x FLOAT 2 VALUES 1 2 |> AI.TENSORSET y FLOAT 2 VALUES 3 4 "
        f"|> AI.MODELEXECUTE {keys[0].decode()} INPUTS 2 x y OUTPUTS 2 s p |> AI.TENSORGET p")
    (p,) = await runner.Run()
    return redisAI.tensorToFlatList(p)

async def dag_reuse(keys, args):
    runner = redisAI.createDAGRunner().Input("a", t([1]))
    runner.Run()
    runner.TensorGet("a")

async def dag_missing(keys, args):
    return await redisAI.createDAGRunner().ModelRun(name=keys[0], inputs=["nope", "b"], outputs=["s", "p"]).Run()

for f in (script_sync, script_async, dag, dag_string, dag_reuse, dag_missing):
    register_function(f.__name__, f, flags=["no-writes"])
'''


@pytest.fixture
def r(shared_server: RedisServer) -> Iterator[redis.Redis]:
    client = shared_server.client(protocol=3)
    client.flushall()
    client.execute_command("AI.FUNCTION", "FLUSH")
    client.execute_command("AI.FUNCTION", "LOAD", RUNNERS)
    client.execute_command("AI.FUNCTION", "LOAD", SCRIPT_RUNNERS)
    yield client


@pytest.fixture(scope="module")
def torch_blob() -> bytes:
    return torch_add()


def info(r: redis.Redis, key: str) -> dict[bytes, object]:
    reply = r.execute_command("AI.INFO", key)
    return reply if isinstance(reply, dict) else dict(zip(reply[::2], reply[1::2]))


# ------------------------------------------------------------ model runners


@pytest.mark.parametrize("backend", ["TORCH", "ONNX"])
def test_a_function_runs_a_model_synchronously_and_ai_info_counts_it(r: redis.Redis, torch_blob: bytes,
                                                                       backend: str) -> None:
    """Unlike Gears, a synchronous run of an ONNX model is allowed."""
    blob = torch_blob if backend == "TORCH" else onnx_add()
    r.execute_command("AI.MODELSTORE", "m", backend, "CPU", "BLOB", blob)
    reply = r.execute_command("AI.FCALL", "model_sync", 1, "m", 1, 2)
    assert reply == [[11.0, 22.0], [10.0, 40.0], [2]]
    stats = info(r, "m")
    assert stats[b"calls"] == 1 and stats[b"errors"] == 0 and stats[b"samples"] == 2


def test_awaited_runs_go_through_the_queue_and_can_run_together(r: redis.Redis, torch_blob: bytes) -> None:
    r.execute_command("AI.MODELSTORE", "m", "TORCH", "CPU", "BLOB", torch_blob)
    assert r.execute_command("AI.FCALL", "model_async", 1, "m", 3, 4) == [13.0, 24.0]
    assert r.execute_command("AI.FCALL", "many_async", 1, "m", 6) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert info(r, "m")[b"calls"] == 7


def test_a_run_nobody_awaits_still_runs_and_its_result_is_dropped(r: redis.Redis, torch_blob: bytes) -> None:
    """The run ends after its call has replied; the function thread that
    started it takes the late result and carries on with the next calls."""
    r.execute_command("AI.MODELSTORE", "m", "TORCH", "CPU", "BLOB", torch_blob)
    assert r.execute_command("AI.FCALL", "started_not_awaited", 1, "m", 1, 2) == b"left running"
    wait_until(lambda: info(r, "m")[b"calls"] == 1)
    for i in range(4):  # both function threads, each awaiting after its late result
        assert r.execute_command("AI.FCALL", "model_async", 1, "m", i, 0) == [10.0 + i, 20.0]
    assert info(r, "m")[b"calls"] == 5 and info(r, "m")[b"errors"] == 0


def test_function_runs_batch_with_each_other_on_a_model_with_batchsize(r: redis.Redis, torch_blob: bytes) -> None:
    """MINBATCHSIZE 4 holds the first runs until four samples wait: only a
    queue that sees the function's runs as model runs can release them."""
    r.execute_command("AI.MODELSTORE", "m", "TORCH", "CPU", "BATCHSIZE", 8, "MINBATCHSIZE", 4,
                      "MINBATCHTIMEOUT", 5000, "BLOB", torch_blob)
    start = time.monotonic()
    assert r.execute_command("AI.FCALL", "many_async", 1, "m", 2) == [1.0, 2.0]  # 2 x dim 0 of 2 = 4 samples
    assert time.monotonic() - start < 4.0  # released by the batch, not by MINBATCHTIMEOUT
    assert info(r, "m")[b"calls"] == 2


def test_a_function_inside_multi_runs_its_model_while_the_main_thread_waits(r: redis.Redis,
                                                                            torch_blob: bytes) -> None:
    """In MULTI the main thread waits for the function (it cannot block the
    client); it still queues the function's model run and counts it."""
    r.execute_command("AI.MODELSTORE", "m", "TORCH", "CPU", "BLOB", torch_blob)
    pipe = r.pipeline(transaction=True)
    pipe.execute_command("AI.FCALL", "store_result", 2, "m", "out", 1, 2)
    pipe.execute_command("AI.FCALL", "model_async", 1, "m", 3, 4)
    assert pipe.execute() == [b"OK", [13.0, 24.0]]
    assert info(r, "m")[b"calls"] == 2 and r.exists("out")


def test_a_runner_is_single_use_and_errors_are_replies(r: redis.Redis, torch_blob: bytes) -> None:
    r.execute_command("AI.MODELSTORE", "m", "TORCH", "CPU", "BLOB", torch_blob)
    r.set("plain", "v")
    before = snapshot(r)
    with pytest.raises(redis.ResponseError, match="^PyGraphRunner is invalid$"):
        r.execute_command("AI.FCALL", "reuse", 1, "m", 1, 2)
    for key in ("plain", "absent"):
        with pytest.raises(redis.ResponseError, match="^given key do not contain RedisAI model$"):
            r.execute_command("AI.FCALL", "runner_of", 1, key)
    with pytest.raises(redis.ResponseError, match="must be awaited inside an async def callback"):
        r.execute_command("AI.FCALL", "async_without_await", 1, "m")
    assert_intact(r, before)
    assert r.ping()


def test_a_failed_run_is_the_backends_error_and_counts_as_an_error(r: redis.Redis) -> None:
    """An ONNX model of fixed shape [2] given the inputs of another shape."""
    r.execute_command("AI.FUNCTION", "LOAD", '''#!python name=wrong
import redisAI
from redisai_py.functions import register_function

def wrong_runner(keys):
    runner = redisAI.createModelRunner(keys[0])
    t = redisAI.createTensorFromValues("FLOAT", [3], [1.0, 2.0, 3.0])
    redisAI.modelRunnerAddInput(runner, "a", t)
    redisAI.modelRunnerAddInput(runner, "b", t)
    redisAI.modelRunnerAddOutput(runner, "sum")
    redisAI.modelRunnerAddOutput(runner, "product")
    return runner

def wrong(keys, args):
    return redisAI.modelRunnerRun(wrong_runner(keys))

async def wrong_async(keys, args):
    return await redisAI.modelRunnerRunAsync(wrong_runner(keys))

register_function("wrong", wrong, flags=["no-writes"])
register_function("wrong_async", wrong_async, flags=["no-writes"])
''')
    r.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", onnx_add())
    for function in ("wrong", "wrong_async"):
        with pytest.raises(redis.ResponseError, match="Got invalid dimensions for input"):
            r.execute_command("AI.FCALL", function, 1, "m")
    stats = info(r, "m")
    assert stats[b"calls"] == 2 and stats[b"errors"] == 2
    assert r.ping()


def test_a_functions_result_written_to_a_key_replicates_as_a_tensor(r: redis.Redis, torch_blob: bytes) -> None:
    r.execute_command("AI.MODELSTORE", "m", "TORCH", "CPU", "BLOB", torch_blob)
    assert r.execute_command("AI.FCALL", "store_result", 2, "m", "out", 1, 2) == b"OK"
    assert [float(v) for v in r.execute_command("AI.TENSORGET", "out", "VALUES")] == [11.0, 22.0]


def test_a_tenant_cannot_run_a_model_outside_its_keys(shared_server: RedisServer, r: redis.Redis,
                                                      torch_blob: bytes) -> None:
    r.execute_command("AI.MODELSTORE", "tenantB:m", "TORCH", "CPU", "BLOB", torch_blob)
    r.execute_command("ACL", "SETUSER", "tenantA", "on", ">pw", "resetkeys", "~tenantA:*",
                      "-@all", "+ai.fcall", "+ai.fcall_ro", "+ai.modelget")
    a = shared_server.client(username="tenantA", password="pw", protocol=3)
    with pytest.raises(redis.exceptions.NoPermissionError):
        a.execute_command("AI.FCALL", "runner_of", 1, "tenantB:m")  # AI.FCALL's own key check
    r.execute_command("AI.FUNCTION", "LOAD", '''#!python name=sneaky
import redisAI
from redisai_py.functions import register_function
register_function("sneak", lambda keys, args: redisAI.createModelRunner(args[0]) and "made")
''')
    with pytest.raises(redis.exceptions.NoPermissionError):
        a.execute_command("AI.FCALL", "sneak", 0, "tenantB:m")
    assert info(r, "tenantB:m")[b"calls"] == 0


def test_a_tenant_cannot_run_a_script_outside_its_keys(shared_server: RedisServer, r: redis.Redis) -> None:
    r.execute_command("AI.SCRIPTSTORE", "tenantB:s", "CPU", "ENTRY_POINTS", 1, "entry", "SOURCE", SCRIPT)
    r.execute_command("ACL", "SETUSER", "tenantS", "on", ">pw", "resetkeys", "~tenantA:*", "-@all", "+ai.fcall")
    r.execute_command("AI.FUNCTION", "LOAD", '''#!python name=sneaky_script
import redisAI
from redisai_py.functions import register_function
register_function("sneak", lambda keys, args: redisAI.createScriptRunner(args[0], "add") and "made")
''')
    a = shared_server.client(username="tenantS", password="pw")
    with pytest.raises(redis.exceptions.NoPermissionError, match="script's key"):
        a.execute_command("AI.FCALL", "sneak", 0, "tenantB:s")
    assert r.execute_command("AI.FCALL", "sneak", 0, "tenantB:s") == b"made"  # the default user may


# ----------------------------------------------------------- script runners


def test_a_function_runs_script_functions(r: redis.Redis) -> None:
    r.execute_command("AI.SCRIPTSTORE", "s", "CPU", "ENTRY_POINTS", 1, "entry", "SOURCE", SCRIPT)
    assert r.execute_command("AI.FCALL", "script_sync", 1, "s", "add") == [[4.0, 6.0]]
    assert r.execute_command("AI.FCALL", "script_sync", 1, "s", "entry") == [[2.0, 4.0], [9.0, 12.0]]
    assert r.execute_command("AI.FCALL", "script_async", 1, "s") == [6.0, 7.0]
    with pytest.raises(redis.ResponseError, match="Function does not exist: nothing"):
        r.execute_command("AI.FCALL", "script_sync", 1, "s", "nothing")
    stats = info(r, "s")
    assert stats[b"calls"] == 4 and stats[b"errors"] == 1
    with pytest.raises(redis.ResponseError, match="^given key do not contain RedisAI script$"):
        r.execute_command("AI.FCALL", "script_sync", 1, "absent", "add")


# -------------------------------------------------------------------- DAGs


def test_a_dag_runs_models_and_scripts_on_its_own_tensors(r: redis.Redis, torch_blob: bytes) -> None:
    r.execute_command("AI.MODELSTORE", "m", "TORCH", "CPU", "BLOB", torch_blob)
    r.execute_command("AI.SCRIPTSTORE", "s", "CPU", "ENTRY_POINTS", 1, "entry", "SOURCE", SCRIPT)
    before = snapshot(r)
    assert r.execute_command("AI.FCALL", "dag", 2, "m", "s") == [[21.0, 62.0], [11.0, 22.0]]
    assert r.execute_command("AI.FCALL", "dag_string", 1, "m") == [3.0, 8.0]
    assert_intact(r, before)  # a DAG writes no keys
    assert info(r, "m")[b"calls"] == 2 and info(r, "s")[b"calls"] == 1


def test_a_dag_is_single_use_and_names_must_exist(r: redis.Redis, torch_blob: bytes) -> None:
    r.execute_command("AI.MODELSTORE", "m", "TORCH", "CPU", "BLOB", torch_blob)
    with pytest.raises(redis.ResponseError, match="^PyDAGRunner is invalid$"):
        r.execute_command("AI.FCALL", "dag_reuse", 0)
    with pytest.raises(redis.ResponseError, match="^INPUT key cannot be found in DAG$"):
        r.execute_command("AI.FCALL", "dag_missing", 1, "m")
    assert info(r, "m")[b"calls"] == 0
    assert r.ping()


def test_the_main_thread_stayed_out_of_python(shared_server: RedisServer) -> None:
    """The runners' lookups and queueing above were main-thread C (runs last)."""
    assert "the Redis main thread took the GIL" not in shared_server.log()
