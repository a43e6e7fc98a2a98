"""redisai_py: a Redis module that serves AI models where the data lives.

Importing this package never imports a framework (torch, onnxruntime,
tensorflow): backends load lazily, inside the server, on first use.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

__all__ = ["module_path", "__version__"]

__version__ = "0.1.0"

_SHIM_NAME = "redisai_shim.so"


def module_path() -> Path:
    """The absolute path of the built module, for `redis-server --loadmodule`.

    Next to this file when the package is installed; when it is imported from
    a source checkout (python -m from the repository root), the copy that the
    build installed into the running interpreter's site-packages.
    """
    candidates = [
        Path(__file__).resolve().parent / _SHIM_NAME,
        Path(sysconfig.get_paths()["platlib"]) / "redisai_py" / _SHIM_NAME,
    ]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    raise FileNotFoundError(
        f"{candidates[-1]} is missing: the shim is not built (run `make install`)"
    )
