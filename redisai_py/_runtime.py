"""The in-server side of the shim: what csrc/py_runtime.c calls.

Runs inside redis-server. `start` is called once on the main thread during
module load, before the server serves; everything else is called from
threads the shim starts, never from the Redis main thread.
"""

from __future__ import annotations

import logging
import sys

from redisai_py import backends
from redisai_py._log import RedisLogHandler

_log = logging.getLogger("redisai_py")


def start() -> str:
    """Set up logging and check the dependencies every request needs.

    Returns the start-up summary line the shim writes to the Redis log.
    Raises (and so fails the module load with that message) if numpy is
    missing.
    """
    root = logging.getLogger("redisai_py")
    if not any(isinstance(h, RedisLogHandler) for h in root.handlers):
        root.addHandler(RedisLogHandler())
    root.setLevel(logging.INFO)
    root.propagate = False

    import numpy

    return (
        f"Python {sys.version.split()[0]} (prefix {sys.prefix}), numpy {numpy.__version__}; "
        f"backends available: {', '.join(backends.names())}"
    )


def load_backend(name: str) -> str:
    """Import the framework behind backend `name` and return its version."""
    version = backends.load(name)
    _log.info("backend %s ready: %s", name, version)
    return version
