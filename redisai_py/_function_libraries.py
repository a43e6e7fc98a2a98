"""Function libraries inside the server: their import and their calls.

The contract with the shim (csrc/python/py_functions.c, through
`_runtime.load_library` and `_runtime.call_function`):

- `load_library(name, code)` runs on the loader thread. The source is
  executed in a fresh module namespace; while it runs, `register_function`
  and `register_trigger` (redisai_py.functions) add to the library being
  loaded, and nothing else can. It returns an opaque `Library`,
  `((function name, flag bits), ...)` and `((trigger name, event, prefix), ...)`.
  It registers nothing anywhere: the C side owns the registry, checks names
  against other libraries and installs the library on the main thread, so a
  library that fails leaves nothing behind. Errors raise `FunctionError`
  whose text is the client's reply.
- `call_function(library, name, keys, args, user, read_only, slot)` runs on a
  function worker. The callback gets `(keys, args)`, lists of bytes; a
  coroutine it returns is run to completion on the worker's own event loop.
  What it returns is reduced to None, bool, int, float, bytes, str, list and
  dict, which the shim turns into the reply; any exception becomes an error
  reply, `ERR <message>` unless its text already starts with an error code.
- `fire_trigger(library, name, key, event, type, user, slot)` runs on a
  function worker for one keyspace event a trigger matched (see below).

Both hold the GIL only while Python runs; `execute()` drops it while the
main thread runs the command.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import re
import selectors
import sys
import threading
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from redisai_py._errors import RedisAIError

# The flags of Redis 7 Functions, as bits; csrc/types/function_lib.h numbers them the same.
FLAG_BITS: Mapping[str, int] = {
    "no-writes": 1 << 0,
    "allow-oom": 1 << 1,
    "allow-stale": 1 << 2,
    "no-cluster": 1 << 3,
    "allow-cross-slot-keys": 1 << 4,
}

_NAME = re.compile(r"[A-Za-z0-9_]+")
_EVENT = re.compile(r"\*|[a-z_]+")
# An error text that already starts with a code (ERR, WRONGTYPE, NOPERM, ...) is sent as it is.
_ERROR_CODE = re.compile(r"^[A-Z][A-Z_]*[A-Z] ")


class FunctionError(RedisAIError):
    """An error whose text is the client's reply to AI.FUNCTION or AI.FCALL."""


class CommandError(Exception):
    """A command that execute() ran answered with an error; `str()` is the
    server's text (e.g. `WRONGTYPE Operation against a key ...`). Left
    uncaught, it is the AI.FCALL client's error reply, unchanged."""


@dataclass(frozen=True)
class RegisteredFunction:
    name: str
    callback: Callable[..., Any]
    flags: int


@dataclass(frozen=True)
class RegisteredTrigger:
    name: str
    callback: Callable[..., Any]
    event: str
    prefix: bytes
    readthrough: bool = False


def _check_registration(kind: str, name: Any, callback: Any, registered: dict[str, Any]) -> None:
    """A function's or trigger's name and callback, with Redis Functions' error texts."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise FunctionError(f"ERR {kind} names can only contain letters, numbers, or underscores(_) "
                            "and must be at least one character long")
    if name in registered:
        raise FunctionError(f"ERR {kind} {name} already exists")
    if not callable(callback):
        raise FunctionError(f"ERR the callback of {kind.lower()} {name} is not callable")


class Library:
    """A loaded library: its module (kept alive for its globals), functions and triggers."""

    def __init__(self, name: str, module: types.ModuleType, functions: dict[str, RegisteredFunction],
                 triggers: dict[str, RegisteredTrigger] | None = None) -> None:
        self.name = name
        self.module = module
        self.functions = functions
        self.triggers = triggers or {}


class _Builder:
    """What one import registers, before it is checked and handed to C."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.functions: dict[str, RegisteredFunction] = {}
        self.triggers: dict[str, RegisteredTrigger] = {}

    def add_trigger(self, name: str, callback: Callable[..., Any], event: Any, prefix: Any, commands: Any) -> None:
        _check_registration("Trigger", name, callback, self.triggers)
        if not isinstance(event, str) or not _EVENT.fullmatch(event):
            raise FunctionError(f"ERR the event of trigger {name} must be a keyspace event name "
                                "(set, hset, del, expired, keymiss, ...) or *")
        if isinstance(prefix, str):
            prefix = prefix.encode()
        if not isinstance(prefix, bytes):
            raise FunctionError(f"ERR the prefix of trigger {name} must be str or bytes")
        readthrough = False
        if commands is not None:
            names = [commands] if isinstance(commands, str) else list(commands)
            if event != "keymiss" or [str(c).upper() for c in names] != ["GET"]:
                raise FunctionError(f"ERR trigger {name}: commands= is only for read-through, "
                                    'event="keymiss" with commands=["GET"]')
            readthrough = True
        self.triggers[name] = RegisteredTrigger(name, callback, event, prefix, readthrough)

    def add(self, name: str, callback: Callable[..., Any], flags: Any) -> None:
        _check_registration("Function", name, callback, self.functions)
        if isinstance(flags, str):
            flags = (flags,)
        bits = 0
        for flag in flags:
            if flag not in FLAG_BITS:
                raise FunctionError(f"ERR Unknown flag given: {flag}")
            bits |= FLAG_BITS[flag]
        self.functions[name] = RegisteredFunction(name, callback, bits)


@dataclass(frozen=True)
class CallContext:
    """Who called the running function, for its execute() calls."""

    user: bytes
    read_only: bool
    slot: int


_loading: contextvars.ContextVar[_Builder | None] = contextvars.ContextVar("loading", default=None)
_calling: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar("calling", default=None)


def current_builder() -> _Builder:
    builder = _loading.get()
    if builder is None:
        raise RuntimeError("register_function() can only be called while AI.FUNCTION LOAD imports its library")
    return builder


def current_call() -> CallContext:
    call = _calling.get()
    if call is None:
        raise RuntimeError("execute() can only be called while a function runs (not while its library loads)")
    return call


def execute_as_caller(command: tuple[Any, ...], raw: bool = False) -> Any:
    """A Redis command for the running function, on the main thread, as its
    caller (see functions.execute); raw: bulk strings as bytes."""
    call = current_call()
    argv = [part if isinstance(part, (str, bytes)) else str(part) for part in command]
    import _redisai_shim  # type: ignore[import-not-found]  # built into the shim

    ok, reply = _redisai_shim.function_execute(call.user, call.read_only, call.slot, argv, raw)
    if not ok:
        raise CommandError(reply)
    return reply


def _one_line_error(exc: BaseException) -> str:
    if type(exc).__name__ == "FunctionKilled":  # _redisai_shim's, raised by AI.FUNCTION KILL
        return "ERR the function was killed by AI.FUNCTION KILL"
    text = str(exc) or type(exc).__name__
    return text if _ERROR_CODE.match(text) else f"ERR {text}"


def _offer_redis_ai() -> None:
    """`import redisAI` in a library finds redisai_py.redis_ai (Gears' module name)."""
    if "redisAI" not in sys.modules:
        from redisai_py import redis_ai

        sys.modules["redisAI"] = redis_ai


def load_library(name: str, code: str) -> tuple[Library, tuple[tuple[str, int], ...],
                                                tuple[tuple[str, str, bytes, bool], ...]]:
    """Import `code` as library `name` (see the module's doc)."""
    builder = _Builder(name)
    _offer_redis_ai()
    module = types.ModuleType(f"redisai_function_library_{name}")
    module.__dict__["__file__"] = f"<library {name}>"
    token = _loading.set(builder)
    try:
        exec(compile(code, f"<library {name}>", "exec"), module.__dict__)
    except FunctionError:
        raise
    except SyntaxError as exc:
        raise FunctionError(f"ERR Error compiling library {name}: {exc}") from exc
    except BaseException as exc:  # noqa: BLE001 -- an import's SystemExit must not end the loader
        raise FunctionError(f"ERR Error loading library {name}: {type(exc).__name__}: {exc}") from exc
    finally:
        _loading.reset(token)
    if not builder.functions and not builder.triggers:
        raise FunctionError("ERR No functions registered")
    library = Library(name, module, builder.functions, builder.triggers)
    return (library, tuple((f.name, f.flags) for f in builder.functions.values()),
            tuple((t.name, t.event, t.prefix, t.readthrough) for t in builder.triggers.values()))


_loops = threading.local()
_MAX_DEPTH = 64  # the shim's own limit too (py_functions.c)


class _RunPortSelector(selectors.DefaultSelector):
    """The loop's selector: before the loop sleeps, the shim polls this
    thread's port of awaited runs for a while (WORKER_SPIN_US, without the
    GIL), so a model run that ends soon resumes its coroutine without the
    wake-up of a sleeping thread."""

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None or timeout > 0:
            import _redisai_shim  # type: ignore[import-not-found]  # built into the shim

            _redisai_shim.run_port_poll()
        return super().select(timeout)


def _run_coroutine(coro: Any) -> Any:
    """To completion on this worker's own event loop (made once per thread)."""
    loop = getattr(_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.SelectorEventLoop(_RunPortSelector())
        _loops.loop = loop
    return loop.run_until_complete(coro)


def reply_value(value: Any, depth: int = 0) -> Any:
    """`value` reduced to what the shim replies with: None, bool, int (64-bit;
    larger ones as their decimal text), float, bytes, str, list and dict.
    numpy arrays and tensors become their values (nested lists), numpy
    scalars Python numbers, tuples and sets lists."""
    if depth > _MAX_DEPTH:
        raise FunctionError("ERR the function's return value is nested too deeply")
    if value is None or isinstance(value, (bool, float, bytes, str)):
        return value
    if isinstance(value, int):
        return value if -(1 << 63) <= value < (1 << 63) else str(value)
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, dict):
        return {reply_value(k, depth + 1): reply_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [reply_value(v, depth + 1) for v in value]
    module = type(value).__module__
    if module.startswith("torch"):
        return reply_value(value.detach().cpu().numpy().tolist(), depth + 1)
    if hasattr(value, "__array__") or module == "_redisai_shim":  # numpy arrays and scalars, PyTensor, views
        import numpy as np

        return reply_value(np.asarray(value).tolist(), depth + 1)
    raise FunctionError(f"ERR the function returned a {type(value).__name__}, which has no reply form")


def call_function(library: Library, name: str, keys: list[bytes], args: list[bytes], user: bytes,
                  read_only: bool, slot: int) -> Any:
    """Run function `name` of `library` for AI.FCALL (see the module's doc)."""
    function = library.functions.get(name)
    if function is None:  # the C registry found it in this library: cannot happen
        raise FunctionError("ERR Function not found")
    token = _calling.set(CallContext(user, read_only, slot))
    try:
        result = function.callback(keys, args)
        if inspect.isawaitable(result):
            result = _run_coroutine(result)
        return reply_value(result)
    except BaseException as exc:  # noqa: BLE001 -- a callback's SystemExit is its caller's error, not ours
        raise FunctionError(_one_line_error(exc)) from exc
    finally:
        _calling.reset(token)


_override: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar("override", default=None)


def override_reply(value: Any) -> None:
    """The answer of the GET a read-through trigger runs for (see functions.override_reply)."""
    slot = _override.get()
    if slot is None:
        raise FunctionError("ERR override_reply() is only for a read-through trigger (a GET that waits)")
    if not slot:  # the first one wins, as in Gears
        slot.append(value)


def _answer(value: Any) -> tuple[str, bytes]:
    """A read-through's answer as (kind, bytes) for the shim: None nil; str
    or bytes a bulk string (a leading "-" an error, "+" a status, as in
    Gears); int an integer (beyond 64 bits, its digits as a bulk string);
    float its text."""
    if value is None:
        return "nil", b""
    if isinstance(value, int):  # bool included
        number = int(value)
        return ("int" if -(1 << 63) <= number < (1 << 63) else "bulk"), str(number).encode()
    if isinstance(value, float):
        return "bulk", repr(value).encode()
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if data.startswith(b"-"):
            return "error", data[1:]
        if data.startswith(b"+"):
            return "status", data[1:]
        return "bulk", data
    raise FunctionError(f"ERR a read-through answer must be None, str, bytes or a number, not {type(value).__name__}")


def fire_trigger(library: Library, name: str, key: bytes, event: str, key_type: str, user: bytes, slot: int,
                 want_reply: bool = False) -> tuple[str, bytes] | None:
    """Run trigger `name` of `library` for one keyspace event, on a function
    worker. The callback gets a record, RedisGears' shape: a dict with `key`
    (str), `key_raw` (bytes), `event` and `type` (Redis's TYPE name; "none"
    once the key is gone). Its execute() runs as `user` (who loaded the
    library), may write, and in cluster mode reaches the slot of `key`. A
    coroutine it returns runs to completion on this worker's event loop.
    Errors are raised to the shim, which counts and logs them.

    want_reply (a read-through): returns the GET's answer as (kind, bytes):
    what override_reply() got first, else the return value; an exception is
    ("exception", its reply text), which the shim counts as a failure."""
    trigger = library.triggers.get(name)
    if trigger is None:
        return ("nil", b"") if want_reply else None
    record = {"key": key.decode("utf-8", "replace"), "key_raw": key, "event": event, "type": key_type}
    token = _calling.set(CallContext(user, False, slot))
    override = _override.set([] if want_reply else None)
    try:
        result = trigger.callback(record)
        if inspect.isawaitable(result):
            result = _run_coroutine(result)
        if not want_reply:
            return None
        slot_value = _override.get()
        return _answer(slot_value[0] if slot_value else result)
    except BaseException as exc:  # noqa: BLE001 -- the waiting client gets it as its error
        if not want_reply:
            raise
        return "exception", _one_line_error(exc).encode()
    finally:
        _override.reset(override)
        _calling.reset(token)
