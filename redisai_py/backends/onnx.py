"""ONNX backend adapter (onnxruntime), including ONNX-ML models such as scikit-learn's.

Outputs that are not tensors come back as tensors, since a Redis key holds a tensor:
- a sequence of maps (a classifier's ZipMap, e.g. skl2onnx's `output_probability`,
  one {label: probability} dict per row) becomes a 2-D [rows, labels] array of the
  map's value type (float32 for skl2onnx), its columns ordered by sorted label;
- a single map becomes a 1-D array ordered by sorted key;
- a sequence of equally shaped tensors is stacked on a new first axis;
- STRING tensors (onnxruntime hands out `str`) become object arrays of UTF-8 `bytes`,
  and STRING inputs (`bytes`) are decoded to `str` for onnxruntime, which would
  otherwise store their repr().

Kill switch (MODEL_EXECUTION_TIMEOUT): each run that may be killed registers its
own RunOptions with one watchdog thread, which sets `terminate` on runs past their
deadline; onnxruntime then stops at the next node with "Exiting due to terminate
flag being set to true". The per-run cost is a dict insert and delete.

Memory cap (BACKEND_MEMORY_LIMIT), best effort: RedisAI routes every allocation of
its CPU sessions through a counting allocator of its own. onnxruntime's Python API
cannot install a custom allocator; what it can do is register one shared CPU arena
for the whole process (`create_and_register_allocator` with `max_mem`) and make
sessions use it (`session.use_env_allocators=1`). That caps the memory runs
allocate (activations, outputs) across all capped sessions, with the text RedisAI
uses when the cap is hit. Weights are not allocated from that arena, so they are
counted here instead: the blobs of live capped sessions must fit under the cap too.
The arena is registered once per process with the first limit seen.

Thread pools: every session runs on one pair of process-wide pools (onnxruntime's
global thread pools, sized by INTRA_OP_PARALLELISM / INTER_OP_PARALLELISM, 0 being
onnxruntime's default), not on pools of its own. With a pool per session, making a
session starts threads and closing one joins them while holding the GIL (1.5 ms idle,
10-20 ms on a busy machine, measured), and 1,000 loaded tenant models would mean
thousands of threads; the loaded-session budget (docs/model_sessions.md) loads and
releases sessions all the time. The pools are made before the first session; if
onnxruntime's environment already exists they cannot be, and sessions keep their own.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

import numpy as np
import onnxruntime as _framework

from redisai_py._errors import BackendError
from redisai_py.backends.base import ModelSession, ModelSpec

__all__ = ["version", "load", "OnnxSession"]

_log = logging.getLogger("redisai_py.backends.onnx")

GPU_NOT_FOUND = "ERR GPU requested but ONNX couldn't find CUDA"
SESSION_CLOSED = "ERR ONNXRuntime session was not allocated"
EXTERNAL_DATA = "Initializer tensors with external data is not allowed."
MEMORY_LIMIT_EXCEEDED = "Onnxruntime memory limit exceeded, memory allocation failed."
MEMORY_LIMIT_AT_LOAD = "Exception during initialization: " + MEMORY_LIMIT_EXCEEDED

# The Python package prefixes every message with "[ONNXRuntimeError] : <code> : <NAME> : ";
# the C API RedisAI used does not, and clients compare the rest.
_PYTHON_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : [A-Z_]+ : ")
# Newer onnxruntime says "inputs/outputs" where the one RedisAI shipped said "inputs".
_NEW_WORDING = "Please fix either the inputs/outputs or the model."
_OLD_WORDING = "Please fix either the inputs or the model."
# What the capped arena says when a run asks for more than is left.
_ARENA_FULL = re.compile(r"Available memory of \d+ is smaller than requested bytes of \d+")

# Log errors only: failed runs are reported to the client, not to the server log.
_LOG_ERRORS_ONLY = 3
_LOG_NOTHING = 4

_RunOptions = _framework.RunOptions
_monotonic = time.monotonic


def version() -> str:
    """The version of onnxruntime this backend runs on."""
    return str(_framework.__version__)


_shared_pools_lock = threading.Lock()
_shared_pools: bool | None = None  # None: not tried yet


def _use_shared_thread_pools(spec: ModelSpec) -> bool:
    """Whether sessions run on the process-wide pools (made here, once, on first use)."""
    global _shared_pools
    with _shared_pools_lock:
        if _shared_pools is None:
            try:
                from onnxruntime.capi import _pybind_state
                _pybind_state.set_global_thread_pool_sizes(max(spec.intra_op_threads, 0),
                                                           max(spec.inter_op_threads, 0))
                _shared_pools = True
            except Exception as exc:  # an older onnxruntime, or its environment exists already
                _log.warning("onnxruntime sessions keep thread pools of their own: %s", exc)
                _shared_pools = False
        return _shared_pools


def load(blob: bytes, spec: ModelSpec) -> OnnxSession:
    """Create an onnxruntime session for the ONNX model in `blob` on `spec.device`."""
    options = _framework.SessionOptions()
    options.log_severity_level = _LOG_ERRORS_ONLY
    if _use_shared_thread_pools(spec):
        options.use_per_session_threads = False
    else:
        if spec.intra_op_threads > 0:
            options.intra_op_num_threads = spec.intra_op_threads
        if spec.inter_op_threads > 0:
            options.inter_op_num_threads = spec.inter_op_threads
    providers = _providers(spec)
    capped = spec.memory_limit_mb > 0 and not spec.on_gpu
    if capped:
        _memory_cap.reserve(len(blob), spec.memory_limit_mb, options)
    try:
        session = _framework.InferenceSession(blob, options, providers=providers)
        if spec.on_gpu and "CUDAExecutionProvider" not in session.get_providers():
            # onnxruntime falls back to the CPU, with only a log line, when the
            # CUDA provider cannot start (no such device, driver trouble): a
            # model stored on GPU must not quietly run on the CPU.
            raise BackendError(f"ERR onnxruntime could not use {spec.device} (its CUDA provider did not start)")
        return OnnxSession(session, spec, reserved_bytes=len(blob) if capped else 0)
    except Exception as exc:
        if capped:
            _memory_cap.release(len(blob))
        if isinstance(exc, BackendError):
            raise
        raise BackendError(_client_text(exc, at_load=True)) from exc


def _providers(spec: ModelSpec) -> list[str | tuple[str, dict[str, str]]]:
    if not spec.on_gpu:
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in _framework.get_available_providers():
        raise BackendError(GPU_NOT_FOUND)
    cuda_options = {"device_id": str(max(spec.device_id, 0))}
    # CPU last: onnxruntime places nodes that CUDA has no kernel for on it.
    return [("CUDAExecutionProvider", cuda_options), "CPUExecutionProvider"]


def _client_text(exc: BaseException, at_load: bool) -> str:
    """onnxruntime's message as RedisAI's clients see it."""
    text = _PYTHON_PREFIX.sub("", str(exc), count=1).rstrip()
    if _ARENA_FULL.search(text):
        return MEMORY_LIMIT_AT_LOAD if at_load else MEMORY_LIMIT_EXCEEDED
    if "External data" in text or "external data" in text:
        return EXTERNAL_DATA
    return text.replace(_NEW_WORDING, _OLD_WORDING)


# ONNX input types a WARMUP run can make zeros of (bytes: empty strings).
_ONNX_TENSOR_TYPES: dict[str, type] = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int8)": np.int8, "tensor(int16)": np.int16, "tensor(int32)": np.int32,
    "tensor(int64)": np.int64, "tensor(uint8)": np.uint8, "tensor(uint16)": np.uint16,
    "tensor(bool)": np.bool_, "tensor(string)": bytes,
}


class OnnxSession(ModelSession):
    """One onnxruntime InferenceSession; runs may overlap (onnxruntime allows it)."""

    def __init__(self, session: _framework.InferenceSession, spec: ModelSpec,
                 reserved_bytes: int) -> None:
        self.spec = spec
        self._session: _framework.InferenceSession | None = session
        inputs = session.get_inputs()
        outputs = session.get_outputs()
        self.input_names = [i.name for i in inputs]
        self.output_names = [o.name for o in outputs]
        self._input_count = len(inputs)
        self._string_inputs = [k for k, i in enumerate(inputs) if i.type == "tensor(string)"]
        self._output_converters = [
            (k, converter) for k, o in enumerate(outputs)
            if (converter := _output_converter(o.name, o.type)) is not None
        ]
        # Plain arrays unless an output may hold strings (object arrays).
        self.plain_outputs = not any("string" in o.type for o in outputs)
        self._run = _binding_run(session, spec)
        self._reserved_bytes = reserved_bytes
        self._timeout_s = spec.execution_timeout_ms / 1000.0
        if self._timeout_s > 0:
            _watchdog.track(self._timeout_s)

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != self._input_count:
            raise BackendError(f"ERR Expected {self._input_count} inputs but got {len(inputs)}")
        if self._string_inputs:
            inputs = _decode_string_inputs(inputs, self._string_inputs)
        feed = dict(zip(self.input_names, inputs))
        try:
            if self._timeout_s > 0:
                outputs = self._run_with_deadline(feed)
            else:
                outputs = self._run(self.output_names, feed, None)
        except Exception as exc:
            if self._session is None:
                raise BackendError(SESSION_CLOSED) from exc
            raise BackendError(_client_text(exc, at_load=False)) from exc
        for k, converter in self._output_converters:
            outputs[k] = converter(outputs[k])
        return outputs

    def _run_with_deadline(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        # A RunOptions per run: the watchdog may set terminate on it after this
        # run has ended, which must not touch the next run.
        run_options = _RunOptions()
        run_options.log_severity_level = _LOG_NOTHING
        running = _watchdog.running
        running[run_options] = _monotonic() + self._timeout_s
        try:
            return self._run(self.output_names, feed, run_options)
        finally:
            del running[run_options]

    def synthetic_inputs(self) -> list[np.ndarray] | None:
        session = self._session
        if session is None:
            return None
        arrays = []
        for spec in session.get_inputs():
            dtype = _ONNX_TENSOR_TYPES.get(spec.type)
            if dtype is None:
                return None
            shape = [d if isinstance(d, int) and d > 0 else 1 for d in (spec.shape or [])]
            arrays.append(np.zeros(shape, dtype=dtype) if dtype is not bytes
                          else np.full(shape, b"", dtype=object))
        return arrays

    def close(self) -> None:
        if self._session is None:
            return
        self._session = None
        self._run = _closed_run
        if self._timeout_s > 0:
            _watchdog.untrack()
        if self._reserved_bytes:
            _memory_cap.release(self._reserved_bytes)
            self._reserved_bytes = 0


def _binding_run(session: _framework.InferenceSession,
                 spec: ModelSpec) -> Callable[..., list[np.ndarray]]:
    """run(output_names, feed, run_options) of `session`.

    InferenceSession.run is Python around the compiled session (`_sess`): it
    checks the feed's names against the model on every call and, on a GPU,
    retries with fallback providers. Our feed always holds exactly the
    model's inputs (built from its own names), so on a CPU the compiled run
    is called directly, ~1.5 us sooner. Where `_sess` is missing (another
    onnxruntime) or on a GPU, the public run is used.
    """
    binding = getattr(session, "_sess", None)
    if spec.on_gpu or binding is None or not callable(getattr(binding, "run", None)):
        return session.run
    return binding.run


def _closed_run(*_: object) -> list[np.ndarray]:
    raise RuntimeError(SESSION_CLOSED)


# ---- outputs that are not tensors ------------------------------------------------------

_VALUE_DTYPES: dict[str, type[np.generic]] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "float": np.float32,
    "double": np.float64,
    "int64": np.int64,
}

Converter = Callable[[object], np.ndarray]


def _output_converter(name: str, type_name: str) -> Converter | None:
    """How output `name` of onnxruntime type `type_name` becomes a tensor; None if it is one."""
    if type_name == "tensor(string)":
        return _strings_to_bytes
    if type_name.startswith("tensor("):
        return None
    if type_name.startswith("seq(map("):
        value_dtype = _map_value_dtype(type_name[len("seq(map("):-2])
        return lambda rows: _rows_of_maps_to_matrix(rows, value_dtype)
    if type_name.startswith("map("):
        value_dtype = _map_value_dtype(type_name[len("map("):-1])
        return lambda mapping: _map_to_vector(mapping, value_dtype)
    if type_name.startswith("seq(tensor("):
        return _stack_sequence
    raise BackendError(f"ERR ONNX output {name} of type {type_name} cannot be returned as a tensor")


def _map_value_dtype(key_and_value: str) -> type[np.generic]:
    """The numpy type of the values of a map typed "<key>,<value>", e.g. "int64,tensor(float)"."""
    value = key_and_value.split(",", 1)[1]
    return _VALUE_DTYPES.get(value, np.float32)


def _rows_of_maps_to_matrix(rows: list[dict], value_dtype: type[np.generic]) -> np.ndarray:
    if not rows:
        return np.zeros((0, 0), dtype=value_dtype)
    labels = sorted(rows[0])
    return np.array([[row[label] for label in labels] for row in rows], dtype=value_dtype)


def _map_to_vector(mapping: dict, value_dtype: type[np.generic]) -> np.ndarray:
    return np.array([mapping[key] for key in sorted(mapping)], dtype=value_dtype)


def _stack_sequence(tensors: list[np.ndarray]) -> np.ndarray:
    if not tensors:
        raise BackendError("ERR ONNX model returned an empty sequence, which is not a tensor")
    try:
        return np.stack(tensors)
    except ValueError as exc:
        raise BackendError("ERR ONNX model returned a sequence of tensors of different shapes") from exc


def _encode(value: object) -> object:
    return value.encode() if isinstance(value, str) else value


def _decode(value: object) -> object:
    return value.decode() if isinstance(value, bytes) else value


_encode_all = np.frompyfunc(_encode, 1, 1)
_decode_all = np.frompyfunc(_decode, 1, 1)


def _strings_to_bytes(strings: np.ndarray) -> np.ndarray:
    return np.asarray(_encode_all(strings), dtype=object)


def _decode_string_inputs(inputs: list[np.ndarray], indices: list[int]) -> list[np.ndarray]:
    decoded = list(inputs)
    for k in indices:
        if decoded[k].dtype == object:
            try:
                decoded[k] = np.asarray(_decode_all(decoded[k]), dtype=object)
            except UnicodeDecodeError as exc:
                raise BackendError(f"ERR ONNX STRING input {k} is not valid UTF-8") from exc
    return decoded


# ---- kill switch -----------------------------------------------------------------------

class _Watchdog:
    """One daemon thread that terminates runs past their deadline.

    It sleeps while no session with a timeout exists, and otherwise wakes at a
    tenth of the shortest timeout (at most every 100 ms, like Redis's cron),
    so a run is stopped within about 10% of its timeout.
    """

    def __init__(self) -> None:
        # RunOptions of each run in progress -> its deadline (time.monotonic()).
        self.running: dict[_framework.RunOptions, float] = {}
        self._sessions = 0
        self._interval_s = 0.1
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def track(self, timeout_s: float) -> None:
        with self._wake:
            self._sessions += 1
            self._interval_s = min(self._interval_s, max(0.005, timeout_s / 10))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="redisai-onnx-watchdog", daemon=True
                )
                self._thread.start()
            self._wake.notify()

    def untrack(self) -> None:
        with self._wake:
            self._sessions -= 1

    def _watch(self) -> None:
        while True:
            with self._wake:
                while self._sessions == 0:
                    self._wake.wait()
                interval = self._interval_s
            time.sleep(interval)
            now = _monotonic()
            # tuple() copies the dict in one C call, safe against workers adding runs.
            for run_options, deadline in tuple(self.running.items()):
                if now >= deadline:
                    run_options.terminate = True


_watchdog = _Watchdog()


# ---- memory cap ------------------------------------------------------------------------

class _MemoryCap:
    """The process-wide capped arena and the weight bytes counted against it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cap_bytes = 0
        self._model_bytes = 0

    def reserve(self, model_bytes: int, limit_mb: int, options: _framework.SessionOptions) -> None:
        """Count a model's weights against the cap and point `options` at the capped arena."""
        with self._lock:
            if not self._cap_bytes:
                self._register_arena(limit_mb * 1024 * 1024)
            elif self._cap_bytes != limit_mb * 1024 * 1024:
                _log.warning("BACKEND_MEMORY_LIMIT stays %d MB for this process",
                             self._cap_bytes // (1024 * 1024))
            if self._model_bytes + model_bytes > self._cap_bytes:
                raise BackendError(MEMORY_LIMIT_AT_LOAD)
            self._model_bytes += model_bytes
        options.add_session_config_entry("session.use_env_allocators", "1")

    def release(self, model_bytes: int) -> None:
        with self._lock:
            self._model_bytes -= model_bytes

    def _register_arena(self, cap_bytes: int) -> None:
        memory_info = _framework.OrtMemoryInfo(
            "Cpu", _framework.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0,
            _framework.OrtMemType.DEFAULT,
        )
        # arena_extend_strategy 1 (same as requested): grow by what a run needs,
        # not by doubling, so the cap is reached only when it really is full.
        arena = _framework.OrtArenaCfg({"max_mem": cap_bytes, "arena_extend_strategy": 1})
        _framework.create_and_register_allocator(memory_info, arena)
        self._cap_bytes = cap_bytes


_memory_cap = _MemoryCap()
