"""`redisAI`: RedisGears 1.2's tensor API for in-server functions.

A library imports it as `import redisAI` (the name Gears-era code uses; the
loader registers this module under it) or as `redisai_py.redis_ai`. The
functions keep Gears' names, argument order and error texts, so a function
written for RedisGears + RedisAI ports with few edits:

    createTensorFromValues(type, dims, values)   values must be floats
    createTensorFromBlob(type, dims, blob)       any bytes-like object
    tensorToFlatList(tensor) -> list of float or int
    tensorGetDataAsBlob(tensor) -> bytearray
    tensorGetDims(tensor) -> tuple of int
    getTensorFromKey(key) -> tensor
    mgetTensorsFromKeyspace(keys) -> list of tensors
    setTensorInKey(key, tensor) -> None
    msetTensorsInKeyspace({key: tensor, ...}) -> None

Tensors are `PyTensor` objects over a numpy array: `numpy.asarray(tensor)`
is the array without a copy, and a blob's tensor views the blob's bytes.
Keys are read and written with AI.TENSORGET / AI.TENSORSET through the
function's execute(), so they obey the caller's ACL rules, FCALL_RO's no
writes and the cluster slot rule, and writes replicate as AI.TENSORSET.
Errors raise `RedisAIFunctionError`,
whose text is the client's reply if left uncaught.

Runners (Gears' names and argument order; each single use):

    createModelRunner(key) -> runner
    modelRunnerAddInput(runner, name, tensor) -> 1
    modelRunnerAddOutput(runner, name) -> 1
    modelRunnerRun(runner) -> list of tensors
    await modelRunnerRunAsync(runner) -> list of tensors
    createScriptRunner(key, fn) -> runner
    scriptRunnerAddInput(runner, tensor), scriptRunnerAddInputList(runner, tensors),
    scriptRunnerAddOutput(runner), scriptRunnerRun(runner), await scriptRunnerRunAsync(runner)
    createDAGRunner() -> PyDAGRunner: Input, TensorSet, TensorGet, ModelRun,
        ScriptRun, OpsFromString (chainable), then `await dag.Run()`

A run is an ordinary run job on the model's (script's) device queue, queued
by the main thread as AI.MODELEXECUTE's are: it batches with other clients'
runs, obeys the loaded-session budget and counts in AI.INFO. The function's
thread waits for it without the GIL; the async forms do not wait: the run
ends into this thread's port (an eventfd its event loop watches), so other
coroutines run meanwhile.
"""

from __future__ import annotations

import asyncio
import shlex
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from redisai_py import _function_libraries as _libraries

__all__ = [
    "PyTensor", "createTensorFromValues", "createTensorFromBlob", "tensorToFlatList", "tensorGetDataAsBlob",
    "tensorGetDims", "getTensorFromKey", "mgetTensorsFromKeyspace", "setTensorInKey", "msetTensorsInKeyspace",
    "PyGraphRunner", "PyDAGRunner", "RedisAIFunctionError",
    "createModelRunner", "modelRunnerAddInput", "modelRunnerAddOutput", "modelRunnerRun", "modelRunnerRunAsync",
    "createScriptRunner", "scriptRunnerAddInput", "scriptRunnerAddInputList", "scriptRunnerAddOutput",
    "scriptRunnerRun", "scriptRunnerRunAsync", "createDAGRunner",
]

# Gears' tensor types; the numpy types are the shim's (its DTYPES table) where it is loaded.
_TYPES: dict[str, np.dtype[Any]] = {
    "FLOAT": np.dtype("<f4"), "DOUBLE": np.dtype("<f8"), "INT8": np.dtype("i1"), "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"), "UINT8": np.dtype("u1"), "UINT16": np.dtype("<u2"),
    "BOOL": np.dtype("?"),
}
_NAMES = {dtype: name for name, dtype in _TYPES.items()}


class RedisAIFunctionError(_libraries.FunctionError):
    """A tensor function's error; its text is the client's reply if uncaught."""


class PyTensor:
    """A tensor inside a function: a numpy array and its RedisAI type name."""

    __slots__ = ("_array",)

    def __init__(self, array: np.ndarray) -> None:
        if array.dtype not in _NAMES:
            raise RedisAIFunctionError(f"ERR unsupported tensor type {array.dtype}")
        self._array = array

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self._array if dtype is None else self._array.astype(dtype)

    @property
    def dtype(self) -> str:
        return _NAMES[self._array.dtype]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._array.shape)

    def __repr__(self) -> str:
        return f"PyTensor({self.dtype}, {self.shape})"


def _dtype(type_name: Any) -> np.dtype[Any]:
    name = type_name.upper() if isinstance(type_name, str) else None
    if name not in _TYPES:
        raise RedisAIFunctionError(f"ERR unsupported data type {type_name!r}")
    return _TYPES[name]


def _dims(dims: Iterable[Any]) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in dims)
    except (TypeError, ValueError):
        raise RedisAIFunctionError("ERR dims must be an iterable of int") from None
    if any(d < 0 for d in shape):
        raise RedisAIFunctionError("ERR invalid tensor dimension")
    return shape


def createTensorFromValues(type: str, dims: Iterable[int], values: Iterable[float]) -> PyTensor:  # noqa: A002,N802
    """A tensor of `type` and `dims` holding `values` (each a Python float, as in Gears)."""
    dtype, shape = _dtype(type), _dims(dims)
    items = list(values)
    if not all(isinstance(v, float) for v in items):
        raise RedisAIFunctionError("values arguments must be double")
    if len(items) != int(np.prod(shape, dtype=np.int64)):
        raise RedisAIFunctionError("ERR data length does not match tensor shape and type")
    return PyTensor(np.array(items, dtype=np.float64).astype(dtype).reshape(shape))


def createTensorFromBlob(type: str, dims: Iterable[int], blob: Any) -> PyTensor:  # noqa: A002,N802
    """A tensor of `type` and `dims` over `blob`'s bytes (no copy when the blob is contiguous)."""
    dtype, shape = _dtype(type), _dims(dims)
    try:
        view = memoryview(blob)
    except TypeError:
        raise RedisAIFunctionError("ERR blob must be bytes, bytearray or a buffer") from None
    data = view.cast("B") if view.c_contiguous else memoryview(view.tobytes())
    if data.nbytes != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
        raise RedisAIFunctionError("ERR data length does not match tensor shape and type")
    return PyTensor(np.frombuffer(data, dtype=dtype).reshape(shape))


def _tensor(value: Any) -> PyTensor:
    if not isinstance(value, PyTensor):
        raise RedisAIFunctionError("ERR expected a tensor (PyTensor)")
    return value


def tensorToFlatList(tensor: PyTensor) -> list[Any]:  # noqa: N802
    return np.asarray(_tensor(tensor)).reshape(-1).tolist()


def tensorGetDataAsBlob(tensor: PyTensor) -> bytearray:  # noqa: N802
    return bytearray(np.ascontiguousarray(np.asarray(_tensor(tensor))).tobytes())


def tensorGetDims(tensor: PyTensor) -> tuple[int, ...]:  # noqa: N802
    return _tensor(tensor).shape


def _stored(get: Callable[[str, bytes, int], Any], key: Any, renamed: Mapping[str, str]) -> Any:
    """What `get` (the shim's get_model, get_script or get_tensor) finds under `key`: one
    visit to the main thread, checked as the caller's ACL user and, in cluster mode, against
    the call's slot, as an execute() of the key would be. A refusal's text starting with a
    key of `renamed` becomes its value (Gears' wording)."""
    call = _libraries.current_call()
    try:
        return get(key.decode() if isinstance(key, bytes) else str(key), call.user, call.slot)
    except RuntimeError as exc:
        text = str(exc)
        raise RedisAIFunctionError(next((new for old, new in renamed.items() if text.startswith(old)), text)) from None


def _read_key(key: Any) -> PyTensor:
    """The tensor under `key`, shared with Redis (read-only, no copy)."""
    return PyTensor(np.asarray(_stored(_shim().get_tensor, key, {"WRONGTYPE": "ERR key is not a tensor"})))


def getTensorFromKey(key: str | bytes) -> PyTensor:  # noqa: N802
    """The tensor stored under `key` ("ERR tensor key is empty", "ERR key is not a tensor")."""
    return _read_key(key)


def mgetTensorsFromKeyspace(keys: Iterable[str | bytes]) -> list[PyTensor]:  # noqa: N802
    return [_read_key(key) for key in keys]


def _write_key(key: Any, tensor: Any) -> None:
    t = _tensor(tensor)
    array = np.ascontiguousarray(np.asarray(t))
    try:
        _libraries.execute_as_caller(("AI.TENSORSET", key, t.dtype, *t.shape, "BLOB", array.tobytes()))
    except _libraries.CommandError as exc:
        text = str(exc)
        raise RedisAIFunctionError("ERR Key is already set with non tensor values."
                                   if text.startswith("WRONGTYPE") else text) from None


def setTensorInKey(key: str | bytes, tensor: PyTensor) -> None:  # noqa: N802
    """Stores `tensor` under `key` (replicated as AI.TENSORSET)."""
    _write_key(key, tensor)


def msetTensorsInKeyspace(tensors: Mapping[str | bytes, PyTensor]) -> None:  # noqa: N802
    for key, tensor in tensors.items():
        _write_key(key, tensor)


# ------------------------------------------------------------------ runners

_NOT_A_MODEL = "given key do not contain RedisAI model"
_NOT_A_SCRIPT = "given key do not contain RedisAI script"


def _shim() -> Any:
    import _redisai_shim  # type: ignore[import-not-found]  # built into the shim

    return _redisai_shim


def _as_job_input(tensor: Any) -> tuple[str, tuple[int, ...], np.ndarray]:
    t = _tensor(tensor)
    return t.dtype, t.shape, np.ascontiguousarray(np.asarray(t))


def _run_job(target: Any, fn: str | None, inputs: list[PyTensor], noutputs: int) -> list[PyTensor]:
    """One run job on the target's device queue; this thread waits without the GIL."""
    try:
        ok, result = _shim().run_job(target, fn, [_as_job_input(t) for t in inputs], noutputs)
    except (TypeError, ValueError) as exc:
        raise RedisAIFunctionError(str(exc)) from None
    if not ok:
        raise RedisAIFunctionError(result)
    return [PyTensor(np.asarray(view)) for view in result]


class _AwaitedRuns:
    """The runs this thread's event loop awaits: each a future, resolved when
    the shim's port for this thread (an eventfd the device workers signal)
    says its job ended. No thread waits in between."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._fd = _shim().run_port_fd()
        # Weak: a run nobody awaits any more (its call was killed, or never
        # awaited it) leaves nothing behind; its result is dropped on arrival.
        self._pending: weakref.WeakValueDictionary[int, asyncio.Future[list[PyTensor]]] = \
            weakref.WeakValueDictionary()
        loop.add_reader(self._fd, self._deliver)

    def start(self, target: Any, fn: str | None, inputs: list[PyTensor], noutputs: int) -> asyncio.Future[list[PyTensor]]:
        try:
            token = _shim().run_job_start(target, fn, [_as_job_input(t) for t in inputs], noutputs)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise RedisAIFunctionError(str(exc)) from None
        future: asyncio.Future[list[PyTensor]] = self.loop.create_future()
        self._pending[token] = future
        return future

    def _deliver(self) -> None:
        for token, ok, result in _shim().run_port_take():
            future = self._pending.pop(token, None)
            if future is None or future.done():  # nobody awaits it any more
                continue
            if ok:
                future.set_result([PyTensor(np.asarray(view)) for view in result])
            else:
                future.set_exception(RedisAIFunctionError(result))

    def close(self) -> None:
        if not self.loop.is_closed():
            self.loop.remove_reader(self._fd)


_this_thread = threading.local()


def _awaited_runs(what: str) -> _AwaitedRuns:
    """This thread's awaited runs, bound to its running event loop."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise RedisAIFunctionError(f"ERR {what} must be awaited inside an async def callback") from None
    runs: _AwaitedRuns | None = getattr(_this_thread, "runs", None)
    if runs is None or runs.loop is not loop:
        if runs is not None:
            runs.close()
        runs = _this_thread.runs = _AwaitedRuns(loop)
    return runs


class PyGraphRunner:
    """A model or script run being built (Gears' runner object): single use."""

    __slots__ = ("_target", "_fn", "_inputs", "_outputs", "_valid")

    def __init__(self, target: Any, fn: str | None) -> None:
        self._target = target
        self._fn = fn
        self._inputs: list[PyTensor] = []
        self._outputs = 0
        self._valid = True

    def _check(self) -> None:
        if not self._valid:
            raise RedisAIFunctionError("PyGraphRunner is invalid")

    def _take(self) -> tuple[Any, str | None, list[PyTensor], int]:
        """The run (target, fn, inputs, outputs), once: the runner is spent from here on."""
        self._check()
        self._valid = False
        run = self._target, self._fn, self._inputs, self._outputs
        self._target = None
        self._inputs = []
        return run


def _runner(value: Any, script: bool) -> PyGraphRunner:
    if not isinstance(value, PyGraphRunner):
        raise RedisAIFunctionError("ERR expected a runner (PyGraphRunner)")
    value._check()
    if (value._fn is not None) != script:
        raise RedisAIFunctionError("ERR expected a script runner" if script else "ERR expected a model runner")
    return value


def createModelRunner(key: str | bytes) -> PyGraphRunner:  # noqa: N802
    """A runner of the model stored under `key` ("given key do not contain RedisAI model")."""
    model = _stored(_shim().get_model, key, {"WRONGTYPE": _NOT_A_MODEL, "ERR model key is empty": _NOT_A_MODEL})
    return PyGraphRunner(model, None)


def modelRunnerAddInput(runner: PyGraphRunner, name: str, tensor: PyTensor) -> int:  # noqa: N802
    """Adds an input (the name is not matched against the graph, as in Gears)."""
    _runner(runner, False)._inputs.append(_tensor(tensor))
    return 1


def modelRunnerAddOutput(runner: PyGraphRunner, name: str) -> int:  # noqa: N802
    _runner(runner, False)._outputs += 1
    return 1


def modelRunnerRun(runner: PyGraphRunner) -> list[PyTensor]:  # noqa: N802
    """Runs the model now, on its device queue; its outputs."""
    return _run_job(*_runner(runner, False)._take())


def modelRunnerRunAsync(runner: PyGraphRunner) -> asyncio.Future[list[PyTensor]]:  # noqa: N802
    """`await` it inside an `async def` callback: the outputs."""
    run = _runner(runner, False)._take()
    return _awaited_runs("modelRunnerRunAsync").start(*run)


def createScriptRunner(key: str | bytes, fn: str) -> PyGraphRunner:  # noqa: N802
    """A runner of function `fn` of the script stored under `key`."""
    if not isinstance(fn, str) or not fn:
        raise RedisAIFunctionError("ERR the script's function must be a non-empty str")
    script = _stored(_shim().get_script, key, {"WRONGTYPE": _NOT_A_SCRIPT, "ERR script key is empty": _NOT_A_SCRIPT})
    return PyGraphRunner(script, fn)


def scriptRunnerAddInput(runner: PyGraphRunner, tensor: PyTensor) -> int:  # noqa: N802
    _runner(runner, True)._inputs.append(_tensor(tensor))
    return 1


def scriptRunnerAddInputList(runner: PyGraphRunner, tensors: Iterable[PyTensor]) -> int:  # noqa: N802
    checked = [_tensor(t) for t in tensors]
    _runner(runner, True)._inputs.extend(checked)
    return 1


def scriptRunnerAddOutput(runner: PyGraphRunner) -> int:  # noqa: N802
    _runner(runner, True)._outputs += 1
    return 1


def scriptRunnerRun(runner: PyGraphRunner) -> list[PyTensor]:  # noqa: N802
    return _run_job(*_runner(runner, True)._take())


def scriptRunnerRunAsync(runner: PyGraphRunner) -> asyncio.Future[list[PyTensor]]:  # noqa: N802
    run = _runner(runner, True)._take()
    return _awaited_runs("scriptRunnerRunAsync").start(*run)


# ---------------------------------------------------------------------- DAG

_MISSING_IN_DAG = "ERR INPUT key cannot be found in DAG"


class PyDAGRunner:
    """A DAG being built: tensors by name, model and script runs, and the
    names to fetch. Every method returns the runner (chainable); `Run()`
    resolves to one tensor per TensorGet, in their order. Single use.

    The ops run one after another, each an ordinary run job on its device
    queue, reading and writing only the DAG's own tensors (no keys)."""

    def __init__(self) -> None:
        self._ops: list[tuple[str, Any]] = []
        self._valid = True

    def _add(self, kind: str, op: Any) -> PyDAGRunner:
        if not self._valid:
            raise RedisAIFunctionError("PyDAGRunner is invalid")
        self._ops.append((kind, op))
        return self

    def Input(self, name: str, tensor: PyTensor) -> PyDAGRunner:  # noqa: N802
        return self._add("set", (name, _tensor(tensor)))

    def TensorSet(self, name: str, tensor: PyTensor) -> PyDAGRunner:  # noqa: N802
        return self._add("set", (name, _tensor(tensor)))

    def TensorGet(self, name: str) -> PyDAGRunner:  # noqa: N802
        return self._add("get", name)

    def ModelRun(self, name: str, inputs: Iterable[str], outputs: Iterable[str]) -> PyDAGRunner:  # noqa: N802
        if not self._valid:
            raise RedisAIFunctionError("PyDAGRunner is invalid")
        runner = createModelRunner(name)
        return self._add("run", (runner._target, None, list(inputs), list(outputs)))

    def ScriptRun(self, name: str, func: str, inputs: Iterable[str], outputs: Iterable[str]) -> PyDAGRunner:  # noqa: N802
        if not self._valid:
            raise RedisAIFunctionError("PyDAGRunner is invalid")
        runner = createScriptRunner(name, func)
        return self._add("run", (runner._target, func, list(inputs), list(outputs)))

    def OpsFromString(self, ops: str) -> PyDAGRunner:  # noqa: N802
        """RedisAI's DAG syntax: `|> AI.TENSORSET ... |> AI.MODELEXECUTE ... |> AI.TENSORGET ...`."""
        if not self._valid:
            raise RedisAIFunctionError("PyDAGRunner is invalid")
        for text in ops.split("|>"):
            words = shlex.split(text)
            if words:
                _parse_dag_op(self, words)
        return self

    def Run(self) -> asyncio.Future[list[PyTensor]]:  # noqa: N802
        """`await` it inside an `async def` callback."""
        if not self._valid:
            raise RedisAIFunctionError("PyDAGRunner is invalid")
        runs = _awaited_runs("PyDAGRunner.Run()")
        self._valid = False
        ops, self._ops = self._ops, []
        return runs.loop.create_task(_run_dag(ops, runs))


async def _run_dag(ops: list[tuple[str, Any]], runs: _AwaitedRuns) -> list[PyTensor]:
    tensors: dict[str, PyTensor] = {}
    fetched: list[str] = []
    for kind, op in ops:
        if kind == "set":
            tensors[op[0]] = op[1]
        elif kind == "get":
            fetched.append(op)
        else:
            target, fn, inputs, outputs = op
            if any(name not in tensors for name in inputs):
                raise RedisAIFunctionError(_MISSING_IN_DAG)
            results = await runs.start(target, fn, [tensors[name] for name in inputs], len(outputs))
            tensors.update(zip(outputs, results))
    if any(name not in tensors for name in fetched):
        raise RedisAIFunctionError(_MISSING_IN_DAG)
    return [tensors[name] for name in fetched]


def _count_and_names(words: list[str], at: int, what: str) -> tuple[list[str], int]:
    """`<WHAT> n name...` at words[at]: the names and the index after them."""
    if at >= len(words) or words[at].upper() != what:
        raise RedisAIFunctionError(f"ERR {what} not found in DAG op")
    try:
        n = int(words[at + 1])
    except (IndexError, ValueError):
        raise RedisAIFunctionError(f"ERR Invalid value for {what}") from None
    names = words[at + 2:at + 2 + n]
    if n < 0 or len(names) != n:
        raise RedisAIFunctionError(f"ERR Invalid value for {what}")
    return names, at + 2 + n


def _parse_dag_op(dag: PyDAGRunner, words: list[str]) -> None:
    command = words[0].upper()
    if command == "AI.TENSORGET" and len(words) >= 2:
        dag.TensorGet(words[1])
    elif command == "AI.TENSORSET" and len(words) >= 3:
        dag.TensorSet(words[1], _tensor_from_words(words[2:]))
    elif command in ("AI.MODELEXECUTE", "AI.MODELRUN") and len(words) >= 2:
        inputs, at = _count_and_names(words, 2, "INPUTS")
        outputs, _ = _count_and_names(words, at, "OUTPUTS")
        dag.ModelRun(words[1], inputs, outputs)
    elif command in ("AI.SCRIPTEXECUTE", "AI.SCRIPTRUN") and len(words) >= 3:
        inputs, at = _count_and_names(words, 3, "INPUTS")
        outputs, _ = _count_and_names(words, at, "OUTPUTS")
        dag.ScriptRun(words[1], words[2], inputs, outputs)
    else:
        raise RedisAIFunctionError(f"ERR unsupported command within DAG: {words[0]}")


def _tensor_from_words(words: list[str]) -> PyTensor:
    """`TYPE dim... VALUES v...` (an op string cannot carry a binary BLOB)."""
    upper = [w.upper() for w in words]
    if "VALUES" not in upper:
        raise RedisAIFunctionError("ERR AI.TENSORSET in OpsFromString needs VALUES")
    at = upper.index("VALUES")
    dtype, dims = _dtype(words[0]), _dims(words[1:at])
    try:
        values = np.array([float(v) for v in words[at + 1:]], dtype=np.float64)
    except ValueError:
        raise RedisAIFunctionError("ERR invalid value") from None
    if values.size != int(np.prod(dims, dtype=np.int64)):
        raise RedisAIFunctionError("ERR data length does not match tensor shape and type")
    return PyTensor(values.astype(dtype).reshape(dims))


def createDAGRunner() -> PyDAGRunner:  # noqa: N802
    return PyDAGRunner()
