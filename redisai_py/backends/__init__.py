"""Backend registry: name -> adapter module, imported lazily on first use.

Importing this package imports no framework (only numpy, through base).
`load(name)` imports the adapter (and through it torch, onnxruntime or
tensorflow) the first time a backend is asked for, on a thread that is not
the Redis main thread. `load_model(blob, spec)` instantiates a model with the
adapter of `spec.backend`; every adapter follows the interface in base.py.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from redisai_py._errors import BackendError, BackendLoadError
from redisai_py.backends.base import ModelSession, ModelSpec

__all__ = [
    "BackendError",
    "BackendLoadError",
    "ModelSession",
    "ModelSpec",
    "adapter",
    "load",
    "load_model",
    "names",
]

# The RedisAI backend names and the adapter module that implements each.
_ADAPTERS: dict[str, str] = {
    "TF": "redisai_py.backends.tensorflow",
    "TFLITE": "redisai_py.backends.tflite",
    "TORCH": "redisai_py.backends.torch",
    "ONNX": "redisai_py.backends.onnx",
}


def names() -> list[str]:
    return list(_ADAPTERS)


def adapter(name: str) -> ModuleType:
    """The adapter module for `name`, importing it (and its framework) once."""
    try:
        module_name = _ADAPTERS[name.upper()]
    except KeyError:
        raise BackendLoadError(f"unsupported backend {name!r}") from None
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendLoadError(f"backend {name} is not installed: {exc}") from exc


def load(name: str) -> str:
    """Import backend `name` and return the version of its framework."""
    return adapter(name).version()


def load_model(blob: bytes, spec: ModelSpec) -> ModelSession:
    """Instantiate the model in `blob` with the adapter of `spec.backend`.

    Raises BackendLoadError if the framework cannot be imported and
    BackendError (with the client-visible text) if the model cannot be created.
    """
    return adapter(spec.backend).load(blob, spec)
