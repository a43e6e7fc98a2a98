"""The in-server side of the shim: what csrc/python/py_runtime.c and py_jobs.c call.

Runs inside redis-server. `start` is called once on the main thread during
module load, before the server serves; everything else runs on the shim's
worker, loader and session-dropper threads, never on the Redis main thread.

The C side calls exactly the functions named in ENTRY_POINTS (its table is
in csrc/py_runtime.c; start-up refuses a mismatch). What it passes in is
declared in redisai_py/stubs/_redisai_shim.pyi.

A model run is one call from C: the model's runner, a pair of callables
that `load_model` or `prepare_model` built once from the session:

    run_one(views)        one request whose inputs are all numeric Tensor views
    run_batch(batch)      a list of requests (tuples of views), or one with STRING inputs

Each returns, per request, the list of outputs: numpy arrays (the shim reads
their type, shape and bytes through the buffer protocol) or, for STRING,
("STRING", shape, bytes of NUL-terminated pieces). A runner never holds the
Model view it was made from: the C model keeps the runner, so that would
keep the model alive forever.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from redisai_py import _function_libraries, backends, script_runtime
from redisai_py._errors import BackendError, RedisAIError
from redisai_py._log import RedisLogHandler
from redisai_py.sessions import SessionCache, StoredModel

ENTRY_POINTS: tuple[str, ...] = (
    "start",
    "load_backend",
    "load_model",
    "prepare_model",
    "load_script",
    "run_script",
    "drop_sessions",
    "load_library",
    "call_function",
    "fire_trigger",
)

_log = logging.getLogger("redisai_py")
_sessions = SessionCache({})

RunOne = Callable[[Sequence[Any]], list[Any]]
RunBatch = Callable[[Sequence[Sequence[Any]]], list[list[Any]]]
Runner = tuple[RunOne, RunBatch]

# The numpy types of the shim's numeric tensor types, and the name of its
# variable-length one; filled by start() from the shim's DTYPES table.
_NUMERIC: frozenset[np.dtype[Any]] = frozenset()
_STRING = "STRING"


def numeric_dtypes(shim_dtypes: Sequence[tuple[str, str | None, int]]) -> dict[str, np.dtype[Any]]:
    """The shim's DTYPES rows (name, buffer format or None, bytes per element)
    as numpy dtypes by name; raises if a format does not mean its size."""
    numeric = {}
    for name, buffer_format, size in shim_dtypes:
        if buffer_format is None:
            continue
        dtype = np.dtype(buffer_format)
        if dtype.itemsize != size:
            raise RuntimeError(f"shim type {name} ({buffer_format!r}) is {dtype.itemsize} bytes, not {size}")
        numeric[name] = dtype
    return numeric


def _learn_dtypes() -> None:
    global _NUMERIC, _STRING
    import _redisai_shim

    _NUMERIC = frozenset(numeric_dtypes(_redisai_shim.DTYPES).values())
    _STRING = next(name for name, buffer_format, _ in _redisai_shim.DTYPES if buffer_format is None)


def start(settings: dict[str, int] | None = None) -> str:
    """Set up logging and check the dependencies every request needs.

    Returns the start-up summary line the shim writes to the Redis log.
    Raises (and so fails the module load with that message) if numpy is
    missing.
    """
    global _sessions
    _learn_dtypes()
    # Framework thread pools (OpenMP in torch and onnxruntime) spin while
    # idle by default, which takes the CPU from Redis's own main thread; they
    # read this once, when the framework loads, so it must be set first.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    root = logging.getLogger("redisai_py")
    if not any(isinstance(h, RedisLogHandler) for h in root.handlers):
        root.addHandler(RedisLogHandler())
    root.setLevel(logging.INFO)
    root.propagate = False
    _sessions = SessionCache(dict(settings or {}))
    return (
        f"Python {sys.version.split()[0]} (prefix {sys.prefix}), numpy {np.__version__}; "
        f"backends available: {', '.join(backends.names())}"
    )


def load_backend(name: str) -> str:
    """Import the framework behind backend `name` and return its version."""
    version = backends.load(name)
    _log.info("backend %s ready: %s", name, version)
    return version


def _client_error(exc: Exception) -> RedisAIError:
    """Anything a backend raised, as an error with a client-visible text."""
    if isinstance(exc, RedisAIError):
        return exc
    if isinstance(exc, backends.BackendLoadError):
        return RedisAIError("ERR Could not load backend")
    return BackendError(f"ERR {type(exc).__name__}: {exc}")


def load_model(model: StoredModel) -> tuple[tuple[str, ...], tuple[str, ...], str, Runner]:
    """Make the session of a model being stored: (input names, output names,
    version, runner)."""
    try:
        version = backends.load(model.backend)
        session = _sessions.get(model)
        _warm_up(session, model)
    except backends.BackendLoadError as exc:
        _log.warning("%s", exc)
        raise RedisAIError("ERR Could not load backend") from exc
    except Exception as exc:
        raise _client_error(exc) from exc
    return tuple(session.input_names), tuple(session.output_names), version, _runner(session)


def prepare_model(model: StoredModel) -> tuple[tuple[str, ...], tuple[str, ...], Runner]:
    """The first run of a model that has no runner yet (stored from an RDB,
    the AOF or a primary): (input names, output names, runner), making its
    session if there is none."""
    try:
        session = _sessions.get(model)
        _warm_up(session, model)
    except Exception as exc:
        raise _client_error(exc) from exc
    return tuple(session.input_names), tuple(session.output_names), _runner(session)


def _warm_up(session: backends.ModelSession, model: StoredModel) -> None:
    """WARMUP n: n runs on synthetic inputs after every load of the session
    (store, cold run), so the first client request does not pay the
    framework's lazy set-up. A model whose backend declares no full input
    signature is loaded without them (logged once per load)."""
    runs = model.warmup
    if runs <= 0:
        return
    inputs = session.synthetic_inputs()
    if inputs is None:
        _log.warning("WARMUP skipped: the %s backend declares no input shapes for this model", model.backend)
        return
    for _ in range(runs):
        try:
            session.run(inputs)
        except Exception as exc:
            reason = str(_client_error(exc)).removeprefix("ERR ")
            raise RedisAIError(f"ERR WARMUP run failed: {reason}") from exc


def drop_sessions(ids: list[int]) -> None:
    _sessions.drop(ids)


def _as_array(tensor: Any) -> np.ndarray:
    """A zero-copy numpy view of a stored tensor (STRING: an object array of bytes)."""
    if tensor.dtype != _STRING:
        return np.asarray(tensor)
    pieces = bytes(memoryview(tensor)).split(b"\0")[:-1]
    array = np.empty(len(pieces), dtype=object)
    array[:] = pieces
    return array.reshape(tensor.shape)


def _as_output(array: Any) -> Any:
    """An output the shim can copy: a C-contiguous array of a shim type, or
    (STRING, shape, NUL-terminated pieces)."""
    array = np.asarray(array)
    if array.dtype in _NUMERIC:
        # Not ascontiguousarray: it makes a 0-dim result 1-dim.
        return array if array.flags.c_contiguous else array.copy(order="C")
    if array.dtype.kind in "OSU":
        items = [x if isinstance(x, bytes) else str(x).encode() for x in array.reshape(-1)]
        return _STRING, array.shape, b"".join(item + b"\0" for item in items)
    raise BackendError(f"ERR unsupported output tensor type {array.dtype}")


def _run_batch(session: backends.ModelSession, batch: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Concatenates the requests' inputs on dim 0, runs once, splits the outputs back."""
    per_request = [[_as_array(t) for t in inputs] for inputs in batch]
    sizes = [arrays[0].shape[0] for arrays in per_request]
    joined = [np.concatenate(column) for column in zip(*per_request)]
    outputs = session.run(joined)
    total = sum(sizes)
    if any(o.ndim == 0 or o.shape[0] != total for o in map(np.asarray, outputs)):
        raise BackendError("ERR Model did not generate the expected batch size")
    results: list[list[Any]] = [[] for _ in batch]
    for output in outputs:
        start = 0
        for i, size in enumerate(sizes):
            results[i].append(_as_output(output[start:start + size]))
            start += size
    return results


def _runner(session: backends.ModelSession) -> Runner:
    """The pair of callables the shim runs `session` with (see the module's doc).

    run_one is the hot path: numpy arrays straight from the views' buffers,
    the session's run, and its outputs as they are when the session promises
    plain arrays (ModelSession.plain_outputs)."""
    run = session.run
    asarray = np.asarray

    if session.plain_outputs:
        def run_one(views: Sequence[Any]) -> list[Any]:
            try:
                return run(list(map(asarray, views)))
            except Exception as exc:
                raise _client_error(exc) from exc
    else:
        def run_one(views: Sequence[Any]) -> list[Any]:
            try:
                return list(map(_as_output, run(list(map(asarray, views)))))
            except Exception as exc:
                raise _client_error(exc) from exc

    def run_batch(batch: Sequence[Sequence[Any]]) -> list[list[Any]]:
        try:
            if len(batch) == 1:
                return [list(map(_as_output, run(list(map(_as_array, batch[0])))))]
            return _run_batch(session, batch)
        except Exception as exc:
            raise _client_error(exc) from exc

    return run_one, run_batch


def _model_for_script(key: str, inputs: list[Any], n_outputs: int) -> list[Any]:
    """redisAI.model_execute inside a script: runs the model on this worker."""
    import torch

    import _redisai_shim  # type: ignore[import-not-found]

    model = _redisai_shim.get_model(key)
    arrays = [t.detach().contiguous().cpu().numpy() for t in inputs]
    session = _sessions.get(model)
    try:
        outputs = session.run(arrays)
    except BackendError:
        # The loaded-session budget may have released this session between the
        # lookup and the run (a script's run does not pin it): run on a new one.
        if _sessions.holds(model.id, session):
            raise
        outputs = _sessions.get(model).run(arrays)
    if len(outputs) != n_outputs:
        raise BackendError("ERR Model did not generate the expected number of outputs")
    return [torch.from_numpy(np.array(o, copy=True)) for o in outputs]


def _compiled(script: Any) -> script_runtime.CompiledScript:
    return _sessions.get_or_make(
        script.id, lambda: script_runtime.compile_script(script.source, script.device,
                                                         script.entry_points, _model_for_script))


def load_script(script: Any) -> tuple[tuple[str, ...], tuple[str, ...], str]:
    """Compile a script being stored and check its entry points."""
    try:
        version = backends.load("TORCH")
        _compiled(script)
    except Exception as exc:
        raise _client_error(exc) from exc
    return (), (), version


def run_script(script: Any, fn: str, inputs: Sequence[Any], keys: list[str], args: list[str],
               n_outputs: int) -> list[Any]:
    """Run function `fn` of `script`; its outputs as (dtype, shape, buffer)."""
    try:
        compiled = _compiled(script)
        tensors = script_runtime.tensors_of([_as_array(t) for t in inputs])
        outputs = compiled.run(fn, tensors, keys, args, n_outputs)
        return [_as_output(o) for o in outputs]
    except Exception as exc:
        raise _client_error(exc) from exc


# In-server functions (AI.FUNCTION LOAD, AI.FCALL): see redisai_py/_function_libraries.py.
load_library = _function_libraries.load_library
call_function = _function_libraries.call_function
fire_trigger = _function_libraries.fire_trigger
