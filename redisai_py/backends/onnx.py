"""ONNX backend adapter (onnxruntime)."""

from __future__ import annotations

import onnxruntime as _framework


def version() -> str:
    """The version of onnxruntime this backend runs on."""
    return str(_framework.__version__)
