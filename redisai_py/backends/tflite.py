"""TFLITE backend adapter: the TensorFlow Lite interpreter that ships inside tensorflow.

An interpreter holds its tensors in place and cannot run twice at once, so
each session serialises its runs with a lock (uncontended, it costs well under
a microsecond). When an input's shape differs from the last run's, the input
is resized and the interpreter's tensors reallocated, as RedisAI does.

Device: RedisAI's CPU builds of this backend run every model on the CPU, a
GPU device included; this adapter does the same (there is no GPU delegate in
the interpreter tensorflow ships) and logs it once per model.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings

# The interpreter logs to stderr, i.e. the Redis log; set before tensorflow is imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as _framework  # noqa: E402

from redisai_py._errors import BackendError  # noqa: E402
from redisai_py.backends.base import ModelSession, ModelSpec  # noqa: E402

__all__ = ["version", "load", "TFLiteSession"]

_log = logging.getLogger("redisai_py.backends.tflite")

LOAD_FAILED = "Failed to load model from buffer"
CONSTRUCT_FAILED = "Failed to construct interpreter"
ALLOCATE_FAILED = "Failed to allocate tensors"
RESIZE_FAILED = "Failed to resize input tensors"
INVOKE_FAILED = "Failed to invoke TfLite"
INPUT_COUNT_MISMATCH = "Inconsistent number of inputs"
INPUT_TYPE_MISMATCH = "Input tensor type doesn't match the type expected by the model definition"
SESSION_CLOSED = "ERR The TFLITE model was freed"


def version() -> str:
    """The version of TensorFlow whose Lite interpreter this backend runs."""
    return str(_framework.__version__)


def load(blob: bytes, spec: ModelSpec) -> TFLiteSession:
    """An interpreter for the TFLite flatbuffer in `blob`, its tensors allocated."""
    if spec.on_gpu:
        _log.warning("TFLITE has no GPU delegate here: a %s model runs on the CPU", spec.device)
    if not blob:
        raise BackendError(LOAD_FAILED)
    threads = spec.intra_op_threads if spec.intra_op_threads > 0 else None
    try:
        with warnings.catch_warnings():
            # tf.lite.Interpreter warns that it moves to the ai_edge_litert package
            # one day; it is still the interpreter tensorflow ships.
            warnings.simplefilter("ignore", UserWarning)
            interpreter = _framework.lite.Interpreter(model_content=blob, num_threads=threads)
    except ValueError as exc:
        raise BackendError(LOAD_FAILED) from exc
    except Exception as exc:
        raise BackendError(CONSTRUCT_FAILED) from exc
    try:
        interpreter.allocate_tensors()
    except Exception as exc:
        raise BackendError(ALLOCATE_FAILED) from exc
    return TFLiteSession(interpreter, spec)


class TFLiteSession(ModelSession):
    """One interpreter, run by one thread at a time."""

    def __init__(self, interpreter: _framework.lite.Interpreter, spec: ModelSpec) -> None:
        self.spec = spec
        self._interpreter: _framework.lite.Interpreter | None = interpreter
        input_details = interpreter.get_input_details()
        output_details = interpreter.get_output_details()
        self.input_names = [d["name"] for d in input_details]
        self.output_names = [d["name"] for d in output_details]
        self._input_indices = [d["index"] for d in input_details]
        # The shape each input is allocated for, to resize only when a run's differs.
        self._input_shapes: list[tuple[int, ...] | None] = [
            tuple(int(n) for n in d["shape"]) for d in input_details
        ]
        self._output_indices = [d["index"] for d in output_details]
        # What a WARMUP run feeds: each input's declared shape (-1 in the signature
        # as 1) and element type.
        self._synthetic = [
            (tuple(max(int(n), 1) for n in d.get("shape_signature", d["shape"])), np.dtype(d["dtype"]))
            for d in input_details
        ]
        self._lock = threading.Lock()

    def synthetic_inputs(self) -> list[np.ndarray] | None:
        if any(dtype.kind in "OSU" for _, dtype in self._synthetic):
            return None
        return [np.zeros(shape, dtype=dtype) for shape, dtype in self._synthetic]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != len(self._input_indices):
            raise BackendError(INPUT_COUNT_MISMATCH)
        with self._lock:
            interpreter = self._interpreter
            if interpreter is None:
                raise BackendError(SESSION_CLOSED)
            if [array.shape for array in inputs] != self._input_shapes:
                self._resize_inputs(interpreter, inputs)
            try:
                for index, array in zip(self._input_indices, inputs):
                    interpreter.set_tensor(index, array)
            except ValueError as exc:
                # Shapes fit by now, so what set_tensor refuses is the dtype.
                raise BackendError(INPUT_TYPE_MISMATCH) from exc
            try:
                interpreter.invoke()
            except Exception as exc:
                raise BackendError(INVOKE_FAILED) from exc
            # get_tensor copies: the interpreter reuses its buffers on the next run.
            return [interpreter.get_tensor(index) for index in self._output_indices]

    def _resize_inputs(self, interpreter: _framework.lite.Interpreter,
                       inputs: list[np.ndarray]) -> None:
        try:
            for k, array in enumerate(inputs):
                if array.shape != self._input_shapes[k]:
                    try:
                        interpreter.resize_tensor_input(self._input_indices[k], array.shape)
                    except Exception as exc:
                        raise BackendError(RESIZE_FAILED) from exc
                    self._input_shapes[k] = array.shape
            try:
                interpreter.allocate_tensors()
            except Exception as exc:
                raise BackendError(ALLOCATE_FAILED) from exc
        except BackendError:
            # Shapes unknown now: the next run resizes and allocates again.
            self._input_shapes = [None] * len(self._input_shapes)
            raise

    def close(self) -> None:
        with self._lock:
            self._interpreter = None
