"""TORCH backend adapter: TorchScript modules saved with torch.jit.save.

Inputs reach forward() as tensors that share memory with the caller's numpy
arrays (torch.from_numpy, no copy). Those arrays may be read-only views of
tensors Redis owns, so a model that writes to its inputs in place would write
into the stored tensor, as it would in RedisAI, whose libtorch backend wraps
the same memory with from_blob.

Runs are in inference mode, as under torch.inference_mode(): no autograd
bookkeeping. The module is run as it was saved (its training/eval mode is
left alone), as RedisAI does.
"""

from __future__ import annotations

import io
import logging
import threading
import warnings

import numpy as np
import torch as _framework

from redisai_py._errors import BackendError
from redisai_py.backends.base import ModelSession, ModelSpec

__all__ = ["version", "load", "cuda_device", "TorchSession"]

_log = logging.getLogger("redisai_py.backends.torch")

# torch.from_numpy warns (once per process) when an array is read-only, because
# torch has no read-only tensors. Inputs are read-only views of Redis memory
# on purpose and are never written by us; a copy per run to silence a warning
# would cost more than the run of a small model.
warnings.filterwarnings(
    "ignore", message="The given NumPy array is not writable", category=UserWarning
)

GPU_NOT_FOUND = "GPU requested but Torch couldn't find CUDA"
NO_SUCH_GPU = "GPU:{index} requested but Torch sees {count} CUDA device(s)"
NON_TENSOR_OUTPUT = "Function returned non-tensor values"
STRING_UNSUPPORTED = "ERR The TORCH backend does not support STRING tensors"
SESSION_CLOSED = "ERR The TORCH model was freed"

_from_numpy = _framework.from_numpy
_Tensor = _framework.Tensor


class _PublicInferenceMode:
    """Inference mode on while this object lives, through the public context manager."""

    def __init__(self, mode: bool) -> None:
        self._context = _framework.inference_mode(mode)
        self._context.__enter__()

    def __del__(self) -> None:
        self._context.__exit__(None, None, None)


# The guard torch.inference_mode() itself makes: inference mode is on while
# the object lives. Made directly it costs ~0.4 us a run where the public
# context manager, Python around the same guard, costs ~1.5 us.
_InferenceMode = getattr(_framework._C, "_InferenceMode", _PublicInferenceMode)

# INTRA_/INTER_OP_PARALLELISM are process-wide in torch; the first model applies them.
_threads_lock = threading.Lock()
_threads_applied = False


def version() -> str:
    """The version of torch this backend runs on."""
    return str(_framework.__version__)


def load(blob: bytes, spec: ModelSpec) -> TorchSession:
    """Load a TorchScript module from `blob` onto `spec.device`."""
    on_gpu = spec.on_gpu
    try:
        with warnings.catch_warnings():
            # torch 2.13 marks TorchScript deprecated; it is what RedisAI's TORCH backend runs.
            warnings.simplefilter("ignore", DeprecationWarning)
            module = _framework.jit.load(io.BytesIO(blob), map_location="cpu")
    except Exception as exc:
        raise BackendError(str(exc)) from exc
    if on_gpu:
        device = cuda_device(spec.device_id)
        try:
            module.to(device)
        except Exception as exc:
            raise BackendError(str(exc)) from exc
    else:
        device = None
    _apply_threads_once(spec.intra_op_threads, spec.inter_op_threads)
    try:
        return TorchSession(module, spec, device)
    except Exception as exc:  # e.g. a module saved without forward()
        raise BackendError(str(exc)) from exc


def cuda_device(index: int) -> _framework.device:
    """The CUDA device of "GPU" (index -1: torch's current device) or "GPU:<index>".

    A missing index is refused here: torch would fail later, at the first
    copy to it, with a CUDA error and several lines of debugging advice.
    """
    if not _framework.cuda.is_available():
        raise BackendError(GPU_NOT_FOUND)
    if index < 0:
        return _framework.device("cuda")
    count = _framework.cuda.device_count()
    if index >= count:
        raise BackendError(NO_SUCH_GPU.format(index=index, count=count))
    return _framework.device("cuda", index)


def _apply_threads_once(intra_op_threads: int, inter_op_threads: int) -> None:
    """Set torch's global thread counts the first time a model is loaded.

    torch refuses to change the inter-op pool once any parallel work has run
    (a script, another library). Refusing every model for that would make a
    server unusable, so the refusal is logged and the model loads anyway.
    """
    global _threads_applied
    with _threads_lock:
        if _threads_applied:
            return
        _threads_applied = True
        if intra_op_threads > 0 and _framework.get_num_threads() != intra_op_threads:
            _framework.set_num_threads(intra_op_threads)
        if inter_op_threads > 0 and _framework.get_num_interop_threads() != inter_op_threads:
            try:
                _framework.set_num_interop_threads(inter_op_threads)
            except RuntimeError:
                _log.warning(
                    "Cannot set number of inter-op threads after parallel work has started; "
                    "torch keeps %d", _framework.get_num_interop_threads(),
                )


def _returned_tensor_count(module: _framework.jit.ScriptModule) -> int | None:
    """How many tensors forward() returns, from its schema; None if only a run can tell.

    A Tensor counts 1 and a Tuple the tensors in it. A List[Tensor] has no
    length in its type: it is counted when the graph returns a list literal
    (`return [a, b]`) and unknown when the list is built up at run time.
    """
    count = 0
    for returned in module.forward.schema.returns:
        kind = returned.type.kind()
        if kind == "TensorType":
            count += 1
        elif kind == "TupleType":
            count += sum(1 for t in returned.type.elements() if t.kind() == "TensorType")
        elif kind == "ListType":
            listed = _list_literal_length(module.forward.graph)
            if listed is None:
                return None
            count += listed
    return count


def _list_literal_length(graph: _framework.Graph) -> int | None:
    (value,) = graph.return_node().inputs()
    node = value.node()
    # A list that is appended to after it is built has more uses than the return.
    if node.kind() != "prim::ListConstruct" or len(value.uses()) != 1:
        return None
    return len(list(node.inputs()))


class TorchSession(ModelSession):
    """One TorchScript module; thread-safe (TorchScript methods may run concurrently)."""

    plain_outputs = True  # tensor.contiguous().numpy(): always a C-contiguous array

    def __init__(self, module: _framework.jit.ScriptModule, spec: ModelSpec,
                 device: _framework.device | None) -> None:
        self.spec = spec
        self._module: _framework.jit.ScriptModule | None = module
        # Calling the method directly skips nn.Module.__call__ (hooks), about 1 µs a run.
        self._forward = module.forward
        self._device = device
        self.input_names = [arg.name for arg in module.forward.schema.arguments[1:]]
        count = _returned_tensor_count(module)
        # Empty when the count is only known at run time (a List[Tensor] built in a loop).
        self.output_names = [""] * count if count else []
        self._closed = False

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        guard = _InferenceMode(True)
        try:
            if self._device is None:
                result = self._forward(*map(_from_numpy, inputs))
            else:
                result = self._forward(*[_from_numpy(a).to(self._device) for a in inputs])
        except Exception as exc:
            raise self._run_error(exc, inputs) from exc
        finally:
            del guard  # now, not when a traceback that holds this frame goes
        to_numpy = _cpu_to_numpy if self._device is None else _gpu_to_numpy
        if type(result) is _Tensor:
            return [to_numpy(result)]
        if isinstance(result, (tuple, list)):
            try:
                return [to_numpy(t) for t in result]
            except AttributeError as exc:
                raise BackendError(NON_TENSOR_OUTPUT) from exc
        raise BackendError(NON_TENSOR_OUTPUT)

    def _run_error(self, exc: Exception, inputs: list[np.ndarray]) -> BackendError:
        """The client-visible error for a failed run (off the hot path)."""
        if self._closed:
            return BackendError(SESSION_CLOSED)
        if any(a.dtype == object for a in inputs):
            return BackendError(STRING_UNSUPPORTED)
        return BackendError(str(exc))

    def close(self) -> None:
        self._closed = True
        self._module = None
        self._forward = _closed_forward


def _closed_forward(*_: object) -> None:
    raise RuntimeError(SESSION_CLOSED)


def _cpu_to_numpy(tensor: _framework.Tensor) -> np.ndarray:
    # contiguous() returns the tensor itself when it already is; numpy() shares its memory.
    return tensor.contiguous().numpy()


def _gpu_to_numpy(tensor: _framework.Tensor) -> np.ndarray:
    return tensor.contiguous().cpu().numpy()
