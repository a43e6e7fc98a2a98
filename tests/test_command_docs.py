"""Every AI.* command documents itself through COMMAND DOCS.

User stories: a developer types `help AI.MODELEXECUTE` in redis-cli (or
just starts typing the command, and reads the hint) and sees RedisAI's
syntax; a client-library generator walks COMMAND DOCS over RESP2 or RESP3
and finds each command's summary, complexity, the RedisAI release it came
with, and an argument tree whose tokens are the ones the command accepts; a
user of a deprecated command learns what replaces it. Documenting commands
must not change how they answer: the handlers still reply RedisAI's own
wrong-arity texts.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import redis

from conftest import RedisServer

REDIS_CLI = "/usr/bin/redis-cli"

# The syntax each command documents, as redis-cli prints it from the argument
# tree (`[...]` optional, `a|b` one of, `x [x ...]` one or more).
SYNTAX = {
    "ai.tensorset": "key FLOAT|DOUBLE|INT8|INT16|INT32|INT64|UINT8|UINT16|BOOL|STRING "
                    "[shape [shape ...]] [BLOB data|VALUES value [value ...]]",
    "ai.tensorget": "key [META] [BLOB|VALUES]",
    "ai.modelstore": "key TF|TFLITE|TORCH|ONNX device [TAG tag] "
                     "[BATCHSIZE batchsize [MINBATCHSIZE minbatchsize [MINBATCHTIMEOUT minbatchtimeout]]] "
                     "[CACHE [TTL ttl]] [WARMUP warmup] "
                     "[INPUTS input_count input [input ...] OUTPUTS output_count output [output ...]] "
                     "BLOB blob [blob ...]",
    "ai.modelset": "key TF|TFLITE|TORCH|ONNX device [TAG tag] "
                   "[BATCHSIZE batchsize [MINBATCHSIZE minbatchsize [MINBATCHTIMEOUT minbatchtimeout]]] "
                   "[INPUTS input [input ...] OUTPUTS output [output ...]] BLOB blob [blob ...]",
    "ai.modelget": "key [META] [BLOB]",
    "ai.modeldel": "key",
    "ai.modelexecute": "key INPUTS input_count input [input ...] "
                       "OUTPUTS output_count output [output ...] [TIMEOUT timeout]",
    "ai.modelrun": "key [TIMEOUT timeout] INPUTS input [input ...] OUTPUTS output [output ...]",
    "ai._modelscan": "",
    "ai.scriptstore": "key device [TAG tag] ENTRY_POINTS entry_point_count entry_point [entry_point ...] "
                      "SOURCE script",
    "ai.scriptset": "key device [TAG tag] SOURCE script",
    "ai.scriptget": "key [META] [SOURCE]",
    "ai.scriptdel": "key",
    "ai.scriptexecute": "key function [KEYS key_count key_name [key_name ...]] "
                        "[INPUTS input_count input [input ...]] [ARGS arg_count arg [arg ...]] "
                        "[OUTPUTS output_count output [output ...]] [TIMEOUT timeout]",
    "ai.scriptrun": "key function [TIMEOUT timeout] INPUTS input [input ...] [$ input [input ...]] "
                    "[OUTPUTS output [output ...]]",
    "ai._scriptscan": "",
    "ai.dagexecute": "[LOAD key_count key [key ...]] [PERSIST key_count key [key ...]] "
                     "[ROUTING routing_tag] [TIMEOUT timeout] "
                     "|> AI.TENSORSET|AI.TENSORGET|AI.MODELEXECUTE|AI.SCRIPTEXECUTE argument [argument ...] "
                     "[|> AI.TENSORSET|AI.TENSORGET|AI.MODELEXECUTE|AI.SCRIPTEXECUTE argument [argument ...] ...]",
    "ai.dagexecute_ro": "[LOAD key_count key [key ...]] [ROUTING routing_tag] [TIMEOUT timeout] "
                        "|> AI.TENSORSET|AI.TENSORGET|AI.MODELEXECUTE argument [argument ...] "
                        "[|> AI.TENSORSET|AI.TENSORGET|AI.MODELEXECUTE argument [argument ...] ...]",
    "ai.dagrun": "[LOAD key_count key [key ...]] [PERSIST key_count key [key ...]] [TIMEOUT timeout] "
                 "|> AI.TENSORSET|AI.TENSORGET|AI.MODELRUN|AI.SCRIPTRUN argument [argument ...] "
                 "[|> AI.TENSORSET|AI.TENSORGET|AI.MODELRUN|AI.SCRIPTRUN argument [argument ...] ...]",
    "ai.dagrun_ro": "[LOAD key_count key [key ...]] [TIMEOUT timeout] "
                    "|> AI.TENSORSET|AI.TENSORGET|AI.MODELRUN argument [argument ...] "
                    "[|> AI.TENSORSET|AI.TENSORGET|AI.MODELRUN argument [argument ...] ...]",
    "ai.info": "key [RESETSTAT|SESSION]",
    "ai.config": "BACKENDSPATH path|LOADBACKEND TF|TFLITE|TORCH|ONNX path|MODEL_CHUNK_SIZE chunk_size"
                 "|CACHE_MEMORY cache_memory|CACHE_FLUSH"
                 "|MODEL_SESSIONS_MEMORY sessions_memory|MODEL_SESSIONS_MAX sessions_max"
                 "|WORKER_SPIN_US worker_spin_us"
                 "|GET BACKENDSPATH|MODEL_CHUNK_SIZE|CACHE_MEMORY|MODEL_SESSIONS_MEMORY|MODEL_SESSIONS_MAX"
                 "|WORKER_SPIN_US",
    "ai.metrics": "",
    "ai.function": "LOAD [REPLACE] function-code|DELETE library-name"
                   "|LIST [LIBRARYNAME library-name-pattern] [WITHCODE]|FLUSH [ASYNC|SYNC]|KILL",
    "ai.fcall": "function numkeys [key [key ...]] [arg [arg ...]]",
    "ai.fcall_ro": "function numkeys [key [key ...]] [arg [arg ...]]",
    "ai._readthrough": "key",
}

# The first RedisAI release whose command table had each command.
SINCE = {
    "ai.tensorset": "0.1.0", "ai.tensorget": "0.1.0", "ai.modelset": "0.1.0", "ai.modelget": "0.1.0",
    "ai.modelrun": "0.1.0", "ai.scriptset": "0.1.0", "ai.scriptget": "0.1.0", "ai.scriptrun": "0.1.0",
    "ai.modeldel": "0.4.0", "ai.scriptdel": "0.4.0", "ai.config": "0.4.0", "ai.info": "0.9.0",
    "ai._modelscan": "0.99.0", "ai._scriptscan": "0.99.0", "ai.dagrun": "0.99.0", "ai.dagrun_ro": "0.99.0",
    "ai.modelstore": "1.2.3", "ai.modelexecute": "1.2.3", "ai.scriptexecute": "1.2.3",
    "ai.dagexecute": "1.2.3", "ai.dagexecute_ro": "1.2.3", "ai.scriptstore": "1.2.4",
    # redisai_py's own command (RedisAI never had it): the project release that added it.
    "ai.metrics": "0.1.0",
    "ai.function": "0.1.0", "ai.fcall": "0.1.0", "ai.fcall_ro": "0.1.0", "ai._readthrough": "0.1.0",
}

# Deprecated command: (RedisAI release that deprecated it, its replacement).
DEPRECATED = {
    "ai.modelset": ("1.2.3", "AI.MODELSTORE"),
    "ai.modelrun": ("1.2.3", "AI.MODELEXECUTE"),
    "ai.scriptset": ("1.2.4", "AI.SCRIPTSTORE"),
    "ai.scriptrun": ("1.2.3", "AI.SCRIPTEXECUTE"),
    "ai.dagrun": ("1.2.3", "AI.DAGEXECUTE"),
    "ai.dagrun_ro": ("1.2.3", "AI.DAGEXECUTE_RO"),
}

# The commands whose key (argv[1]) Redis finds through a key spec; the
# others have no key or find their keys themselves (getkeys-api).
SPEC_KEYED = {"ai.tensorset", "ai.tensorget", "ai.modelstore", "ai.modelset", "ai.modelget",
              "ai.modeldel", "ai.scriptstore", "ai.scriptset", "ai.scriptget", "ai.scriptdel",
              "ai.info", "ai._readthrough"}
# AI.FCALL's keys follow its key count (argv[2]), as Redis FCALL's do.
COUNTED_KEYS = {"ai.fcall", "ai.fcall_ro"}


@dataclass
class Arg:
    """One node of a COMMAND DOCS argument tree."""

    name: str
    type: str
    token: str | None = None
    flags: set[str] = field(default_factory=set)
    key_spec_index: int | None = None
    summary: str | None = None
    args: list[Arg] = field(default_factory=list)


def text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def as_dict(reply: object) -> dict[str, object]:
    """A COMMAND DOCS map (a dict over RESP3, a flat list over RESP2)."""
    pairs = reply.items() if isinstance(reply, dict) else zip(reply[::2], reply[1::2])
    return {text(k): v for k, v in pairs}


def parse_arg(reply: object) -> Arg:
    m = as_dict(reply)
    return Arg(
        name=text(m["name"]), type=text(m["type"]),
        token=text(m["token"]) if "token" in m else None,
        flags={text(f) for f in m.get("flags", [])},
        key_spec_index=m.get("key_spec_index"),
        summary=text(m["summary"]) if "summary" in m else None,
        args=[parse_arg(a) for a in m.get("arguments", [])],
    )


@dataclass
class Doc:
    summary: str
    since: str
    group: str
    complexity: str
    module: str
    history: list[tuple[str, str]]
    args: list[Arg]


def command_docs(client: redis.Redis, *names: str) -> dict[str, Doc]:
    reply = as_dict(client.execute_command("COMMAND", "DOCS", *names))
    docs = {}
    for name, raw in reply.items():
        m = as_dict(raw)
        docs[name] = Doc(
            summary=text(m["summary"]), since=text(m["since"]), group=text(m["group"]),
            complexity=text(m["complexity"]), module=text(m["module"]),
            history=[(text(s), text(c)) for s, c in m.get("history", [])],
            args=[parse_arg(a) for a in m.get("arguments", [])],
        )
    return docs


def render(arg: Arg) -> str:
    """An argument as redis-cli writes it in `help` and in its hints."""
    if arg.type == "oneof":
        body = "|".join(render(a) for a in arg.args)
    elif arg.type == "block":
        body = " ".join(render(a) for a in arg.args)
    elif arg.type == "pure-token":
        body = ""
    else:
        body = arg.name
    token = arg.token or ""
    if token and arg.type != "pure-token":
        token += " "
    out = token + body
    if "multiple" in arg.flags:
        out += " [" + (token if "multiple_token" in arg.flags else "") + body + " ...]"
    return f"[{out}]" if "optional" in arg.flags else out


def walk(args: list[Arg]) -> Iterator[Arg]:
    for arg in args:
        yield arg
        yield from walk(arg.args)


def client(server: RedisServer, protocol: int) -> redis.Redis:
    """A client that returns replies as Redis sends them (no redis-py parsing)."""
    c = server.client(protocol=protocol)
    c.response_callbacks.clear()
    return c


@pytest.fixture
def server(shared_server: RedisServer, request: pytest.FixtureRequest) -> RedisServer:
    """Docs are read-only: one server serves the whole file."""
    request.node.redis_servers = [shared_server]  # conftest attaches its log on failure
    shared_server.client().flushall()
    return shared_server


def module_commands(c: redis.Redis) -> set[str]:
    return {text(n) for n in c.execute_command("COMMAND", "LIST", "FILTERBY", "MODULE", "ai")}


# --------------------------------------------------------------------------
# Reading COMMAND DOCS


@pytest.mark.parametrize("protocol", [2, 3])
def test_every_ai_command_documents_itself(server, protocol):
    c = client(server, protocol)
    names = module_commands(c)
    assert names == set(SYNTAX)  # a new command needs docs (and a row here)

    docs = command_docs(c, *sorted(names))
    assert set(docs) == names
    for name, doc in docs.items():
        assert (doc.group, doc.module, doc.since) == ("module", "ai", SINCE[name]), name
        assert len(doc.summary) > 10 and len(doc.complexity) >= 4, name
        assert " ".join(render(a) for a in doc.args) == SYNTAX[name], name
    assert docs["ai.modeldel"].complexity == "O(1)"
    assert docs["ai.tensorget"].complexity == "O(N) where N is the number of elements in the tensor"
    assert docs["ai.modelexecute"].summary == "Runs a model on input tensors and stores its outputs as tensors"


def test_resp2_and_resp3_say_the_same(server):
    names = sorted(SYNTAX)
    assert command_docs(client(server, 2), *names) == command_docs(client(server, 3), *names)


def test_modelexecute_arguments_are_typed(server):
    """Types and flags, which the syntax line does not show."""
    doc = command_docs(client(server, 3), "AI.MODELEXECUTE")["ai.modelexecute"]

    def counted(count: str, item: str) -> list[Arg]:
        return [Arg(count, "integer"), Arg(item, "string", flags={"multiple"})]

    assert doc.args == [
        Arg("key", "string"),
        Arg("inputs", "block", token="INPUTS", args=counted("input_count", "input")),
        Arg("outputs", "block", token="OUTPUTS", args=counted("output_count", "output")),
        Arg("timeout", "integer", token="TIMEOUT", flags={"optional"}),
    ]


def test_key_arguments_point_at_the_key_specs(server):
    """A command with a key spec for its key documents that argument as a key
    of spec 0. The getkeys-api commands find their keys themselves (their one
    key spec is Redis's placeholder from first/last/step, covering a single
    argument), so none of their arguments claims a key spec."""
    c = client(server, 3)
    docs = command_docs(c, *SYNTAX)
    infos = {text(row[0]): row for row in c.execute_command("COMMAND", "INFO", *SYNTAX)}
    for name, doc in docs.items():
        keys = [a for a in walk(doc.args) if a.type == "key"]
        if name in SPEC_KEYED:
            (spec,) = infos[name][8]
            assert spec[b"begin_search"] == {b"type": b"index", b"spec": {b"index": 1}}, name
            assert [(k.name, k.key_spec_index) for k in keys] == [("key", 0)], name
            assert doc.args[0] is keys[0], name
        elif name in COUNTED_KEYS:
            (spec,) = infos[name][8]
            assert spec[b"begin_search"] == {b"type": b"index", b"spec": {b"index": 2}}, name
            assert spec[b"find_keys"] == {b"type": b"keynum", b"spec": {b"keynumidx": 0, b"firstkey": 1,
                                                                          b"keystep": 1}}, name
            assert [(k.name, k.key_spec_index) for k in keys] == [("key", 0)], name
        else:
            assert keys == [], name
    execute = docs["ai.scriptexecute"].args
    assert [(a.name, a.type) for a in execute[:2]] == [("key", "string"), ("function", "string")]


def test_deprecated_commands_name_their_replacement(server):
    docs = command_docs(client(server, 3), *SYNTAX)
    for name, doc in docs.items():
        if name in DEPRECATED:
            version, replacement = DEPRECATED[name]
            assert doc.history == [(version, f"Deprecated: use `{replacement}` instead.")], name
            assert doc.summary.endswith(f"(deprecated since RedisAI {version}: use {replacement})"), name
        else:
            assert doc.history == [] and "deprecated" not in doc.summary, name


def test_scan_commands_say_they_are_experimental_and_take_no_arguments(server):
    c = client(server, 3)
    docs = command_docs(c, "AI._MODELSCAN", "AI._SCRIPTSCAN")
    assert docs["ai._modelscan"].summary == "Lists the key and tag of every model (experimental)"
    assert docs["ai._scriptscan"].summary == "Lists the key and tag of every script (experimental)"
    assert docs["ai._modelscan"].args == docs["ai._scriptscan"].args == []
    for row in c.execute_command("COMMAND", "INFO", "AI._MODELSCAN", "AI._SCRIPTSCAN"):
        assert [text(tip) for tip in row[7]] == ["nondeterministic_output_order"]


# --------------------------------------------------------------------------
# The documented tokens are the ones the commands accept


def oneof_tokens(doc: Doc, name: str) -> list[str]:
    (arg,) = [a for a in walk(doc.args) if a.name == name and a.type == "oneof"]
    return [a.token for a in arg.args]


def test_every_documented_tensor_type_and_format_is_accepted(server):
    c = server.client()
    docs = command_docs(client(server, 3), "AI.TENSORSET", "AI.TENSORGET")
    types = oneof_tokens(docs["ai.tensorset"], "type")
    assert types == ["FLOAT", "DOUBLE", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "BOOL",
                     "STRING"]
    for dtype in types:
        assert c.execute_command("AI.TENSORSET", f"t:{dtype}", dtype, 1, "VALUES", 1) == b"OK"
        for fmt in oneof_tokens(docs["ai.tensorget"], "format"):
            reply = c.execute_command("AI.TENSORGET", f"t:{dtype}", "META", fmt)
            assert reply[:4] == [b"dtype", dtype.encode(), b"shape", [1]]
    with pytest.raises(redis.ResponseError, match="^invalid data type$"):
        c.execute_command("AI.TENSORSET", "t:other", "UINT32", 1, "VALUES", 1)
    assert sorted(c.keys()) == sorted(f"t:{t}".encode() for t in types)


def test_every_documented_config_name_can_be_read(server):
    c = server.client()
    doc = command_docs(client(server, 3), "AI.CONFIG")["ai.config"]
    names = oneof_tokens(doc, "name")
    assert names == ["BACKENDSPATH", "MODEL_CHUNK_SIZE", "CACHE_MEMORY", "MODEL_SESSIONS_MEMORY",
                     "MODEL_SESSIONS_MAX", "WORKER_SPIN_US"]
    assert [c.execute_command("AI.CONFIG", "GET", n) is not None for n in names] == [True] * 6


# --------------------------------------------------------------------------
# Documented, and still answering as before


def test_handlers_still_answer_wrong_arity_in_redisai_words(server):
    """No arity is declared: Redis's own check would answer first, in lower case.
    Except FCALL's (-3) for AI.FCALL and AI.FCALL_RO, whose key spec needs it
    (tests/test_fuzz_regressions.py)."""
    c = server.client()
    rows = client(server, 3).execute_command("COMMAND", "INFO", *SYNTAX)
    assert {text(row[0]): row[1] for row in rows} == {name: -3 if name in ("ai.fcall", "ai.fcall_ro") else -1
                                                      for name in SYNTAX}
    with pytest.raises(redis.ResponseError,
                       match=r"^wrong number of arguments for 'AI.MODELEXECUTE' command$"):
        c.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 1, "a")
    with pytest.raises(redis.ResponseError, match=r"^wrong number of arguments for 'ai.CONFIG' command$"):
        c.execute_command("ai.CONFIG")
    assert c.ping() is True


def test_the_module_loads_without_complaint_about_its_docs(server):
    assert "Invalid command info" not in server.log()
    assert "Module 'ai' loaded" in server.log()


# --------------------------------------------------------------------------
# redis-cli


HELP_LINE = re.compile(r"^\s*\x1b\[1m(\S+)\x1b\[0m \x1b\[90m(.*)\x1b\[0m\s*$")
SUMMARY_LINE = re.compile(r"^\s*\x1b\[33msummary:\x1b\[0m (.*?)\s*$")


@pytest.mark.parametrize("protocol", ["-2", "-3"])
def test_redis_cli_help_shows_each_commands_syntax(server, protocol):
    """redis-cli reads COMMAND DOCS (all commands at once) to build its help
    and hints; it asserts on the reply's shape, so a malformed tree kills it."""
    out = subprocess.run([REDIS_CLI, protocol, "-p", str(server.port), "help", "@module"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    syntax: dict[str, str] = {}
    summaries: dict[str, str] = {}
    name = None
    for line in out.stdout.splitlines():
        if m := HELP_LINE.match(line):
            name = m.group(1).lower()
            syntax[name] = m.group(2)
        elif (m := SUMMARY_LINE.match(line)) and name:
            summaries[name] = m.group(1)
    assert syntax == SYNTAX
    docs = command_docs(client(server, 3), *SYNTAX)
    assert summaries == {n: d.summary for n, d in docs.items()}
