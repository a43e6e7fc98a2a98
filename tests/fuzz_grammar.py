"""The AI.* command grammar the fuzzer draws from, and the mutations it
applies on top.

A command is drawn in two steps. Hypothesis draws its `Recipe`: which part
of the grammar (`FAMILIES`), which mutations (`MUTATIONS`, none for about
half of the commands) and a 64-bit seed. A `random.Random` seeded with that
seed and the command's position in the stream then fills in the arguments
through the functions below (`build`). Why the
split: a Hypothesis draw costs ~70 us here and a command has 20-50
decisions, which made ~500 commands/s, too slow for 20,000 commands in a
test and 1,000,000 in a benchmark. With about 8 draws per command (~2,800
commands/s) Hypothesis still chooses the mix, and the same Hypothesis seed
still gives the same stream.

The grammar (reference section 3): tensors of every dtype (BLOB, VALUES,
META), models of every backend (some with CACHE [TTL]) with valid, truncated, bit-flipped and
spliced blobs (some with CACHE [TTL] or WARMUP n), scripts with valid and
broken sources, DAGs with random op chains over LOAD/PERSIST/ROUTING/TIMEOUT,
in-server function libraries (AI.FUNCTION LOAD/DELETE/LIST/FLUSH/KILL) with
small valid and broken Python sources and calls to them (AI.FCALL,
AI.FCALL_RO, numkeys at the limits, missing and extra arguments),
AI.INFO [SESSION], AI.CONFIG (the session budget too), the scans,
the generic commands that meet our types (COPY, DUMP, RESTORE with mutated
and re-signed payloads, MEMORY USAGE, TYPE, DEL, OBJECT) and keys of
Redis's own types where ours are expected. Mutations: numbers become
limits or non-numbers, arguments are dropped, repeated, swapped, emptied,
replaced by keywords or binary garbage, blobs truncated, extras appended.

Every key name comes from the FUZZ_* pools, so a fuzzed command never names
a guard key (the harness checks that too). Generation never looks at a
reply: a seed gives the same commands whatever the server answers.

Function libraries never sleep, loop, fork, import anything but the
functions API and numpy, or touch files; their execute() calls name only
the keys AI.FCALL gives them (fuzz pools), never a guard key.

Kept out on purpose, because they would stop the run without being bugs:
FLUSHALL/SHUTDOWN/DEBUG and friends, MULTI (a connection left inside a
transaction only queues), and models with MINBATCHSIZE on keys that get
executed (such a model waits for company for as long as it takes,
reference section 4; see `park_waiting_models`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from hypothesis import strategies as st

import fuzz_dump

T = TypeVar("T")

# ---------------------------------------------------------------- vocabulary

DTYPES = ("FLOAT", "DOUBLE", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "BOOL", "STRING")
ITEM_SIZES = {"FLOAT": 4, "DOUBLE": 8, "INT8": 1, "INT16": 2, "INT32": 4, "INT64": 8, "UINT8": 1,
              "UINT16": 2, "BOOL": 1}
BAD_DTYPES = ("UINT32", "UINT64", "FLOAT16", "INT128", "float", "Int8", "INT", "")
BACKENDS = ("TORCH", "ONNX", "TF", "TFLITE")
# Few valid devices: every new device string starts a run queue and a worker thread.
DEVICES = ("CPU", "CPU", "CPU", "CPU", "CPU", "CPU", "cpu", "CPU:0", "CPU:1", "CPU:1", "GPU", "gpu:1")
BAD_DEVICES = ("", "CPU:", "CPU::", "CPU:1.8", "CPU:123456", "bad_device", "TPU", "CPU:-1",
               "GPU:99999999999")

# Numbers at and past the limits of every integer type the parsers use.
LIMIT_NUMBERS = (b"0", b"-1", b"2147483647", b"2147483648", b"4294967295", b"4294967296",
                 b"9223372036854775807", b"9223372036854775808", b"18446744073709551615",
                 b"18446744073709551616", b"-2147483648", b"-9223372036854775808",
                 b"-9223372036854775809")
NON_NUMBERS = (b"", b"abc", b"1.5", b"1e3", b"0x10", b" 1", b"1 ", b"+1", b"-0", b"nan", b"inf",
               b"-inf", b"1\x00", b"\xd9\xa1", b"99999999999999999999999999999")
KEYWORDS = (b"INPUTS", b"OUTPUTS", b"BLOB", b"VALUES", b"META", b"TAG", b"BATCHSIZE",
            b"MINBATCHSIZE", b"MINBATCHTIMEOUT", b"TIMEOUT", b"KEYS", b"ARGS", b"LOAD", b"PERSIST",
            b"ROUTING", b"|>", b"ENTRY_POINTS", b"SOURCE", b"$", b"RESETSTAT", b"CPU", b"GPU",
            b"TORCH", b"ONNX", b"TF", b"TFLITE", b"FLOAT", b"STRING", b"REPLACE", b"AI.TENSORSET",
            b"AI.MODELEXECUTE", b"AI.SCRIPTEXECUTE")

# Key pools. Guard keys live under "guard:", which no pool and no word above uses.
FUZZ_TENSORS = tuple(f"fz:t{i}".encode() for i in range(6))
FUZZ_MODELS = tuple(f"fz:m{i}".encode() for i in range(5))
FUZZ_SCRIPTS = tuple(f"fz:s{i}".encode() for i in range(3))
FUZZ_WRONG_TYPES = (b"fz:str", b"fz:list", b"fz:hash")
FUZZ_MISSING = (b"fz:never",)
FUZZ_COPIES = (b"fz:c0", b"fz:c1")  # where COPY and RESTORE mostly write
FUZZ_KEYS = FUZZ_TENSORS + FUZZ_MODELS + FUZZ_SCRIPTS + FUZZ_WRONG_TYPES + FUZZ_MISSING + FUZZ_COPIES
# Where a model that may wait for MINBATCHSIZE goes. Not in FUZZ_KEYS: no
# execute, COPY or RESTORE ever names these keys.
FUZZ_PARKED = (b"fz:parked0", b"fz:parked1")
DAG_NAMES = (b"d0", b"d1", b"d2", b"d3")

# Script sources. The entry points take (tensors, keys, args); none loops on
# a number it is given, so no fuzzed ARGS value can keep a worker busy.
SCRIPT_SOURCE = b'''
def add(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] + tensors[1]

def pair(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] * float(args[0]), tensors[0] + int(args[1])

def as_list(tensors: List[Tensor], keys: List[str], args: List[str]):
    return [tensors[0], tensors[0] * 2]

def concat(tensors: List[Tensor], keys: List[str], args: List[str]):
    return torch.cat(tensors, dim=0)

def mark(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("SET", keys[0], args[0])

def count(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("RPUSH", keys[0], args[0])
    return torch.tensor(len(redis.asList(redis.execute("LRANGE", keys[0], "0", "-1"))))

def run_model(tensors: List[Tensor], keys: List[str], args: List[str]):
    return redisAI.model_execute(keys[0], tensors, 2)

def legacy(a, b):
    return a - b
'''
SCRIPT_ENTRY_POINTS = (b"add", b"pair", b"as_list", b"concat", b"mark", b"count", b"run_model")
SCRIPT_FUNCTIONS = SCRIPT_ENTRY_POINTS + (b"legacy", b"missing", b"")
BROKEN_SOURCES = (
    b"def add(tensors: List[Tensor], keys: List[str], args: List[str]):\n    return tensors[0] +\n",
    b"def bad(a: int) -> int:\n    return a\n",
    b"def wrong(tensors: List[Tensor]):\n    return tensors[0]\n",
    b"import os\nos.system('true')\n",
    b"",
    b"\x00\xff\xfe",
    b"def f(tensors: List[Tensor], keys: List[str], args: List[str]):\n    return undefined_name\n",
)


# In-server function libraries. Each library's functions are named after it
# (<library>_<function>), so loads clash only where a source means to.
FUNCTION_LIBRARIES = (b"fzlib0", b"fzlib1", b"fzlib2")
LIBRARY_FUNCTIONS = (b"echo", b"get", b"put", b"careful", b"tensor", b"made", b"values", b"fail", b"later")
# What each function's keys should mostly be: those it writes hold Redis's own types.
WRITING_FUNCTIONS = (b"put", b"careful")
READ_ONLY_FUNCTIONS = (b"echo", b"get", b"tensor", b"made", b"values", b"fail", b"later")
LIBRARY_TEMPLATE = b'''#!python name=LIB
import numpy as np
import redisAI
from redisai_py.functions import CommandError, execute, hashtag, register_function

def echo(keys, args):
    return [len(keys), *args]

def get(keys, args):
    return execute("GET", keys[0])

def put(keys, args):
    return execute("SET", keys[0], args[0] if args else "v")

def careful(keys, args):
    try:
        return execute("INCR", keys[0])
    except CommandError as exc:
        return str(exc)

def tensor(keys, args):
    return redisAI.getTensorFromKey(keys[0])

def made(keys, args):
    t = redisAI.createTensorFromValues("FLOAT", [2], [1.0, float(len(args))])
    return {"dims": list(redisAI.tensorGetDims(t)), "values": redisAI.tensorToFlatList(t), "tag": hashtag()}

def values(keys, args):
    return [None, 1.5, True, 2 ** 70, b"\\x00\\xff", (1, [2, {"k": 3}]), np.arange(3), {1, 2}]

def fail(keys, args):
    raise ValueError("fuzz failure " + repr(args[:1]))

async def later(keys, args):
    return len(args)

register_function("LIB_echo", echo, flags=["no-writes"])
register_function("LIB_get", get, flags=["no-writes", "allow-stale"])
register_function("LIB_put", put)
register_function("LIB_careful", careful, flags=["allow-oom"])
register_function("LIB_tensor", tensor, flags=["no-writes"])
register_function("LIB_made", made, flags=("no-writes", "no-cluster"))
register_function("LIB_values", values, flags=["no-writes"])
register_function("LIB_fail", fail)
register_function("LIB_later", later, flags=["no-writes"])
'''
# Broken on purpose: metadata, compile and import errors, bad registrations,
# a clash with fzlib0's functions, execute() at import time. LIB is the name.
BROKEN_LIBRARIES = (
    b"",
    b"def f(keys, args):\n    return 1\n",
    b"#!lua name=LIB\nreturn 1\n",
    b"#!python\n",
    b"#!python name=\n",
    b"#!python name=fz-lib\n",
    b"#!python name=LIB extra=1\n",
    b"#!python name=LIB name=LIB\n",
    b"#!python  name=LIB\r\nfrom redisai_py.functions import register_function\r\n"
    b"register_function('LIB_crlf', lambda keys, args: 1)\r\n",
    b"#!python name=LIB\nx = 1\n",
    b"#!python name=LIB\ndef f(:\n",
    b"#!python name=LIB\nraise RuntimeError('no import')\n",
    b"#!python name=LIB\nfrom redisai_py.functions import execute\nexecute('PING')\n",
    b"#!python name=LIB\nfrom redisai_py.functions import register_function\nregister_function('bad name!', len)\n",
    b"#!python name=LIB\nfrom redisai_py.functions import register_function\nregister_function('LIB_x', 42)\n",
    b"#!python name=LIB\nfrom redisai_py.functions import register_function\n"
    b"register_function('LIB_x', len, flags=['nonsense'])\n",
    b"#!python name=LIB\nfrom redisai_py.functions import register_function\n"
    b"register_function('LIB_x', len)\nregister_function('LIB_x', len)\n",
    b"#!python name=LIB\nfrom redisai_py.functions import register_function\n"
    b"register_function('fzlib0_echo', lambda keys, args: 0)\n",
    b"#!python name=LIB\nimport sys\nsys.exit(3)\n",
    b"#!python name=LIB\n\xff\xfe\x00garbage\n",
)


@dataclass(frozen=True)
class ModelSpec:
    """A small valid model of one backend and the node names it declares."""

    backend: str
    blob: bytes
    inputs: tuple[bytes, ...]
    outputs: tuple[bytes, ...]


@dataclass(frozen=True)
class Material:
    """What the grammar needs that is built once per run: a valid model of
    each backend, and DUMP payloads of our types to mutate for RESTORE."""

    models: dict[str, ModelSpec]
    payloads: tuple[bytes, ...] = field(default=())


# ---------------------------------------------------------------- the random source


class Draw:
    """The argument-level choices, all from one seeded random.Random."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def pick(self, options: Sequence[T]) -> T:
        return options[self.rng.randrange(len(options))]

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def int(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def binary(self, low: int, high: int) -> bytes:
        return self.rng.randbytes(self.rng.randint(low, high))

    def some(self, make: Callable[[], T], low: int, high: int) -> list[T]:
        return [make() for _ in range(self.rng.randint(low, high))]

    def shuffled(self, items: Sequence[T]) -> list[T]:
        out = list(items)
        self.rng.shuffle(out)
        return out

    # -- vocabulary

    def number(self) -> bytes:
        return self.pick(LIMIT_NUMBERS) if self.chance(0.2) else _ascii(self.int(-2, 64))

    def timeout(self) -> bytes:
        roll = self.rng.random()
        if roll < 0.6:
            return _ascii(self.int(1, 5000))
        return self.pick(LIMIT_NUMBERS) if roll < 0.8 else self.pick(NON_NUMBERS)

    def garbage(self) -> bytes:
        return self.binary(0, 48)

    def tag(self) -> bytes:
        return self.garbage() if self.chance(0.3) else self.pick((b"", b"v1", b"tag with spaces"))

    def device(self) -> bytes:
        return (self.pick(BAD_DEVICES) if self.chance(0.1) else self.pick(DEVICES)).encode()

    def key_from(self, pool: Sequence[bytes]) -> bytes:
        """Mostly a key of the right pool, sometimes any fuzz key (wrong type, missing)."""
        return self.pick(FUZZ_KEYS) if self.chance(0.05) else self.pick(pool)

    def tensor_key(self) -> bytes:
        return self.key_from(FUZZ_TENSORS)

    def model_key(self) -> bytes:
        return self.key_from(FUZZ_MODELS)

    def script_key(self) -> bytes:
        return self.key_from(FUZZ_SCRIPTS)

    def any_key(self) -> bytes:
        return self.pick(FUZZ_KEYS)

    def target_key(self) -> bytes:
        """Where COPY and RESTORE write: mostly keys of their own, so the
        other pools keep their types long enough to be used."""
        return self.pick(FUZZ_KEYS) if self.chance(0.05) else self.pick(FUZZ_COPIES)

    def script_keys(self, fn: bytes) -> bytes:
        """A key for a script's KEYS: the model for run_model, else a key of
        Redis's own types, which mark and count SET and RPUSH (a pool key
        they turned into a string would stay one until deleted)."""
        if fn == b"run_model" and self.chance(0.9):
            return self.model_key()
        return self.pick(FUZZ_KEYS) if self.chance(0.03) else self.pick(FUZZ_WRONG_TYPES + FUZZ_MISSING)

    def dtype(self) -> str:
        return self.pick(BAD_DTYPES) if self.chance(0.1) else self.pick(DTYPES)


def _ascii(n: int) -> bytes:
    return str(n).encode()


# ---------------------------------------------------------------- blobs


def mutated_blob(d: Draw, blob: bytes) -> bytes:
    """A blob as sent: valid about half of the time, else truncated,
    bit-flipped, spliced with garbage, doubled, empty or all garbage."""
    kind = d.pick(("valid", "valid", "valid", "valid", "valid", "valid", "truncated", "flipped", "flipped",
                   "spliced", "empty", "garbage", "doubled"))
    if kind == "valid" or not blob:
        return blob
    if kind == "truncated":
        return blob[:d.int(0, len(blob) - 1)]
    if kind == "flipped":
        out = bytearray(blob)
        for _ in range(d.int(1, 8)):
            out[d.int(0, len(out) - 1)] ^= 1 << d.int(0, 7)
        return bytes(out)
    if kind == "spliced":
        at = d.int(0, len(blob))
        return blob[:at] + d.garbage() + blob[at + d.int(0, 16):]
    if kind == "empty":
        return b""
    if kind == "doubled":
        return blob + blob
    return d.binary(1, 256)


def chunks(d: Draw, blob: bytes) -> list[bytes]:
    """One chunk mostly; sometimes the blob cut in several (MODELSTORE joins them)."""
    if len(blob) < 2 or not d.chance(0.25):
        return [blob]
    cuts = sorted({d.int(1, len(blob) - 1) for _ in range(d.int(1, 4))})
    return [blob[a:b] for a, b in zip([0, *cuts], [*cuts, len(blob)])]


def tensor_data(d: Draw, dtype: str, shape: list[int]) -> list[bytes]:
    """[] (zero-filled), BLOB data or VALUES v..., mostly consistent with the shape."""
    n = 1
    for dim in shape:
        n *= dim
    kind = d.pick(("none", "blob", "blob", "values", "values", "values", "wrong_blob", "wrong_values"))
    if kind == "none":
        return []
    if kind == "wrong_blob":
        return [b"BLOB", d.binary(0, 64)]
    if kind == "wrong_values":
        return [b"VALUES", *d.some(lambda: d.pick(NON_NUMBERS) if d.chance(0.5) else d.number(), 0, 6)]
    if dtype not in DTYPES:
        return [b"VALUES", *[b"1"] * n]
    if kind == "blob":
        if dtype == "STRING":
            return [b"BLOB", b"".join(d.binary(0, 3).replace(b"\0", b"a") + b"\0" for _ in range(n))]
        if dtype == "BOOL":
            return [b"BLOB", bytes(d.int(0, 1) for _ in range(n))]
        return [b"BLOB", d.rng.randbytes(n * ITEM_SIZES[dtype])]
    return [b"VALUES", *(value(d, dtype) for _ in range(n))]


def value(d: Draw, dtype: str) -> bytes:
    """One VALUES element, mostly in range for the dtype."""
    if dtype in ("FLOAT", "DOUBLE"):
        return d.pick((b"0.5", b"-3", b"1e38", b"1e39", b"-1e308", b"1e309", b"nan", b"inf", b"-0")) \
            if d.chance(0.3) else repr(d.rng.uniform(-10, 10)).encode()
    if dtype == "STRING":
        return d.binary(0, 8)
    if dtype == "BOOL":
        return d.pick((b"0", b"1", b"1", b"0", b"2", b"-1"))
    return d.pick(LIMIT_NUMBERS) if d.chance(0.2) else _ascii(d.int(-2, 300))


# ---------------------------------------------------------------- tensors


def tensorset(d: Draw, key: bytes | None = None) -> list[bytes]:
    if d.chance(0.4):  # shaped for the models: FLOAT [2] (ONNX, TORCH), [1, 3] (TFLITE, TF)
        dtype, shape = "FLOAT", d.pick(([2], [1, 3]))
    else:
        dtype, shape = d.dtype(), d.some(lambda: d.int(1, 4), 0, 3)
    return [b"AI.TENSORSET", key or d.tensor_key(), dtype.encode(), *map(_ascii, shape),
            *tensor_data(d, dtype, shape)]


def tensorget(d: Draw, key: bytes | None = None) -> list[bytes]:
    formats = d.some(lambda: d.pick((b"META", b"BLOB", b"VALUES", b"meta", b"values", b"RAW")), 0, 3 if d.chance(0.1) else 2)
    return [b"AI.TENSORGET", key or d.tensor_key(), *formats]


# ---------------------------------------------------------------- models


def batching_options(d: Draw) -> list[bytes]:
    level = d.int(0, 6)
    if level <= 3:
        return []
    options = [b"BATCHSIZE", d.number()]
    if level >= 5:
        options += [b"MINBATCHSIZE", d.number()]
    if level >= 6:
        options += [b"MINBATCHTIMEOUT", _ascii(d.int(1, 50))]
    return options


def cache_option(d: Draw) -> list[bytes]:
    """[CACHE [TTL ms]]; sometimes TTL alone, without its value, or a limit or non-number."""
    kind = d.int(0, 5)
    if kind <= 2:
        return [b"CACHE"]
    if kind == 3:
        return [b"CACHE", b"TTL", _ascii(d.int(1, 5000))]
    if kind == 4:
        return [b"CACHE", b"TTL", *([d.pick(LIMIT_NUMBERS + NON_NUMBERS)] if d.chance(0.8) else [])]
    return [b"TTL", _ascii(d.int(1, 50))]


def warmup_option(d: Draw) -> list[bytes]:
    """WARMUP n: a few runs mostly (each load runs them), else the limits,
    one past the maximum, a non-number or no value."""
    roll = d.int(0, 9)
    if roll <= 5:
        return [b"WARMUP", _ascii(d.int(0, 3))]
    if roll == 6:
        return [b"WARMUP", d.pick((b"1000", b"1001"))]
    if roll == 7:
        return [b"WARMUP"]
    return [b"WARMUP", d.pick(LIMIT_NUMBERS + NON_NUMBERS)]


def modelstore(d: Draw, material: Material) -> list[bytes]:
    backend = d.pick(BACKENDS)
    spec = material.models[d.pick(BACKENDS) if d.chance(0.1) else backend]
    deprecated = d.chance(0.2)
    argv = [b"AI.MODELSET" if deprecated else b"AI.MODELSTORE", d.model_key(),
            (backend.lower() if d.chance(0.1) else backend).encode(), d.device()]
    if d.chance(0.4):
        argv += [b"TAG", d.tag()]
    argv += batching_options(d)
    if not deprecated and d.chance(0.3):
        argv += cache_option(d)
    if not deprecated and d.chance(0.15):
        argv += warmup_option(d)
    if backend == "TF" or d.chance(0.1):
        inputs = list(spec.inputs) if d.chance(0.8) else d.some(lambda: d.pick((b"a", b"b", b"mul", b"x", b"")), 0, 3)
        outputs = list(spec.outputs) if d.chance(0.8) else d.some(lambda: d.pick((b"mul", b"a", b"out", b"")), 0, 2)
        if deprecated:
            argv += [b"INPUTS", *inputs, b"OUTPUTS", *outputs]
        else:
            argv += [b"INPUTS", _ascii(len(inputs)), *inputs, b"OUTPUTS", _ascii(len(outputs)), *outputs]
    return [*argv, b"BLOB", *chunks(d, mutated_blob(d, spec.blob))]


def io_names(d: Draw, make: Callable[[], bytes]) -> list[bytes]:
    """Two names mostly (every fuzz model takes two inputs), else 1 to 3."""
    return [make(), make()] if d.chance(0.7) else d.some(make, 1, 3)


def modelexecute(d: Draw) -> list[bytes]:
    key = d.model_key()
    inputs = io_names(d, d.tensor_key)
    outputs = io_names(d, d.tensor_key)
    if d.chance(0.2):  # the deprecated form
        timeout = [b"TIMEOUT", d.timeout()] if d.chance(0.3) else []
        return [b"AI.MODELRUN", key, *timeout, b"INPUTS", *inputs, b"OUTPUTS", *outputs]
    argv = [b"AI.MODELEXECUTE", key, b"INPUTS", _ascii(len(inputs)), *inputs,
            b"OUTPUTS", _ascii(len(outputs)), *outputs]
    if d.chance(0.25):
        argv += [b"TIMEOUT", d.timeout()]
    return argv


def stored_model_key(d: Draw) -> bytes:
    """For commands that never run the model: parked keys too."""
    return d.pick(FUZZ_PARKED) if d.chance(0.1) else d.model_key()


def modelget(d: Draw) -> list[bytes]:
    return [b"AI.MODELGET", stored_model_key(d),
            *d.some(lambda: d.pick((b"META", b"BLOB", b"blob", b"SOURCE")), 0, 3)]


def modeldel(d: Draw) -> list[bytes]:
    # Half go to keys nothing executes, so the executed models stay stored most of the time.
    return [b"AI.MODELDEL", d.pick(FUZZ_PARKED + FUZZ_COPIES) if d.chance(0.5) else d.model_key()]


# ---------------------------------------------------------------- scripts


def script_source(d: Draw) -> bytes:
    roll = d.rng.random()
    if roll < 0.7:
        return SCRIPT_SOURCE
    if roll < 0.82:
        return SCRIPT_SOURCE[:d.int(0, len(SCRIPT_SOURCE))]
    return d.pick(BROKEN_SOURCES)


def scriptstore(d: Draw) -> list[bytes]:
    key, dev = d.script_key(), d.device()
    tag = [b"TAG", d.tag()] if d.chance(0.4) else []
    source = script_source(d)
    if d.chance(0.2):
        return [b"AI.SCRIPTSET", key, dev, *tag, b"SOURCE", source]
    entries = list(SCRIPT_ENTRY_POINTS) if d.chance(0.6) else d.some(lambda: d.pick(SCRIPT_FUNCTIONS), 0, 4)
    return [b"AI.SCRIPTSTORE", key, dev, *tag, b"ENTRY_POINTS", _ascii(len(entries)), *entries,
            b"SOURCE", source]


def script_scopes(d: Draw, fn: bytes, tensor_name: Callable[[], bytes], keys_first: bool,
                  output_name: Callable[[], bytes] | None = None) -> list[bytes]:
    """KEYS/INPUTS/ARGS/OUTPUTS blocks in a random order and subset."""
    order = d.shuffled((b"KEYS", b"INPUTS", b"ARGS", b"OUTPUTS"))
    if keys_first and d.chance(0.7):
        order = sorted(order, key=lambda scope: scope not in (b"KEYS", b"INPUTS"))
    blocks: list[bytes] = []
    for scope in order:
        if d.chance(0.25):
            continue
        if scope == b"KEYS":
            items = d.some(lambda: d.script_keys(fn), 1, 2)
        elif scope == b"INPUTS":
            items = io_names(d, tensor_name)
        elif scope == b"ARGS":
            items = d.some(lambda: d.pick((b"2", b"0.5", b"-1")) if d.chance(0.7) else d.number(), 0, 3)
        else:
            items = d.some(output_name or tensor_name, 0, 3)
        blocks += [scope, _ascii(len(items)), *items]
    return blocks


def scriptexecute(d: Draw) -> list[bytes]:
    key = d.script_key()
    fn = d.pick(SCRIPT_ENTRY_POINTS) if d.chance(0.85) else d.pick(SCRIPT_FUNCTIONS)
    if d.chance(0.2):  # AI.SCRIPTRUN key fn [TIMEOUT t] INPUTS ... [$ ...] OUTPUTS ...
        inputs = d.some(d.tensor_key, 0, 3)
        if d.chance(0.4):
            inputs.insert(d.int(0, len(inputs)), b"$")
        timeout = [b"TIMEOUT", d.timeout()] if d.chance(0.25) else []
        return [b"AI.SCRIPTRUN", key, fn, *timeout, b"INPUTS", *inputs, b"OUTPUTS", *d.some(d.tensor_key, 0, 2)]
    argv = [b"AI.SCRIPTEXECUTE", key, fn, *script_scopes(d, fn, d.tensor_key, keys_first=True)]
    if d.chance(0.25):
        argv += [b"TIMEOUT", d.timeout()]
    return argv


def scriptget(d: Draw) -> list[bytes]:
    return [b"AI.SCRIPTGET", d.script_key(), *d.some(lambda: d.pick((b"META", b"SOURCE", b"source", b"BLOB")), 0, 3)]


def scriptdel(d: Draw) -> list[bytes]:
    return [b"AI.SCRIPTDEL", d.pick(FUZZ_COPIES) if d.chance(0.5) else d.script_key()]


# ---------------------------------------------------------------- DAGs


class DagNames:
    """Tensor names inside one DAG: mostly ones an earlier op (or LOAD)
    defined, so ops reach the backends; sometimes any name."""

    def __init__(self, d: Draw, loaded: list[bytes]) -> None:
        self.d = d
        self.defined = list(loaded)

    def input(self) -> bytes:
        if self.defined and self.d.chance(0.9):
            return self.d.pick(self.defined)
        return self.d.pick(DAG_NAMES)

    def output(self) -> bytes:
        name = self.d.pick(DAG_NAMES)
        self.defined.append(name)
        return name


def dag_op(d: Draw, names: DagNames, deprecated: bool) -> list[bytes]:
    kind = d.pick(("set", "set", "set", "get", "get", "model", "model", "model", "model", "script", "script",
                   "script", "other"))
    if kind == "set":
        return tensorset(d, names.output())
    if kind == "get":
        return tensorget(d, names.input())
    run_form = deprecated if d.chance(0.9) else not deprecated  # MODELRUN/SCRIPTRUN belong in DAGRUN
    if kind == "model":
        inputs, outputs = io_names(d, names.input), io_names(d, names.output)
        if run_form:
            return [b"AI.MODELRUN", d.model_key(), b"INPUTS", *inputs, b"OUTPUTS", *outputs]
        return [b"AI.MODELEXECUTE", d.model_key(), b"INPUTS", _ascii(len(inputs)), *inputs,
                b"OUTPUTS", _ascii(len(outputs)), *outputs]
    fn = d.pick(SCRIPT_ENTRY_POINTS) if d.chance(0.85) else d.pick(SCRIPT_FUNCTIONS)
    if kind == "script" and run_form:
        return [b"AI.SCRIPTRUN", d.script_key(), fn, b"INPUTS", *io_names(d, names.input),
                b"OUTPUTS", *d.some(names.output, 0, 2)]
    if kind == "script":
        return [b"AI.SCRIPTEXECUTE", d.script_key(), fn, *script_scopes(d, fn, names.input, keys_first=False,
                                                                         output_name=names.output)]
    return d.pick(([b"SET", b"x", b"y"], [b"AI.DAGEXECUTE"], [b"PING"], [b"AI.INFO", b"d0"]))


def dag(d: Draw) -> list[bytes]:
    command = d.pick((b"AI.DAGEXECUTE", b"AI.DAGEXECUTE", b"AI.DAGEXECUTE", b"AI.DAGEXECUTE_RO", b"AI.DAGRUN",
                      b"AI.DAGRUN_RO"))
    loaded = d.some(d.tensor_key, 0, 3)
    names = DagNames(d, loaded)
    count = 0 if d.chance(0.05) else d.int(1, 5)
    ops = [dag_op(d, names, deprecated=command.startswith(b"AI.DAGRUN")) for _ in range(count)]
    parts = []
    if loaded:
        parts.append([b"LOAD", _ascii(len(loaded)), *loaded])
    if d.chance(0.1 if command.endswith(b"_RO") else 0.5):
        produced = names.defined or list(DAG_NAMES)
        persist = d.some(lambda: d.tensor_key() if d.chance(0.2) else d.pick(produced), 1, 2)
        if d.chance(0.9):
            persist = list(dict.fromkeys(persist))  # unique, as PERSIST requires
        parts.append([b"PERSIST", _ascii(len(persist)), *persist])
    if d.chance(0.3 if command.startswith(b"AI.DAGEXECUTE") else 0.05):
        parts.append([b"ROUTING", d.pick(FUZZ_TENSORS + (b"",))])
    if d.chance(0.3):
        parts.append([b"TIMEOUT", d.pick((b"0", b"-5")) if d.chance(0.2) else d.timeout()])
    argv = [command]
    for part in d.shuffled(parts):
        argv += part
    for op in ops:
        argv += [b"|>" if d.chance(0.97) else d.pick((b"|", b">", b"|>|>")), *op]
    if d.chance(0.05):
        argv.append(b"|>")
    return argv


# ---------------------------------------------------------------- admin and generic


def info(d: Draw) -> list[bytes]:
    key = stored_model_key(d) if d.chance(0.5) else d.any_key()
    return [b"AI.INFO", key, *d.some(lambda: d.pick((b"RESETSTAT", b"resetstat", b"SESSION", b"session", b"x")),
                                     0, 2)]


def config(d: Draw) -> list[bytes]:
    """AI.CONFIG in every form (CACHE_MEMORY and CACHE_FLUSH change only the
    inference cache, which DUMPs never show). BACKENDSPATH is only a recorded string here,
    and every backend is loaded before fuzzing, so neither it nor LOADBACKEND
    can change what later commands do. MODEL_CHUNK_SIZE changes how models
    are chunked in replies and in RDB, so the harness sets it back before it
    compares DUMPs."""
    kind = d.pick(("get", "get", "chunk", "path", "load", "cache", "sessions", "spin", "other"))
    if kind == "get":
        return [b"AI.CONFIG", b"GET",
                *d.some(lambda: d.pick((b"BACKENDSPATH", b"MODEL_CHUNK_SIZE", b"model_chunk_size",
                                        b"CACHE_MEMORY", b"MODEL_SESSIONS_MEMORY", b"MODEL_SESSIONS_MAX",
                                        b"model_sessions_max", b"WORKER_SPIN_US", b"OTHER")), 0, 2)]
    if kind == "sessions":
        return [b"AI.CONFIG", d.pick((b"MODEL_SESSIONS_MEMORY", b"MODEL_SESSIONS_MAX", b"model_sessions_max")),
                *d.some(lambda: session_budget(d), 0, 1 if d.chance(0.9) else 2)]
    if kind == "cache":
        if d.chance(0.3):
            return [b"AI.CONFIG", b"CACHE_FLUSH"]
        size = _ascii(d.int(0, 1 << 20)) if d.chance(0.6) else d.pick(LIMIT_NUMBERS + NON_NUMBERS)
        return [b"AI.CONFIG", b"CACHE_MEMORY", *([size] if d.chance(0.9) else [])]
    if kind == "spin":
        spin = _ascii(d.int(0, 2000)) if d.chance(0.6) else d.pick(LIMIT_NUMBERS + NON_NUMBERS + (b"1000001",))
        return [b"AI.CONFIG", b"WORKER_SPIN_US", *d.some(lambda: spin, 0, 1 if d.chance(0.9) else 2)]
    if kind == "chunk":
        size = _ascii(d.int(1, 4096)) if d.chance(0.6) else d.pick(LIMIT_NUMBERS + NON_NUMBERS)
        return [b"AI.CONFIG", b"MODEL_CHUNK_SIZE", *([size] if d.chance(0.9) else [])]
    if kind == "path":
        return [b"AI.CONFIG", b"BACKENDSPATH",
                *d.some(lambda: d.garbage() if d.chance(0.3) else d.pick((b"/nonexistent", b"", b"rel/dir", b"/tmp")), 0, 2)]
    if kind == "load":
        return [b"AI.CONFIG", b"LOADBACKEND",
                *d.some(lambda: d.pick(BACKENDS).encode() if d.chance(0.5) else d.pick((b"/nonexistent.so", b"", b"XX")), 0, 3)]
    return [b"AI.CONFIG", *d.some(lambda: d.pick(KEYWORDS) if d.chance(0.5) else d.garbage(), 0, 3)]


def session_budget(d: Draw) -> bytes:
    """Mostly no limit or room for every fuzz model; sometimes one that
    evicts sessions all the time (1 session, 1 byte), or a limit or non-number."""
    roll = d.int(0, 9)
    if roll <= 4:
        return d.pick((b"0", b"0", b"64", b"100000000"))
    if roll <= 6:
        return d.pick((b"1", b"2", b"4096"))
    return d.pick(LIMIT_NUMBERS + NON_NUMBERS)


def scan(d: Draw) -> list[bytes]:
    return [d.pick((b"AI._MODELSCAN", b"AI._SCRIPTSCAN")), *d.some(lambda: d.pick(KEYWORDS), 0, 1)]


def dump_restore(d: Draw, material: Material) -> list[bytes]:
    if not material.payloads or d.chance(0.25):
        return [b"DUMP", d.any_key()]
    payload = mutated_payload(d, d.pick(material.payloads), material.payloads)
    options = [[b"REPLACE"]] if d.chance(0.7) else []
    options += d.some(lambda: d.pick(([b"ABSTTL"], [b"IDLETIME", b"5"], [b"FREQ", b"3"], [b"REPLACE"])), 0, 1)
    return [b"RESTORE", d.target_key(), d.pick((b"0", b"0", b"100000", b"-1")), payload,
            *[word for option in options for word in option]]


def mutated_payload(d: Draw, payload: bytes, others: Sequence[bytes]) -> bytes:
    """A DUMP payload of one of our types, changed and (mostly) re-signed so
    that it reaches our decoder: one field at a time, the encoding version,
    another type's id, or raw bytes."""
    kind = d.pick(("field", "field", "field", "field", "encver", "retype", "drop", "dup", "bytes",
                   "truncate", "unsigned", "valid"))
    if kind == "valid":
        return payload
    body, version = fuzz_dump.split(payload)
    if kind in ("bytes", "truncate", "unsigned"):
        out = bytearray(body)
        if kind == "truncate":
            del out[d.int(0, len(out)):]
        else:
            for _ in range(d.int(1, 4)):
                if out:
                    out[d.int(0, len(out) - 1)] = d.int(0, 255)
        if kind == "unsigned":  # a payload whose checksum is wrong: Redis itself refuses it
            return bytes(out) + payload[-10:-8] + bytes(8)
        return fuzz_dump.sign(bytes(out), version)
    decoded = fuzz_dump.decode(payload)
    if kind == "encver":
        return decoded.with_encver(d.int(0, 6)).encode()
    if kind == "retype":
        other = fuzz_dump.decode(d.pick(others))
        return fuzz_dump.ModuleValue(other.module_id, decoded.fields, version).encode()
    fields = list(decoded.fields)
    if not fields:
        return decoded.encode()
    at = d.int(0, len(fields) - 1)
    if kind == "drop":
        del fields[at]
    elif kind == "dup":
        fields.insert(at, fields[at])
    else:
        fields[at] = mutated_field(d, *fields[at])
    return fuzz_dump.ModuleValue(decoded.module_id, fields, version).encode()


def mutated_field(d: Draw, op: int, item: int | bytes) -> tuple[int, int | bytes]:
    if d.chance(0.15):  # a value under the wrong opcode
        return (fuzz_dump.OP_STRING, b"7") if op != fuzz_dump.OP_STRING else (fuzz_dump.OP_UINT, 7)
    if op in (fuzz_dump.OP_UINT, fuzz_dump.OP_SINT):
        return op, int(d.pick(LIMIT_NUMBERS + (b"1", b"2", b"3", b"64", b"65", b"4096", b"4097")))
    if op == fuzz_dump.OP_STRING and isinstance(item, bytes):
        roll = d.int(0, 3)
        if roll == 0:
            return op, item[:d.int(0, len(item))]
        return op, item + d.garbage() if roll == 1 else d.garbage() if roll == 2 else b""
    return op, item


def generic(d: Draw) -> list[bytes]:
    kind = d.pick(("copy", "copy", "memory", "type", "del", "del", "exists", "object", "wrong_type"))
    if kind == "copy":
        options = d.some(lambda: d.pick(([b"REPLACE"], [b"REPLACE"], [b"DB", b"0"], [b"DB", b"1"])), 0, 2)
        return [b"COPY", d.any_key(), d.target_key(), *[word for option in options for word in option]]
    if kind == "memory":
        return [b"MEMORY", b"USAGE", d.any_key(), *d.pick(([], [b"SAMPLES", b"0"], [b"SAMPLES", b"5"]))]
    if kind == "type":
        return [b"TYPE", d.any_key()]
    if kind == "del":  # also what gives a key that became another type back to its pool
        return [d.pick((b"DEL", b"UNLINK")), *d.some(lambda: d.any_key() if d.chance(0.25) else d.target_key(), 1, 2)]
    if kind == "exists":
        return [b"EXISTS", d.any_key()]
    if kind == "object":
        return [b"OBJECT", d.pick((b"ENCODING", b"FREQ", b"IDLETIME")), d.any_key()]
    # keys of Redis's own types where ours are expected
    target = d.pick(FUZZ_WRONG_TYPES) if d.chance(0.95) else d.any_key()
    return d.pick(([b"SET", target, b"plain"], [b"RPUSH", target, b"x"], [b"HSET", target, b"f", b"v"]))


def lua(d: Draw, material: Material) -> list[bytes]:
    """An AI.* command called from a Lua script, where an inference makes
    the main thread wait for a worker (and serve its Redis calls)."""
    inner = d.pick((tensorset, tensorget, modelexecute, dag, info, fcall, function_admin))
    return [b"EVAL", b"return redis.pcall(unpack(ARGV))", b"0", *inner(d)]


# ---------------------------------------------------------------- in-server functions


def library_source(d: Draw, name: bytes) -> bytes:
    """A valid library mostly, else one cut short or broken on purpose."""
    roll = d.rng.random()
    if roll < 0.6:
        return LIBRARY_TEMPLATE.replace(b"LIB", name)
    if roll < 0.75:
        source = LIBRARY_TEMPLATE.replace(b"LIB", name)
        return source[:d.int(0, len(source))]
    return d.pick(BROKEN_LIBRARIES).replace(b"LIB", name)


def function_admin(d: Draw) -> list[bytes]:
    """AI.FUNCTION LOAD [REPLACE] / DELETE / LIST / FLUSH / KILL and unknown forms."""
    kind = d.pick(("load", "load", "load", "load", "delete", "list", "list", "flush", "kill", "other"))
    library = d.pick(FUNCTION_LIBRARIES) if d.chance(0.95) else d.pick((b"", b"missing", b"fz-lib"))
    if kind == "load":
        replace = [d.pick((b"REPLACE", b"replace", b"REPLAC"))] if d.chance(0.6) else []
        return [b"AI.FUNCTION", b"LOAD", *replace, library_source(d, library)]
    if kind == "delete":
        return [b"AI.FUNCTION", b"DELETE", library]
    if kind == "list":
        options = d.some(lambda: d.pick(([b"WITHCODE"], [b"LIBRARYNAME", d.pick((b"fzlib*", b"*", b"fzlib1", b"[",
                                                                                  b"", b"\\"))],
                                         [b"LIBRARYNAME"])), 0, 2)
        return [b"AI.FUNCTION", b"LIST", *[word for option in options for word in option]]
    if kind == "flush":
        return [b"AI.FUNCTION", b"FLUSH", *d.some(lambda: d.pick((b"ASYNC", b"SYNC", b"LAZY")), 0, 1)]
    if kind == "kill":
        return [b"AI.FUNCTION", b"KILL"]
    return [b"AI.FUNCTION", *d.some(lambda: d.pick((b"RESTORE", b"DUMP", b"STATS", b"load", b"")), 0, 2)]


def function_key(d: Draw, fn: bytes) -> bytes:
    """A key for a call: tensors for the tensor reader, Redis's own types for
    the rest (those that write SET and INCR them), sometimes any fuzz key."""
    if fn.endswith(b"_tensor") and d.chance(0.9):
        return d.tensor_key()
    return d.pick(FUZZ_KEYS) if d.chance(0.03) else d.pick(FUZZ_WRONG_TYPES + FUZZ_MISSING)


def fcall(d: Draw) -> list[bytes]:
    """AI.FCALL / AI.FCALL_RO function numkeys key... arg...: numkeys right
    mostly, else past the arguments, negative, a limit or a non-number;
    sometimes arguments missing from the end."""
    library = d.pick(FUNCTION_LIBRARIES)
    fn = library + b"_" + d.pick(LIBRARY_FUNCTIONS) if d.chance(0.9) else d.pick((b"missing", b"", library))
    read_only = d.chance(0.3)
    keys = d.some(lambda: function_key(d, fn), 1 if d.chance(0.8) else 0, 2)
    args = d.some(lambda: d.pick((b"1", b"x", b"")) if d.chance(0.7) else d.number(), 0, 3)
    roll = d.int(0, 9)
    if roll == 0:
        numkeys = d.pick(LIMIT_NUMBERS + NON_NUMBERS)
    elif roll == 1:
        numkeys = _ascii(len(keys) + len(args) + d.int(1, 2))
    elif roll == 2:
        numkeys = _ascii(-d.int(1, 2))
    else:
        numkeys = _ascii(len(keys))
    argv = [b"AI.FCALL_RO" if read_only else b"AI.FCALL", fn, numkeys, *keys, *args]
    if d.chance(0.05):
        argv = argv[:d.int(1, len(argv))]
    return argv


# ---------------------------------------------------------------- mutations


def mutate(d: Draw, argv: list[bytes], kinds: Sequence[str]) -> list[bytes]:
    """Apply `kinds` (drawn by Hypothesis) to argv[1:]. The command name is
    left alone, so a mutation cannot turn a command into FLUSHALL."""
    argv = list(argv)
    for kind in kinds:
        if kind == "append":
            argv += d.some(lambda: d.pick((d.pick(KEYWORDS), d.number(), d.garbage(), d.any_key())), 1, 3)
            continue
        if len(argv) < 2:
            continue
        at = d.int(1, len(argv) - 1)
        if kind == "number":
            numeric = [i for i in range(1, len(argv)) if argv[i].lstrip(b"-").isdigit()]
            argv[d.pick(numeric) if numeric else at] = d.pick(LIMIT_NUMBERS)
        elif kind == "non_number":
            numeric = [i for i in range(1, len(argv)) if argv[i].lstrip(b"-").isdigit()]
            argv[d.pick(numeric) if numeric else at] = d.pick(NON_NUMBERS)
        elif kind == "drop":
            del argv[at]
        elif kind == "repeat":
            argv.insert(at, argv[at])
        elif kind == "swap":
            other = d.int(1, len(argv) - 1)
            argv[at], argv[other] = argv[other], argv[at]
        elif kind == "garbage":
            argv[at] = d.binary(1, 64)
        elif kind == "truncate":
            longest = max(range(1, len(argv)), key=lambda i: len(argv[i]))
            argv[longest] = argv[longest][:d.int(0, max(len(argv[longest]) - 1, 0))]
        elif kind == "empty":
            argv[at] = b""
        elif kind == "keyword":
            argv[at] = d.pick(KEYWORDS)
    return argv


def park_waiting_models(argv: list[bytes]) -> list[bytes]:
    """A model stored with MINBATCHSIZE and without a short MINBATCHTIMEOUT
    waits for company for as long as it takes (reference section 4): a client
    executing it would block until the run ends. Such stores go to a key
    nothing executes. Mutations come first, so this sees the final argv."""
    if argv[0] not in (b"AI.MODELSTORE", b"AI.MODELSET") or len(argv) < 2:
        return argv
    upper = [arg.upper() for arg in argv]
    if b"MINBATCHSIZE" not in upper:
        return argv
    at = upper.index(b"MINBATCHSIZE")
    timeout = argv[at + 3] if at + 3 < len(argv) and upper[at + 2] == b"MINBATCHTIMEOUT" else b""
    if timeout.isdigit() and 0 < int(timeout) <= 1000:
        return argv
    return [argv[0], FUZZ_PARKED[len(argv) % len(FUZZ_PARKED)], *argv[2:]]


# ---------------------------------------------------------------- the Hypothesis side

Family = Callable[[Draw, Material], list[bytes]]

# (weight, family). Valid model and script stores cost a backend load each,
# so stores stay a few percent of the stream.
FAMILIES: tuple[tuple[int, str, Family], ...] = (
    (14, "tensorset", lambda d, m: tensorset(d)),
    (7, "tensorget", lambda d, m: tensorget(d)),
    (7, "modelstore", modelstore),
    (11, "modelexecute", lambda d, m: modelexecute(d)),
    (3, "modelget", lambda d, m: modelget(d)),
    (1, "modeldel", lambda d, m: modeldel(d)),
    (4, "scriptstore", lambda d, m: scriptstore(d)),
    (8, "scriptexecute", lambda d, m: scriptexecute(d)),
    (2, "scriptget", lambda d, m: scriptget(d)),
    (1, "scriptdel", lambda d, m: scriptdel(d)),
    (11, "dag", lambda d, m: dag(d)),
    (2, "info", lambda d, m: info(d)),
    (2, "config", lambda d, m: config(d)),
    (1, "scan", lambda d, m: scan(d)),
    (5, "dump_restore", dump_restore),
    (6, "generic", lambda d, m: generic(d)),
    (2, "lua", lua),
    (3, "function_admin", lambda d, m: function_admin(d)),
    (6, "fcall", lambda d, m: fcall(d)),
)
FAMILY_BY_NAME = {name: make for _, name, make in FAMILIES}
WEIGHTED_FAMILIES = tuple(name for weight, name, _ in FAMILIES for _ in range(weight))
MUTATIONS = ("number", "number", "non_number", "drop", "repeat", "swap", "append", "garbage", "truncate",
             "empty", "keyword")

mutation_plans = st.one_of(st.just(()), st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=3))


@dataclass(frozen=True)
class Recipe:
    """What Hypothesis draws for one command."""

    family: str
    plan: tuple[str, ...]
    seed: int


recipes = st.builds(Recipe, st.sampled_from(WEIGHTED_FAMILIES), mutation_plans.map(tuple),
                    st.integers(min_value=0, max_value=2**64 - 1))


def build(material: Material, recipe: Recipe, position: int) -> list[bytes]:
    """The command of a recipe at a position in the stream: the same every time.

    Hypothesis's generate phase also splices and repeats parts of earlier
    examples (measured: 15% distinct commands in 20,000), so the Random is
    seeded from the drawn seed *and* the position: a repeated recipe gives a
    command of the same family and mutations with other arguments."""
    d = Draw(random.Random(recipe.seed ^ (position * 0x9E3779B97F4A7C15 & (2**64 - 1))))
    return park_waiting_models(mutate(d, FAMILY_BY_NAME[recipe.family](d, material), recipe.plan))


def batch(connections: int, per_connection: int) -> st.SearchStrategy[list[list[Recipe]]]:
    """One round: `per_connection` recipes for each of `connections` clients."""
    return st.lists(st.lists(recipes, min_size=per_connection, max_size=per_connection),
                    min_size=connections, max_size=connections)


def build_round(material: Material, round_recipes: list[list[Recipe]], first_position: int) -> list[list[list[bytes]]]:
    """The commands of one round; positions count on from `first_position`."""
    per_connection = len(round_recipes[0]) if round_recipes else 0
    return [[build(material, recipe, first_position + lane * per_connection + i)
             for i, recipe in enumerate(lane_recipes)]
            for lane, lane_recipes in enumerate(round_recipes)]
