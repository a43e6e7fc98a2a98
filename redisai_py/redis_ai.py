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
whose text is the client's reply if left uncaught. Model, script and DAG
runners are not here yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from redisai_py import _function_libraries as _libraries

__all__ = [
    "PyTensor", "createTensorFromValues", "createTensorFromBlob", "tensorToFlatList", "tensorGetDataAsBlob",
    "tensorGetDims", "getTensorFromKey", "mgetTensorsFromKeyspace", "setTensorInKey", "msetTensorsInKeyspace",
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


def _read_key(key: Any) -> PyTensor:
    try:
        reply = _libraries.execute_as_caller(("AI.TENSORGET", key, "META", "BLOB"), raw=True)
    except _libraries.CommandError as exc:
        text = str(exc)
        if text.startswith("WRONGTYPE"):
            text = "ERR key is not a tensor"
        elif text.startswith("ERR tensor key is empty"):  # AI.TENSORGET adds "or in a different shard"
            text = "ERR tensor key is empty"
        raise RedisAIFunctionError(text) from None
    fields = dict(zip(reply[::2], reply[1::2]))
    dtype_name = fields[b"dtype"].decode()
    if dtype_name not in _TYPES:
        raise RedisAIFunctionError(f"ERR unsupported tensor type {dtype_name}")
    return PyTensor(np.frombuffer(fields[b"blob"], dtype=_TYPES[dtype_name]).reshape(tuple(fields[b"shape"])))


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
