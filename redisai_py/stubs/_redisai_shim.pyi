"""`_redisai_shim`: the module the shim builds into redis-server (csrc/py_bridge.c).

It exists only inside the server: redisai_py._runtime and the code it runs
import it there. This stub is its one declaration on the Python side;
tests/test_python_boundary.py checks it against py_bridge.c's tables.
"""

from typing import final

DTYPES: tuple[tuple[str, str | None, int], ...]
"""The shim's tensor types in its own order: (name, buffer format, bytes per
element); STRING has no format and size 0. The one table (csrc/tensor.c)."""

@final
class Tensor:
    """A read-only view of a stored tensor; holds a reference to it.

    Through the buffer protocol a numeric tensor is typed and shaped
    (numpy.asarray(view) is the array), a STRING tensor is its raw bytes:
    NUL-terminated pieces."""

    @property
    def dtype(self) -> str: ...
    @property
    def shape(self) -> tuple[int, ...]: ...

@final
class Model:
    """A stored model: its blob through the buffer protocol, and metadata."""

    @property
    def id(self) -> int: ...
    @property
    def backend(self) -> str: ...
    @property
    def device(self) -> str: ...
    @property
    def inputs(self) -> tuple[str, ...]: ...
    @property
    def outputs(self) -> tuple[str, ...]: ...
    @property
    def warmup(self) -> int: ...

@final
class Script:
    """A stored TorchScript script: its source and metadata."""

    @property
    def id(self) -> int: ...
    @property
    def device(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def entry_points(self) -> tuple[str, ...]: ...

FunctionKilled: type[BaseException]
"""Raised inside a running function by AI.FUNCTION KILL (a BaseException,
so `except Exception` does not catch it)."""

def log(level: str, message: str) -> None:
    """Write a line to the Redis log at `level` ("warning", "notice", "verbose", "debug")."""

def call(command: str, args: list[str | bytes] | tuple[str | bytes, ...]) -> object:
    """Run a Redis command (replicated) for a script's redis.execute and return its reply."""

def get_model(key: str, user: bytes | None = None, slot: int = -2) -> Model:
    """The model stored under `key`, looked up as ACL user `user` (a function's
    caller), or as the user that ran the running script (redisAI.model_execute).
    In cluster mode a function's lookup names its call's slot (-1: the call
    named no keys), and a key outside it is refused as execute() refuses it."""

def get_tensor(key: str, user: bytes, slot: int) -> Tensor:
    """The tensor stored under `key`, shared with Redis (a read-only view, no
    copy), looked up as ACL user `user` (a function's caller) within the
    call's cluster slot, as get_model. RuntimeError with the reply's text:
    NOPERM, a slot refusal, "ERR tensor key is empty", WRONGTYPE, or
    "ERR unsupported tensor type STRING"."""

def function_execute(user: bytes, read_only: bool, slot: int,
                     command: list[str | bytes] | tuple[str | bytes, ...], raw: bool = False) -> tuple[bool, object]:
    """Run a Redis command for a function's execute() as ACL user `user`
    (no writes if read_only; in cluster mode only keys of `slot`, -1: none):
    (True, reply) or (False, the server's error text). raw: bulk strings as
    bytes, not str."""

def run_job(target: Model | Script, fn: str | None,
            inputs: list[tuple[str, tuple[int, ...], object]], noutputs: int) -> tuple[bool, object]:
    """Run a model (fn None) or a script's function `fn` for a function's
    redisAI runner, as an ordinary run job on its device queue; inputs are
    (type name, shape, buffer). (True, [Tensor, ...]) or (False, error text)."""

def run_job_start(target: Model | Script, fn: str | None,
                  inputs: list[tuple[str, tuple[int, ...], object]], noutputs: int) -> int:
    """Queue the same run as run_job for an awaiting function without waiting
    for it: its token. The run ends into this thread's port (run_port_fd)."""

def run_port_fd() -> int:
    """The eventfd this thread's awaited runs signal when they end (made on
    first use, kept for the thread's life)."""

def run_port_poll() -> bool:
    """Called by a function thread's event loop before it sleeps: while this
    thread awaits runs, polls its port without the GIL for up to
    WORKER_SPIN_US; whether a run has ended."""

def run_port_take() -> list[tuple[int, bool, object]]:
    """This thread's awaited runs that ended since the last call, oldest
    first: (token, True, [Tensor, ...]) or (token, False, error text)."""

def get_script(key: str, user: bytes, slot: int) -> Script:
    """The script stored under `key`, for createScriptRunner, looked up as
    get_model (the caller's ACL key rule, the call's cluster slot).
    RuntimeError with the reply's text otherwise."""
