"""TFLITE backend adapter (the interpreter that ships inside tensorflow)."""

from __future__ import annotations

import tensorflow as _framework


def version() -> str:
    """The version of TensorFlow whose Lite interpreter this backend runs."""
    return str(_framework.__version__)
