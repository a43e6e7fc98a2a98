"""The one interface every backend adapter implements.

An adapter module (torch.py, onnx.py, tensorflow.py, tflite.py) exposes

    version() -> str                                  the framework's version
    load(blob: bytes, spec: ModelSpec) -> ModelSession

`load` runs on a worker thread (never the Redis main thread) and may take
seconds; `ModelSession.run` is the hot path and is kept to a few
microseconds of Python around the framework call.

Buffers are numpy arrays, C-contiguous, of the tensor types RedisAI has:
float32, float64, int8, int16, int32, int64, uint8, uint16, bool, and STRING
as an object array of `bytes`. Inputs may be read-only views of tensor memory
that Redis owns; an adapter never writes to them. Outputs are new arrays that
the caller owns, except that a model that returns an input unchanged (an
identity) may hand back a view of that input: the caller copies outputs into
its own tensors, or keeps the inputs alive as long as the outputs.

Every failure leaves an adapter as a `BackendError` (redisai_py._errors)
whose text is the client-visible reply, in RedisAI's wording where it has one.
Checks the executor makes against `input_names`/`output_names` (the counts in
AI.MODELEXECUTE, "Model did not generate the expected number of outputs",
batch sizes) are not repeated here.

This module imports numpy only: importing it never imports a framework.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from redisai_py._errors import BackendError

__all__ = ["ModelSpec", "ModelSession", "BackendError"]

# RedisAI's reply when a device string names neither CPU nor GPU.
UNSUPPORTED_DEVICE = "ERR unsupported device"


@dataclass(frozen=True)
class ModelSpec:
    """What AI.MODELSTORE said about a model, besides its blob."""

    backend: str
    """"TF", "TFLITE", "TORCH" or "ONNX"."""
    device: str
    """As the user gave it: "CPU", "cpu:1", "GPU", "GPU:0"."""
    inputs: tuple[str, ...] = ()
    """TF only: the input node names given at store time."""
    outputs: tuple[str, ...] = ()
    """TF only: the output node names given at store time."""
    intra_op_threads: int = 0
    """INTRA_OP_PARALLELISM; 0 leaves the backend's default."""
    inter_op_threads: int = 0
    """INTER_OP_PARALLELISM; 0 leaves the backend's default."""
    execution_timeout_ms: int = 0
    """ONNX only: MODEL_EXECUTION_TIMEOUT, after which a run is terminated; 0 = never."""
    memory_limit_mb: int = 0
    """ONNX only: BACKEND_MEMORY_LIMIT; 0 = no limit (see onnx.py for what it caps)."""

    @property
    def on_gpu(self) -> bool:
        """True for "GPU" and "GPU:<n>", False for "CPU" and "CPU:<n>"."""
        kind, _, _ = self.device.partition(":")
        kind = kind.upper()
        if kind not in ("CPU", "GPU"):
            raise BackendError(UNSUPPORTED_DEVICE)
        return kind == "GPU"

    @property
    def device_id(self) -> int:
        """The <n> of "GPU:<n>" or "CPU:<n>"; -1 when the device names no index."""
        _, colon, index = self.device.partition(":")
        if not colon:
            return -1
        if not index.isdigit():
            raise BackendError(UNSUPPORTED_DEVICE)
        return int(index)


class ModelSession(ABC):
    """A model instantiated by its framework, ready to run.

    `input_names` and `output_names` are filled at load, as RedisAI fills a
    model's I/O names (AI.MODELGET META shows them and AI.MODELEXECUTE
    compares its counts with theirs):
    TF: the node names given at store time (a SavedModel: its signature keys);
    TORCH: forward()'s argument names without `self`, and one "" per returned tensor;
    ONNX: the session's input/output names; TFLITE: the interpreter's tensor names.

    A session may be run by several worker threads at once; adapters whose
    framework cannot do that serialise runs themselves.

    An empty `output_names` means the count is only known per run (TORCH, a
    forward() that returns a List[Tensor] built at run time).

    `plain_outputs` is a promise an adapter may make: every output of `run`
    is a C-contiguous numpy array (never an object array of strings), so the
    runtime hands them to the shim as they are, without a check per output.
    An output of a type the shim has no tensor type for still fails, there,
    with the same text.
    """

    spec: ModelSpec
    input_names: list[str]
    output_names: list[str]
    plain_outputs: bool = False

    @abstractmethod
    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Run the model once on `inputs` (in `input_names` order); all its outputs, in order."""

    def synthetic_inputs(self) -> list[np.ndarray] | None:
        """Inputs for a WARMUP run, made from the model's declared input
        signature (dynamic dimensions as 1, zeros of each input's type), or
        None when the framework does not declare one fully. ONNX and TFLite
        do; TorchScript and frozen TF graphs carry no input shapes."""
        return None

    @abstractmethod
    def close(self) -> None:
        """Release the framework's session. A later `run` raises `BackendError`.

        The caller closes a session once no run uses it any more (models are
        reference-counted by the jobs that run them).
        """
