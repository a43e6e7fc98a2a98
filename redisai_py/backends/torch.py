"""TORCH backend adapter (torch)."""

from __future__ import annotations

import torch as _framework


def version() -> str:
    """The version of torch this backend runs on."""
    return str(_framework.__version__)
