"""The in-server side of the shim: what csrc/python/py_runtime.c and py_jobs.c call.

Runs inside redis-server. `start` is called once on the main thread during
module load, before the server serves; everything else runs on the shim's
worker and loader threads, never on the Redis main thread.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from redisai_py import backends, script_runtime
from redisai_py._errors import BackendError, RedisAIError
from redisai_py._log import RedisLogHandler
from redisai_py.sessions import SessionCache, StoredModel

_log = logging.getLogger("redisai_py")
_sessions = SessionCache({})

# Tensor dtype names (as the shim spells them) <-> numpy dtypes.
_NUMPY_OF: dict[str, np.dtype[Any]] = {
    "FLOAT": np.dtype(np.float32),
    "DOUBLE": np.dtype(np.float64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "BOOL": np.dtype(np.bool_),
}
_NAME_OF: dict[np.dtype[Any], str] = {dtype: name for name, dtype in _NUMPY_OF.items()}


def start(settings: dict[str, int] | None = None) -> str:
    """Set up logging and check the dependencies every request needs.

    Returns the start-up summary line the shim writes to the Redis log.
    Raises (and so fails the module load with that message) if numpy is
    missing.
    """
    global _sessions
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


def load_model(model: StoredModel) -> tuple[tuple[str, ...], tuple[str, ...], str]:
    """Make the session of a model being stored: (input names, output names, version)."""
    try:
        version = backends.load(model.backend)
        session = _sessions.get(model)
    except backends.BackendLoadError as exc:
        _log.warning("%s", exc)
        raise RedisAIError("ERR Could not load backend") from exc
    except Exception as exc:
        raise _client_error(exc) from exc
    return tuple(session.input_names), tuple(session.output_names), version


def drop_sessions(ids: list[int]) -> None:
    _sessions.drop(ids)


def session_names(model: StoredModel) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The input/output names of a model whose session exists already."""
    session = _sessions.get(model)
    return tuple(session.input_names), tuple(session.output_names)


def _as_array(tensor: Any) -> np.ndarray:
    """A zero-copy numpy view of a stored tensor (STRING: an object array of bytes)."""
    dtype = _NUMPY_OF.get(tensor.dtype)
    if dtype is not None:
        return np.frombuffer(tensor, dtype=dtype).reshape(tensor.shape)
    pieces = bytes(memoryview(tensor)).split(b"\0")[:-1]
    array = np.empty(len(pieces), dtype=object)
    array[:] = pieces
    return array.reshape(tensor.shape)


def _as_output(array: np.ndarray) -> tuple[str, tuple[int, ...], Any]:
    """(dtype name, shape, C-contiguous buffer) for the shim to copy into a tensor."""
    array = np.asarray(array)
    name = _NAME_OF.get(array.dtype)
    if name is not None:
        return name, array.shape, np.ascontiguousarray(array)
    if array.dtype.kind in "OSU":
        items = [x if isinstance(x, bytes) else str(x).encode() for x in array.reshape(-1)]
        return "STRING", array.shape, b"".join(item + b"\0" for item in items)
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


def run_model(model: StoredModel, batch: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Run `model` for each request of `batch` (one tuple of input tensors per
    request); one list of (dtype, shape, buffer) outputs per request."""
    try:
        session = _sessions.get(model)
        if len(batch) == 1:
            outputs = session.run([_as_array(t) for t in batch[0]])
            return [[_as_output(o) for o in outputs]]
        return _run_batch(session, batch)
    except Exception as exc:
        raise _client_error(exc) from exc


def _model_for_script(key: str, inputs: list[Any], n_outputs: int) -> list[Any]:
    """redisAI.model_execute inside a script: runs the model on this worker."""
    import torch

    import _redisai_shim  # type: ignore[import-not-found]

    model = _redisai_shim.get_model(key)
    session = _sessions.get(model)
    outputs = session.run([t.detach().contiguous().cpu().numpy() for t in inputs])
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
