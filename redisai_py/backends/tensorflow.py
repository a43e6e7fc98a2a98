"""TF backend adapter (tensorflow)."""

from __future__ import annotations

import tensorflow as _framework


def version() -> str:
    """The version of tensorflow this backend runs on."""
    return str(_framework.__version__)
