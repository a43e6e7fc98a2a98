"""In-server Python functions: a user loads a library, calls its functions, and
trusts the server to keep, replicate and guard them.

User stories:
- a developer loads a library (`#!python name=<lib>`), sees it in AI.FUNCTION
  LIST with its functions and flags, calls them with keys and args, replaces
  it, deletes it, flushes everything;
- a library that does not import or register cleanly is refused with the
  Python error as the reply, and leaves nothing behind;
- every Python return value has a reply form in RESP3 and in RESP2; an
  exception is an error reply; an `async def` function runs to completion;
- a bad AI.FCALL (key count 0, -1, 2^63-1, not a number; an unknown
  function; AI.FCALL_RO of a function that may write) is refused, the
  keyspace intact and the server answering;
- a function's execute() runs as the caller's ACL user, so a tenant limited
  to `~tenantA:*` cannot reach `tenantB:*` through a function, and a
  no-writes function cannot write;
- only a user who may run MODULE LOAD may load, delete or flush libraries;
- libraries survive DEBUG RELOAD, a restart from the RDB or from the AOF
  (rewritten or not), and reach replicas, where AI.FCALL_RO serves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis

from conftest import SERVER_KIND, RedisServer, ServerFactory, wait_until
from keyspace import assert_intact, snapshot
from model_builders import torch_add

MAIN_THREAD_GIL = "the Redis main thread took the GIL"
# Module-wide server: each story starts from an empty keyspace and no libraries.
SHARED_SERVER_MODULE_ARGS: list[str] = []

BASICS = '''#!python name=basics
from redisai_py.functions import execute, register_function

def echo(keys, args):
    return [keys, args]

def bump(keys, args):
    return execute("INCRBY", keys[0], args[0] if args else 1)

def peek(keys, args):
    return execute("GET", keys[0])

register_function("echo", echo, flags=["no-writes"])
register_function("bump", bump)
register_function("peek", peek, flags=("no-writes", "allow-oom"))
'''

REPLIES = '''#!python name=replies
import numpy as np
from redisai_py.functions import register_function

VALUES = {
    "none": None, "int": -7, "big": 2 ** 70, "float": 1.5, "true": True, "false": False,
    "str": "h\\u00e9", "bytes": b"\\x00\\xff", "list": [1, [b"a", None]], "tuple": (1, 2),
    "dict": {"a": 1, "b": [2.5]}, "array": np.arange(6, dtype=np.int32).reshape(2, 3),
    "farray": np.array([0.5, 1.5], dtype=np.float32), "npint": np.int64(9),
}

def give(keys, args):
    return VALUES[args[0].decode()]

async def later(keys, args):
    import asyncio
    await asyncio.sleep(0.01)
    return b"done " + args[0]

def fail(keys, args):
    raise ValueError("no such thing")

def fail_with_code(keys, args):
    raise RuntimeError("WRONGTYPE the function says so")

def bad_value(keys, args):
    return object()

register_function("give", give, flags=["no-writes"])
register_function("later", later, flags=["no-writes"])
register_function("fail", fail)
register_function("fail_with_code", fail_with_code)
register_function("bad_value", bad_value)
'''


SLOW = '''#!python name=slow
import time
from redisai_py.functions import register_function

def nap(keys, args):
    time.sleep(float(args[0]))
    return 1

register_function("nap", nap, flags=["no-writes"])
'''


@pytest.fixture
def r(shared_server: RedisServer) -> Iterator[redis.Redis]:
    """A RESP3 client of the module's shared server, emptied for the story."""
    client = shared_server.client(protocol=3)
    client.flushall()
    client.execute_command("AI.FUNCTION", "FLUSH")
    yield client


def resp2(server: RedisServer) -> redis.Redis:
    client = server.client(protocol=2)
    client.response_callbacks.clear()
    return client


def load(client: redis.Redis, code: str, replace: bool = False) -> object:
    return client.execute_command("AI.FUNCTION", "LOAD", *(["REPLACE"] if replace else []), code)


def libraries(client: redis.Redis) -> dict[bytes, dict[bytes, list[bytes]]]:
    """AI.FUNCTION LIST as {library: {function: flags}}."""
    listed = client.execute_command("AI.FUNCTION", "LIST")
    return {lib[b"library_name"]: {f[b"name"]: f[b"flags"] for f in lib[b"functions"]} for lib in listed}


# ---------------------------------------------------------------- libraries


def test_a_loaded_library_lists_its_functions_and_they_run(r: redis.Redis) -> None:
    assert load(r, BASICS) == b"basics"
    assert libraries(r) == {b"basics": {b"echo": [b"no-writes"], b"bump": [],
                                        b"peek": [b"no-writes", b"allow-oom"]}}
    assert r.execute_command("AI.FCALL", "echo", 2, "k1", "k2", "a1", b"\x00\xff") == \
        [[b"k1", b"k2"], [b"a1", b"\x00\xff"]]
    assert r.execute_command("AI.FCALL", "bump", 1, "counter", 5) == 5
    assert r.execute_command("AI.FCALL", "bump", 1, "counter") == 6
    assert r.get("counter") == b"6"
    assert r.execute_command("AI.FCALL_RO", "peek", 1, "counter") == b"6"


def test_list_filters_by_library_name_and_shows_code_on_request(r: redis.Redis) -> None:
    load(r, BASICS)
    load(r, REPLIES)
    listed = r.execute_command("AI.FUNCTION", "LIST", "LIBRARYNAME", "rep*", "WITHCODE")
    assert [lib[b"library_name"] for lib in listed] == [b"replies"]
    assert listed[0][b"engine"] == b"PYTHON"
    assert listed[0][b"library_code"] == REPLIES.encode()
    assert r.execute_command("AI.FUNCTION", "LIST", "LIBRARYNAME", "nothing*") == []
    assert b"library_code" not in r.execute_command("AI.FUNCTION", "LIST")[0]
    with pytest.raises(redis.ResponseError, match="Unknown argument"):
        r.execute_command("AI.FUNCTION", "LIST", "WITHCODE", "WITHCODE")


def test_replace_swaps_the_code_and_drops_functions_it_no_longer_has(r: redis.Redis) -> None:
    load(r, BASICS)
    with pytest.raises(redis.ResponseError, match="^Library 'basics' already exists$"):
        load(r, BASICS)
    v2 = BASICS.replace('register_function("bump", bump)\n', "").replace("[keys, args]", '"v2"')
    assert load(r, v2, replace=True) == b"basics"
    assert set(libraries(r)[b"basics"]) == {b"echo", b"peek"}
    assert r.execute_command("AI.FCALL", "echo", 0) == b"v2"
    with pytest.raises(redis.ResponseError, match="^Function not found$"):
        r.execute_command("AI.FCALL", "bump", 1, "k")


def test_delete_and_flush_remove_libraries(r: redis.Redis) -> None:
    load(r, BASICS)
    load(r, REPLIES)
    assert r.execute_command("AI.FUNCTION", "DELETE", "basics") == b"OK"
    assert set(libraries(r)) == {b"replies"}
    with pytest.raises(redis.ResponseError, match="^Library not found$"):
        r.execute_command("AI.FUNCTION", "DELETE", "basics")
    with pytest.raises(redis.ResponseError, match="^Function not found$"):
        r.execute_command("AI.FCALL", "echo", 0)
    assert r.execute_command("AI.FUNCTION", "FLUSH", "ASYNC") == b"OK"
    assert libraries(r) == {}
    with pytest.raises(redis.ResponseError, match="SYNC|ASYNC"):
        r.execute_command("AI.FUNCTION", "FLUSH", "LATER")
    with pytest.raises(redis.ResponseError, match="unknown subcommand 'DUMP'"):
        r.execute_command("AI.FUNCTION", "DUMP")


BAD_LIBRARIES = [
    ("print('no header')", "^Missing library metadata$"),
    ("#!lua name=x\n", "^Engine 'lua' not found$"),
    ("#!python\n", "^Library name was not given$"),
    ("#!python name=a-b\n", "^Library names can only contain letters"),
    ("#!python name=x version=2\n", "^Invalid metadata value given: version=2$"),
    ("#!python name=broken\ndef f(:\n", "^Error compiling library broken: "),
    ("#!python name=broken\nimport no_such_module_here\n",
     "^Error loading library broken: ModuleNotFoundError: No module named 'no_such_module_here'$"),
    ("#!python name=broken\nx = 1\n", "^No functions registered$"),
    ("#!python name=broken\nfrom redisai_py.functions import register_function as r\n"
     "r('f', len)\nr('f', len)\n", "^Function f already exists$"),
    ("#!python name=broken\nfrom redisai_py.functions import register_function as r\nr('f', len, ['fast'])\n",
     "^Unknown flag given: fast$"),
    ("#!python name=broken\nfrom redisai_py.functions import register_function as r\nr('f-g', len)\n",
     "^Function names can only contain letters"),
    ("#!python name=broken\nfrom redisai_py.functions import register_function as r\nr('f', 42)\n",
     "^the callback of function f is not callable$"),
    ("#!python name=broken\nfrom redisai_py.functions import execute\nexecute('SET', 'k', 'v')\n",
     "^Error loading library broken: RuntimeError: execute\\(\\) can only be called while a function runs"),
    ("#!python name=broken\nraise SystemExit(3)\n", "^Error loading library broken: SystemExit: 3$"),
    ("#!python name=other\nfrom redisai_py.functions import register_function as r\nr('echo', len)\n",
     "^Function echo already exists$"),
]


@pytest.mark.parametrize("code, error", BAD_LIBRARIES)
def test_a_library_that_fails_leaves_nothing_behind(r: redis.Redis, code: str, error: str) -> None:
    load(r, BASICS)
    r.set("guard", "1")
    before, listed = snapshot(r), r.execute_command("AI.FUNCTION", "LIST", "WITHCODE")
    with pytest.raises(redis.ResponseError, match=error):
        load(r, code)
    with pytest.raises(redis.ResponseError, match=error):
        load(r, code, replace=True)
    assert r.execute_command("AI.FUNCTION", "LIST", "WITHCODE") == listed
    assert r.execute_command("AI.FCALL", "echo", 0) == [[], []]
    assert_intact(r, before)


def test_a_failed_replace_keeps_the_old_library(r: redis.Redis) -> None:
    load(r, BASICS)
    with pytest.raises(redis.ResponseError, match="^Error loading library basics: ZeroDivisionError"):
        load(r, BASICS + "1 / 0\n", replace=True)
    assert r.execute_command("AI.FCALL", "bump", 1, "n", 2) == 2


def test_function_commands_refuse_wrong_arity(r: redis.Redis) -> None:
    for command in (("AI.FUNCTION",), ("AI.FUNCTION", "LOAD"), ("AI.FUNCTION", "LOAD", "REPLACE", "x", "y"),
                    ("AI.FUNCTION", "DELETE"), ("AI.FCALL", "f"), ("AI.FCALL_RO",)):
        with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
            r.execute_command(*command)
    with pytest.raises(redis.ResponseError, match="^Unknown option given$"):
        r.execute_command("AI.FUNCTION", "LOAD", "FORCE", BASICS)


# ------------------------------------------------------------------ replies


@pytest.mark.parametrize("name, resp3, resp2", [
    ("none", None, None),
    ("int", -7, -7),
    ("big", b"1180591620717411303424", b"1180591620717411303424"),
    ("float", 1.5, b"1.5"),
    ("true", True, 1),
    ("false", False, 0),
    ("str", "hé".encode(), "hé".encode()),
    ("bytes", b"\x00\xff", b"\x00\xff"),
    ("list", [1, [b"a", None]], [1, [b"a", None]]),
    ("tuple", [1, 2], [1, 2]),
    ("dict", {b"a": 1, b"b": [2.5]}, [b"a", 1, b"b", [b"2.5"]]),
    ("array", [[0, 1, 2], [3, 4, 5]], [[0, 1, 2], [3, 4, 5]]),
    ("farray", [0.5, 1.5], [b"0.5", b"1.5"]),
    ("npint", 9, 9),
])
def test_return_values_become_replies_in_resp3_and_resp2(shared_server: RedisServer, r: redis.Redis,
                                                         name: str, resp3: object, resp2: object) -> None:
    load(r, REPLIES)
    raw3 = shared_server.client(protocol=3)
    raw3.response_callbacks.clear()
    assert raw3.execute_command("AI.FCALL", "give", 0, name) == resp3
    assert resp2_client(shared_server).execute_command("AI.FCALL_RO", "give", 0, name) == resp2


def resp2_client(server: RedisServer) -> redis.Redis:
    return resp2(server)


def test_an_async_function_runs_to_completion(r: redis.Redis) -> None:
    load(r, REPLIES)
    assert r.execute_command("AI.FCALL", "later", 0, "now") == b"done now"
    assert r.execute_command("AI.FCALL", "later", 0, "again") == b"done again"


def test_a_value_nested_without_end_is_an_error_not_a_crash(r: redis.Redis) -> None:
    load(r, '''#!python name=nested
from redisai_py.functions import register_function

def loop(keys, args):
    value = []
    value.append(value)
    return value

register_function("loop", loop, flags=["no-writes"])
''')
    with pytest.raises(redis.ResponseError, match="^the function's return value is nested too deeply$"):
        r.execute_command("AI.FCALL", "loop", 0)
    assert r.ping() is True


def test_exceptions_are_error_replies(r: redis.Redis) -> None:
    load(r, REPLIES)
    with pytest.raises(redis.ResponseError, match="^no such thing$"):
        r.execute_command("AI.FCALL", "fail", 0)
    with pytest.raises(redis.ResponseError, match="^WRONGTYPE the function says so$"):
        r.execute_command("AI.FCALL", "fail_with_code", 0)
    with pytest.raises(redis.ResponseError, match="returned a object, which has no reply form"):
        r.execute_command("AI.FCALL", "bad_value", 0)
    assert r.ping() is True


def test_an_execute_error_is_the_functions_error_unless_caught(r: redis.Redis) -> None:
    load(r, BASICS)
    load(r, '''#!python name=careful
from redisai_py.functions import CommandError, execute, register_function

def safe_incr(keys, args):
    try:
        return execute("INCR", keys[0])
    except CommandError as exc:
        return "caught: " + str(exc)

register_function("safe_incr", safe_incr)
''')
    r.rpush("list", "x")
    with pytest.raises(redis.ResponseError, match="^WRONGTYPE"):
        r.execute_command("AI.FCALL", "bump", 1, "list")
    assert r.execute_command("AI.FCALL", "safe_incr", 1, "list").startswith(b"caught: WRONGTYPE")


# -------------------------------------------------------------- bad calls


@pytest.mark.parametrize("numkeys, error", [
    ("x", "^value is not an integer or out of range$"),
    ("1.5", "^value is not an integer or out of range$"),
    ("-1", "^Number of keys can't be negative$"),
    (str(-(2 ** 63)), "^Number of keys can't be negative$"),
    ("2", "^Number of keys can't be greater than number of args$"),
    (str(2 ** 63 - 1), "^Number of keys can't be greater than number of args$"),
    (str(2 ** 64), "^value is not an integer or out of range$"),
])
def test_a_bad_key_count_is_refused_and_nothing_runs(r: redis.Redis, numkeys: str, error: str) -> None:
    load(r, BASICS)
    r.set("counter", "1")
    before = snapshot(r)
    for command in ("AI.FCALL", "AI.FCALL_RO"):
        with pytest.raises(redis.ResponseError, match=error):
            r.execute_command(command, "bump", numkeys, "counter")
    assert_intact(r, before)


def test_zero_keys_passes_every_argument_as_an_arg(r: redis.Redis) -> None:
    load(r, BASICS)
    assert r.execute_command("AI.FCALL", "echo", 0, "a", "b") == [[], [b"a", b"b"]]
    assert r.execute_command("AI.FCALL", "echo", "2", "a", "b") == [[b"a", b"b"], []]


def test_unknown_functions_and_fcall_ro_of_a_writer_are_refused(r: redis.Redis) -> None:
    load(r, BASICS)
    r.set("counter", "1")
    before = snapshot(r)
    with pytest.raises(redis.ResponseError, match="^Function not found$"):
        r.execute_command("AI.FCALL", "nope", 0)
    with pytest.raises(redis.ResponseError, match="^Can not execute a function with write flag using fcall_ro.$"):
        r.execute_command("AI.FCALL_RO", "bump", 1, "counter", 1)
    assert_intact(r, before)


def test_a_no_writes_function_cannot_write_through_execute(r: redis.Redis) -> None:
    load(r, '''#!python name=sneaky
from redisai_py.functions import execute, register_function

def sneak(keys, args):
    return execute("SET", keys[0], "changed")

register_function("sneak", sneak, flags=["no-writes"])
''')
    r.set("k", "orig")
    for command in ("AI.FCALL", "AI.FCALL_RO"):
        with pytest.raises(redis.ResponseError, match="[Ww]rite"):
            r.execute_command(command, "sneak", 1, "k")
    assert r.get("k") == b"orig"


def test_a_function_cannot_call_functions_or_scripts_through_execute(r: redis.Redis) -> None:
    load(r, BASICS)
    load(r, '''#!python name=nesting
from redisai_py.functions import execute, register_function

def nest(keys, args):
    return execute(*[a.decode() for a in args])

register_function("nest", nest)
''')
    for command in (("AI.FCALL", "bump", "1", "n"), ("EVAL", "return 1", "0"), ("MULTI",),
                    ("AI.FUNCTION", "FLUSH")):
        with pytest.raises(redis.ResponseError, match="not allowed"):
            r.execute_command("AI.FCALL", "nest", 0, *command)
    try:  # refused by Redis 7.0, run without blocking (as in a script) by Valkey
        blocked = r.execute_command("AI.FCALL", "nest", 0, "BLPOP", "list", "0")
    except redis.ResponseError as exc:
        blocked = str(exc)
    assert blocked in (None, "command 'blpop' is not allowed on script mode")
    assert set(libraries(r)) == {b"basics", b"nesting"}
    assert r.exists("n") == 0


def test_a_library_deleted_during_a_call_lets_the_call_finish(shared_server: RedisServer,
                                                              r: redis.Redis) -> None:
    load(r, SLOW)
    replies: list[object] = []
    caller = threading.Thread(target=lambda: replies.append(
        shared_server.client().execute_command("AI.FCALL", "nap", 0, "0.3")))
    caller.start()
    time.sleep(0.1)
    assert r.execute_command("AI.FUNCTION", "DELETE", "slow") == b"OK"
    caller.join()
    assert replies == [1]
    with pytest.raises(redis.ResponseError, match="^Function not found$"):
        r.execute_command("AI.FCALL", "nap", 0, "0")


def test_the_main_thread_never_takes_the_gil_for_functions(server_factory: ServerFactory) -> None:
    server = server_factory(server_args=["--appendonly", "yes"])
    client = server.client(protocol=3)
    load(client, BASICS)
    load(client, REPLIES)
    client.execute_command("AI.FCALL", "bump", 1, "n")
    client.execute_command("AI.FCALL", "later", 0, "x")
    pipe = client.pipeline(transaction=True)
    pipe.execute_command("AI.FCALL", "bump", 1, "n")
    pipe.execute()
    client.execute_command("DEBUG", "RELOAD")
    client.execute_command("AI.FUNCTION", "DELETE", "replies")
    server.restart()
    client = server.client(protocol=3)
    assert client.execute_command("AI.FCALL", "bump", 1, "n") == 3
    client.execute_command("AI.FUNCTION", "FLUSH")
    assert client.ping() is True
    assert MAIN_THREAD_GIL not in server.log()


def test_fcall_inside_multi_runs_and_its_writes_join_the_transaction(r: redis.Redis) -> None:
    load(r, BASICS)
    pipe = r.pipeline(transaction=True)
    pipe.execute_command("AI.FCALL", "bump", 1, "n", 3)
    pipe.execute_command("AI.FCALL_RO", "peek", 1, "n")
    assert pipe.execute() == [3, b"3"]


def test_register_function_outside_a_load_and_helpers_inside_a_call(r: redis.Redis, shared_server) -> None:
    load(r, '''#!python name=helpers
from redisai_py.functions import hashtag, log, register_function

def late(keys, args):
    register_function("late", late)

def tag(keys, args):
    log("function helpers says hello")
    return hashtag()

register_function("late", late)
register_function("tag", tag, flags=["no-writes"])
''')
    with pytest.raises(redis.ResponseError, match="register_function\\(\\) can only be called while"):
        r.execute_command("AI.FCALL", "late", 0)
    assert r.execute_command("AI.FCALL", "tag", 0) == b"3560"  # "{3560}" hashes to slot 0
    wait_until(lambda: "function helpers says hello" in shared_server.log(), what="the log line")


# ------------------------------------------------------------ ACL and admin


@pytest.fixture
def tenants(r: redis.Redis) -> redis.Redis:
    load(r, BASICS)
    load(r, '''#!python name=reach
from redisai_py.functions import execute, register_function

def read_any(keys, args):
    return execute("GET", args[0])

def write_any(keys, args):
    return execute("SET", args[0], "overwritten")

register_function("read_any", read_any, flags=["no-writes"])
register_function("write_any", write_any)
''')
    r.set("tenantA:x", "a-data")
    r.set("tenantB:secret", "b-data")
    r.execute_command("ACL", "SETUSER", "tenantA", "on", ">pw", "resetkeys", "~tenantA:*",
                      "-@all", "+ai.fcall", "+ai.fcall_ro", "+get", "+incrby")
    return r


def test_execute_runs_as_the_calling_user(shared_server: RedisServer, tenants: redis.Redis) -> None:
    """tenantA may read and INCRBY its own keys; a function cannot take it further."""
    a = shared_server.client(username="tenantA", password="pw", protocol=3)
    assert a.execute_command("AI.FCALL", "read_any", 0, "tenantA:x") == b"a-data"
    assert a.execute_command("AI.FCALL", "bump", 1, "tenantA:n", 2) == 2
    before = snapshot(tenants)
    with pytest.raises(redis.exceptions.NoPermissionError, match="no permissions to run this command or to"):
        a.execute_command("AI.FCALL", "read_any", 0, "tenantB:secret")  # a key outside its pattern
    with pytest.raises(redis.exceptions.NoPermissionError, match="no permissions"):  # a command it may not run
        a.execute_command("AI.FCALL", "write_any", 0, "tenantA:x")
    with pytest.raises(redis.exceptions.NoPermissionError):  # AI.FCALL's own key check
        a.execute_command("AI.FCALL", "bump", 1, "tenantB:secret")
    assert_intact(tenants, before)
    assert tenants.execute_command("AI.FCALL", "read_any", 0, "tenantB:secret") == b"b-data"


MORE = "#!python name=more\nfrom redisai_py.functions import register_function\nregister_function('more', len)\n"


@pytest.mark.parametrize("command", [("LOAD", MORE),
                                     ("DELETE", "basics"), ("FLUSH",), ("KILL",)])
def test_only_users_who_may_load_modules_change_libraries(shared_server: RedisServer, r: redis.Redis,
                                                          command: tuple[str, ...]) -> None:
    load(r, BASICS)
    r.execute_command("ACL", "SETUSER", "dev", "on", ">pw", "~*", "+@all", "-@admin")
    r.execute_command("ACL", "SETUSER", "ops", "on", ">pw", "~*", "+@all")
    listed = r.execute_command("AI.FUNCTION", "LIST", "WITHCODE")
    dev = shared_server.client(username="dev", password="pw")
    with pytest.raises(redis.exceptions.NoPermissionError):
        dev.execute_command("AI.FUNCTION", *command)
    assert r.execute_command("AI.FUNCTION", "LIST", "WITHCODE") == listed
    assert dev.execute_command("AI.FCALL", "echo", 0) == [[], []]
    ops = shared_server.client(username="ops", password="pw")
    if command == ("KILL",):
        with pytest.raises(redis.ResponseError, match="No scripts in execution right now"):
            ops.execute_command("AI.FUNCTION", *command)
    else:
        assert ops.execute_command("AI.FUNCTION", *command) in (b"OK", b"more")


# --------------------------------------------------------------- durability


def assert_basics_serve(client: redis.Redis) -> None:
    assert set(libraries(client)) == {b"basics"}
    assert client.execute_command("AI.FCALL", "bump", 1, "after", 2) == 2


def test_libraries_survive_debug_reload(r: redis.Redis) -> None:
    load(r, BASICS)
    assert r.execute_command("DEBUG", "RELOAD") == b"OK"
    assert_basics_serve(r)


def test_libraries_come_back_from_the_rdb_after_a_restart(server_factory: ServerFactory) -> None:
    server = server_factory()
    client = server.client(protocol=3)
    load(client, BASICS)
    assert client.save() is True
    server.restart()
    assert_basics_serve(server.client(protocol=3))
    assert MAIN_THREAD_GIL not in server.log()


@pytest.mark.parametrize("rewrite", [False, True])
def test_libraries_come_back_from_the_aof(server_factory: ServerFactory, rewrite: bool) -> None:
    server = server_factory(server_args=["--appendonly", "yes", "--appendfsync", "always"])
    client = server.client(protocol=3)
    load(client, BASICS.replace("name=basics", "name=old"))
    load(client, BASICS.replace("name=basics", "name=old"), replace=True)
    client.execute_command("AI.FUNCTION", "DELETE", "old")
    load(client, BASICS)
    if rewrite:
        client.bgrewriteaof()
        wait_until(lambda: client.info("persistence")["aof_rewrite_in_progress"] == 0
                   and client.info("persistence")["aof_rewrite_scheduled"] == 0, what="the AOF rewrite")
    server.stop(9)  # kill -9: only what is in the AOF counts
    server.start()
    assert_basics_serve(server.client(protocol=3))


def test_libraries_reach_replicas_where_fcall_ro_serves(server_factory: ServerFactory) -> None:
    primary = server_factory()
    p = primary.client(protocol=3)
    load(p, REPLIES)
    replica = server_factory(server_args=["--replicaof", "127.0.0.1", str(primary.port)])
    wait_until(lambda: replica.client().info("replication").get("master_link_status") == "up",
               what="the replica to sync")
    load(p, BASICS)  # after the full sync: by replication of the command
    p.execute_command("AI.FCALL", "bump", 1, "n", 4)
    assert p.execute_command("WAIT", 1, 10000) == 1
    rc = replica.client(protocol=3)
    assert set(libraries(rc)) == {b"replies", b"basics"}
    assert rc.execute_command("AI.FCALL_RO", "peek", 1, "n") == b"4"
    with pytest.raises(redis.exceptions.ReadOnlyError):
        rc.execute_command("AI.FCALL", "bump", 1, "n", 1)
    with pytest.raises(redis.exceptions.ReadOnlyError):
        rc.execute_command("AI.FUNCTION", "FLUSH")
    p.execute_command("AI.FUNCTION", "DELETE", "replies")
    assert p.execute_command("WAIT", 1, 10000) == 1
    assert set(libraries(rc)) == {b"basics"}


# ----------------------------------------------------------- function threads




def test_function_threads_run_calls_side_by_side(server_factory: ServerFactory) -> None:
    server = server_factory(module_args=["FUNCTION_THREADS", "2"])
    client = server.client()
    load(client, SLOW)
    started = time.monotonic()
    callers = [threading.Thread(target=lambda: server.client().execute_command("AI.FCALL", "nap", 0, "0.5"))
               for _ in range(2)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert time.monotonic() - started < 0.95
    assert client.ping() is True  # and the main thread answered meanwhile


@pytest.mark.parametrize("value", ["0", "-1", str(2 ** 63 - 1), "two", "65"])
def test_a_bad_function_threads_argument_fails_the_load(server_factory: ServerFactory, value: str) -> None:
    server = server_factory(module_args=["FUNCTION_THREADS", value], start=False)
    with pytest.raises(RuntimeError, match="exited"):
        server.start()
    assert f"ERR error processing argument: FUNCTION_THREADS {value}" in server.log()


# ------------------------------------------------------------------ cluster

SLOTTED = '''#!python name=slotted
import redisAI
from redisai_py.functions import execute, hashtag, register_function

def set_key(keys, args):
    return execute("SET", keys[0], args[0])

def set_other(keys, args):
    return execute("SET", args[0], "x")

def set_tagged(keys, args):
    key = "{" + hashtag() + "}:made"
    execute("SET", key, "made")
    return key

def local_only(keys, args):
    return 1

register_function("set_key", set_key)
register_function("set_other", set_other)
register_function("set_tagged", set_tagged)
register_function("local_only", local_only, flags=["no-cluster"])
register_function("runner_of", lambda keys, args: redisAI.createModelRunner(args[0]) and "made")
register_function("tensor_of", lambda keys, args: redisAI.tensorToFlatList(redisAI.getTensorFromKey(args[0])))
'''


def test_in_a_cluster_execute_touches_only_the_calls_slot(tmp_path) -> None:
    from cluster import Cluster

    cluster = Cluster(tmp_path / "cluster", primaries=3, replicas=0).start()
    try:
        for node in cluster.primaries():  # each node gets the library, as with Redis Functions
            assert load(node.client(), SLOTTED) == b"slotted"
        node = cluster.primary_for("{user1}")
        client = node.client(protocol=3)
        assert client.execute_command("AI.FCALL", "set_key", 1, "{user1}:a", "v") == b"OK"
        assert client.get("{user1}:a") == b"v"
        far_key = next(f"k{i}" for i in range(1000) if cluster.primary_for(f"k{i}").port != node.port)
        near_key = "{user1}:b"
        with pytest.raises(redis.ResponseError, match="only touch keys in the slot of the keys AI.FCALL names"):
            client.execute_command("AI.FCALL", "set_other", 1, "{user1}:a", far_key)
        with pytest.raises(redis.ResponseError, match="may touch keys only when AI.FCALL names keys"):
            client.execute_command("AI.FCALL", "set_other", 0, near_key)
        # A model runner is a read of the model's key: the same slot rule.
        client.execute_command("AI.MODELSTORE", "{user1}:m", "TORCH", "CPU", "BLOB", torch_add())
        assert client.execute_command("AI.FCALL", "runner_of", 1, "{user1}:a", "{user1}:m") == b"made"
        with pytest.raises(redis.ResponseError, match="only touch keys in the slot of the keys AI.FCALL names"):
            client.execute_command("AI.FCALL", "runner_of", 1, "{user1}:a", far_key)
        with pytest.raises(redis.ResponseError, match="may touch keys only when AI.FCALL names keys"):
            client.execute_command("AI.FCALL", "runner_of", 0, "{user1}:m")
        client.execute_command("AI.TENSORSET", "{user1}:t", "FLOAT", 1, "VALUES", 3)  # and a tensor read
        assert client.execute_command("AI.FCALL", "tensor_of", 1, "{user1}:a", "{user1}:t") == [3.0]
        with pytest.raises(redis.ResponseError, match="only touch keys in the slot of the keys AI.FCALL names"):
            client.execute_command("AI.FCALL", "tensor_of", 1, "{user1}:a", far_key)
        made = client.execute_command("AI.FCALL", "set_tagged", 1, "{user1}:a")
        assert client.get(made) == b"made"
        with pytest.raises(redis.ResponseError, match="'no-cluster' flag is set"):
            client.execute_command("AI.FCALL", "local_only", 1, "{user1}:a")
        with pytest.raises(redis.exceptions.MovedError):  # the key spec routes AI.FCALL itself
            client.execute_command("AI.FCALL", "set_key", 1, far_key, "v")
        assert cluster.primary_for(far_key).client().exists(far_key) == 0
    finally:
        cluster.stop()


# ------------------------------------------------------ the redisAI tensor API

TENSORS = '''#!python name=tensors
import numpy as np
import redisAI
from redisai_py.functions import register_function

def double_it(keys, args):
    t = redisAI.getTensorFromKey(keys[0])
    doubled = redisAI.createTensorFromBlob(t.dtype, redisAI.tensorGetDims(t),
                                           (np.asarray(t) * 2).tobytes())
    redisAI.setTensorInKey(keys[1], doubled)
    return [redisAI.tensorToFlatList(doubled), list(redisAI.tensorGetDims(doubled))]

def from_values(keys, args):
    t = redisAI.createTensorFromValues("DOUBLE", [2, 2], [1.0, 2.0, 3.0, 4.5])
    redisAI.msetTensorsInKeyspace({keys[0]: t, keys[1]: redisAI.createTensorFromBlob("UINT8", [3], b"abc")})
    got = redisAI.mgetTensorsFromKeyspace(keys)
    return [bytes(redisAI.tensorGetDataAsBlob(got[1])), got[0]]

def bad(keys, args):
    what = args[0].decode()
    if what == "ints":
        return redisAI.createTensorFromValues("FLOAT", [2], [1, 2])
    if what == "length":
        return redisAI.createTensorFromBlob("FLOAT", [3], b"12345678")
    if what == "type":
        return redisAI.createTensorFromValues("COMPLEX", [1], [1.0])
    if what == "empty":
        return redisAI.getTensorFromKey(keys[0])
    if what == "notatensor":
        return redisAI.getTensorFromKey(keys[0])
    if what == "overwrite":
        return redisAI.setTensorInKey(keys[0], redisAI.createTensorFromValues("FLOAT", [1], [1.0]))

def read_arg(keys, args):
    return redisAI.tensorToFlatList(redisAI.getTensorFromKey(args[0]))

register_function("double_it", double_it)
register_function("from_values", from_values)
register_function("bad", bad)
register_function("read_arg", read_arg, flags=["no-writes"])
'''


def test_redisai_tensor_functions_read_and_write_tensor_keys(shared_server: RedisServer, r: redis.Redis) -> None:
    load(r, TENSORS)
    r.execute_command("AI.TENSORSET", "in", "INT32", 2, 2, "VALUES", 1, 2, 3, 4)
    assert r.execute_command("AI.FCALL", "double_it", 2, "in", "out") == [[2, 4, 6, 8], [2, 2]]
    assert r.execute_command("AI.TENSORGET", "out", "VALUES") == [2, 4, 6, 8]
    assert r.execute_command("AI.FCALL", "from_values", 2, "d", "u") == [b"abc", [[1.0, 2.0], [3.0, 4.5]]]
    assert resp2(shared_server).execute_command("AI.TENSORGET", "d", "META") == [b"dtype", b"DOUBLE",
                                                                                  b"shape", [2, 2]]


@pytest.mark.parametrize("what, error", [
    ("ints", "^values arguments must be double$"),
    ("length", "^data length does not match tensor shape and type$"),
    ("type", "^unsupported data type 'COMPLEX'$"),
    ("empty", "^tensor key is empty$"),
    ("notatensor", "^key is not a tensor$"),
    ("overwrite", "^Key is already set with non tensor values.$"),
])
def test_redisai_tensor_functions_raise_gears_errors(r: redis.Redis, what: str, error: str) -> None:
    load(r, TENSORS)
    r.set("plain", "x")
    before = snapshot(r)
    key = "nothing" if what == "empty" else "plain"
    with pytest.raises(redis.ResponseError, match=error):
        r.execute_command("AI.FCALL", "bad", 1, key, what)
    assert_intact(r, before)


def test_redisai_tensor_reads_and_writes_obey_fcall_ro_and_acl(shared_server: RedisServer, r: redis.Redis) -> None:
    load(r, TENSORS.replace('register_function("double_it", double_it)',
                            'register_function("double_it", double_it, flags=["no-writes"])'))
    r.execute_command("AI.TENSORSET", "tenantA:in", "FLOAT", 1, "VALUES", 1)
    with pytest.raises(redis.ResponseError, match="[Ww]rite"):
        r.execute_command("AI.FCALL_RO", "double_it", 2, "tenantA:in", "tenantA:out")
    assert r.exists("tenantA:out") == 0
    # A read goes by the caller's key patterns too, whatever key the function names.
    r.execute_command("AI.TENSORSET", "tenantB:in", "FLOAT", 1, "VALUES", 2)
    r.execute_command("ACL", "SETUSER", "readerA", "on", ">pw", "resetkeys", "~tenantA:*", "-@all", "+ai.fcall")
    reader = shared_server.client(username="readerA", password="pw")
    assert reader.execute_command("AI.FCALL", "read_arg", 0, "tenantA:in") == [1.0]
    with pytest.raises(redis.exceptions.NoPermissionError, match="tensor's key"):
        reader.execute_command("AI.FCALL", "read_arg", 0, "tenantB:in")


def test_a_string_tensor_is_not_read_into_a_function(r: redis.Redis) -> None:
    """Gears' API has no STRING tensors: the read says so rather than give its bytes."""
    load(r, TENSORS)
    r.execute_command("AI.TENSORSET", "s", "STRING", 1, "VALUES", "text")
    with pytest.raises(redis.ResponseError, match="^unsupported tensor type STRING$"):
        r.execute_command("AI.FCALL", "read_arg", 0, "s")


# ---------------------------------------------------------------------- kill

SPIN = '''#!python name=spin
from redisai_py.functions import register_function

def spin(keys, args):
    while True:
        pass

def stubborn(keys, args):
    while True:
        try:
            while True:
                pass
        except Exception:
            pass

register_function("spin", spin, flags=["no-writes"])
register_function("stubborn", stubborn, flags=["no-writes"])
'''


def call_in_background(server: RedisServer, *command: object) -> tuple[threading.Thread, list[str]]:
    outcome: list[str] = []

    def call() -> None:
        try:
            outcome.append(repr(server.client().execute_command(*command)))
        except redis.ResponseError as exc:
            outcome.append(str(exc))

    thread = threading.Thread(target=call)
    thread.start()
    return thread, outcome


@pytest.mark.parametrize("function", ["spin", "stubborn"])
def test_function_kill_stops_a_call_past_function_timeout(server_factory: ServerFactory, function: str) -> None:
    server = server_factory(module_args=["FUNCTION_TIMEOUT", "1000"])
    r = server.client()
    load(r, SPIN)
    load(r, BASICS)
    with pytest.raises(redis.ResponseError, match="^NOTBUSY No scripts in execution right now.$"):
        r.execute_command("AI.FUNCTION", "KILL")
    started = time.monotonic()
    thread, outcome = call_in_background(server, "AI.FCALL", function, 0)
    time.sleep(0.3)
    with pytest.raises(redis.ResponseError, match="^no function has run for FUNCTION_TIMEOUT \\(1000 ms\\) yet$"):
        r.execute_command("AI.FUNCTION", "KILL")
    assert r.ping() is True  # the main thread serves while the function spins
    time.sleep(max(0.0, 1.05 - (time.monotonic() - started)))
    assert r.execute_command("AI.FUNCTION", "KILL") == b"OK"
    thread.join(10)
    assert outcome == ["the function was killed by AI.FUNCTION KILL"]
    assert r.execute_command("AI.FCALL", "bump", 1, "n") == 1  # the freed thread serves the next call
    assert r.execute_command("AI.FCALL", "bump", 1, "n") == 2


@pytest.mark.parametrize("value", ["-1", "x", str(2 ** 64)])
def test_a_bad_function_timeout_argument_fails_the_load(server_factory: ServerFactory, value: str) -> None:
    server = server_factory(module_args=["FUNCTION_TIMEOUT", value], start=False)
    with pytest.raises(RuntimeError, match="exited"):
        server.start()
    assert f"ERR error processing argument: FUNCTION_TIMEOUT {value}" in server.log()


def test_a_library_that_no_longer_imports_at_load_keeps_its_source(tmp_path, r: redis.Redis,
                                                                    shared_server: RedisServer) -> None:
    """A package gone from the venv (here: a flag file the library refuses) must not lose the
    library at the next save: it comes back without functions, and whole once it imports."""
    flag = tmp_path / "broken"
    code = f'''#!python name=fragile
import os
from redisai_py.functions import register_function
if os.path.exists({str(flag)!r}):
    raise ImportError("the package is gone")
register_function("fragile", lambda keys, args: "fine")
'''
    load(r, code)
    flag.touch()
    assert r.execute_command("DEBUG", "RELOAD") == b"OK"
    assert libraries(r) == {b"fragile": {}}
    with pytest.raises(redis.ResponseError, match="^Function not found$"):
        r.execute_command("AI.FCALL", "fragile", 0)
    wait_until(lambda: "function library fragile from the RDB did not load" in shared_server.log(),
               what="the warning")
    flag.unlink()
    assert r.execute_command("DEBUG", "RELOAD") == b"OK"
    assert r.execute_command("AI.FCALL", "fragile", 0) == b"fine"
    assert r.execute_command("AI.FUNCTION", "LIST", "WITHCODE")[0][b"library_code"] == code.encode()


def test_writes_from_functions_wait_out_a_reload(server_factory: ServerFactory) -> None:
    """DEBUG RELOAD imports the libraries while the main thread waits; a function writing
    meanwhile is told LOADING (a write into the half-loaded keyspace would meet the RDB's
    copy of its key), and every write it was told succeeded is there afterwards."""
    server = server_factory()
    r = server.client(protocol=3)
    load(r, "#!python name=slowimport\nimport time\nfrom redisai_py.functions import register_function\n"
            "time.sleep(0.5)\nregister_function('noop', lambda keys, args: None)\n")
    load(r, '''#!python name=hammer
import time
from redisai_py.functions import CommandError, execute, register_function

def hammer(keys, args):
    end = time.monotonic() + float(args[0])
    done = refused = 0
    while time.monotonic() < end:
        try:
            execute("INCR", keys[0])
            done += 1
        except CommandError as exc:
            if not str(exc).startswith("LOADING"):
                raise
            refused += 1
    return [done, refused]

register_function("hammer", hammer)
''')
    thread, outcome = call_in_background(server, "AI.FCALL", "hammer", 1, "n", "2.5")
    time.sleep(0.5)
    assert r.execute_command("DEBUG", "RELOAD") == b"OK"
    thread.join(30)
    done, refused = eval(outcome[0])  # repr of [done, refused]
    assert refused > 0
    assert int(r.get("n")) == done
    assert MAIN_THREAD_GIL not in server.log()
