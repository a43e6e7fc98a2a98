"""The API of in-server Python functions: what a library's code imports.

A library is Python source whose first line is `#!python name=<library>`,
loaded with `AI.FUNCTION LOAD`. While it is imported it registers its
functions; each runs on a function worker thread when a client sends
`AI.FCALL <function> <numkeys> [key ...] [arg ...]`:

    #!python name=counters
    from redisai_py.functions import execute, register_function

    def bump(keys, args):
        return execute("INCRBY", keys[0], args[0])

    register_function("bump", bump)

A callback takes `(keys, args)`, both lists of bytes, and may be `async def`.
Its return value is the reply (None, bool, int, float, str, bytes, lists,
dicts, numpy arrays); an exception it raises is an error reply.

Loading code into the server is as powerful as loading a module: only users
allowed to run MODULE LOAD may run AI.FUNCTION LOAD, DELETE, FLUSH and KILL.
Tensors: the `redisAI` module (redisai_py.redis_ai), with RedisGears' names.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Iterable
from typing import Any

from redisai_py import _function_libraries as _libraries

__all__ = ["register_function", "register_trigger", "override_reply", "execute", "hashtag", "log", "CommandError",
           "FLAGS"]

FLAGS: frozenset[str] = frozenset(_libraries.FLAG_BITS)
"""The flags a function may carry (Redis 7 Functions' names): `no-writes`
(required by AI.FCALL_RO; execute() may not write), `allow-oom`,
`allow-stale`, `no-cluster`, `allow-cross-slot-keys`."""


CommandError = _libraries.CommandError


def register_function(name: str, callback: Callable[[list[bytes], list[bytes]], Any],
                      flags: Iterable[str] = ()) -> None:
    """Register `callback` as function `name` of the library being loaded.

    Only while `AI.FUNCTION LOAD` imports the library. Names are letters,
    digits and underscores, unique across every loaded library."""
    _libraries.current_builder().add(name, callback, tuple(flags) if not isinstance(flags, str) else flags)


def register_trigger(name: str, callback: Callable[[dict[str, Any]], Any], event: str = "*",
                     prefix: str | bytes = "", commands: Iterable[str] | None = None) -> None:
    """Register `callback` to run on a function worker after each keyspace
    `event` (Redis's event names: "set", "hset", "del", "expired",
    "keymiss", ...; "*" any but keymiss) on a key starting with `prefix`.

    Only while `AI.FUNCTION LOAD` imports the library. The callback gets a
    record dict (`key`, `key_raw`, `event`, `type`) and may be `async def`;
    its execute() runs as the user who loaded the library. Triggers fire on
    masters only, not while the server loads.

    Read-through: with `event="keymiss", commands=["GET"]`, a client's GET
    of a missing key under `prefix` waits for the callback and gets what it
    passes to override_reply() (or returns) instead of nil; inside MULTI or
    Lua the GET answers nil and the trigger does not run."""
    _libraries.current_builder().add_trigger(name, callback, event, prefix, commands)


def override_reply(value: Any) -> None:
    """In a read-through trigger: the answer of the GET that waits for it
    (None: nil; str or bytes: a bulk string, or an error if it starts with
    "-", a status with "+"; a number). Only the first call counts."""
    _libraries.override_reply(value)


def execute(*command: str | bytes | int | float) -> Any:
    """Run a Redis command from a running function and return its reply.

    It runs on the Redis main thread as the ACL user that sent AI.FCALL, so a
    user limited to some keys reaches only those through a function; under
    AI.FCALL_RO it may not write; in cluster mode it may touch only keys in
    the slot of the keys AI.FCALL named. Replies convert as for scripts'
    redis.execute (bulk strings as str). An error reply raises CommandError."""
    return _libraries.execute_as_caller(command)


_tags: dict[int, str] = {}


def hashtag() -> str:
    """A hash tag for keys the running function creates: `{tag}` in a key
    name puts it in the slot of the keys AI.FCALL named (cluster mode), so
    execute() may use it. Outside cluster mode, or for a call without keys,
    any key is local and the tag is that of slot 0."""
    call = _libraries.current_call()
    slot = max(call.slot, 0)
    if slot not in _tags:
        n = 0
        while binascii.crc_hqx(str(n).encode(), 0) % 16384 != slot:  # Redis Cluster's CRC16
            n += 1
        _tags[slot] = str(n)
    return _tags[slot]


def log(message: str, level: str = "notice") -> None:
    """Write `message` to the Redis log at `level` (warning, notice, verbose, debug)."""
    if level not in ("warning", "notice", "verbose", "debug"):
        raise ValueError(f"unknown log level {level!r}")
    import _redisai_shim  # type: ignore[import-not-found]

    _redisai_shim.log(level, str(message))
