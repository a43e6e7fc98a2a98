"""Backend registry: name -> adapter module, imported lazily on first use.

Importing this package imports no framework. `load(name)` imports the
adapter (and through it torch, onnxruntime or tensorflow) the first time a
backend is asked for, on a thread that is not the Redis main thread.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# The RedisAI backend names and the adapter module that implements each.
_ADAPTERS: dict[str, str] = {
    "TF": "redisai_py.backends.tensorflow",
    "TFLITE": "redisai_py.backends.tflite",
    "TORCH": "redisai_py.backends.torch",
    "ONNX": "redisai_py.backends.onnx",
}


class BackendLoadError(RuntimeError):
    """The framework behind a backend cannot be imported."""


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
