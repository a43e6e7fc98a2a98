"""Tensors survive every way Redis persists or moves a value.

User stories: an operator stores tensors of every dtype (a STRING tensor, a
scalar, a 4 MB FLOAT tensor among them) and then saves and restarts from RDB,
restarts from an AOF, rewrites the AOF, reloads with DEBUG RELOAD, moves keys
with DUMP/RESTORE, copies them with COPY, asks MEMORY USAGE, and saves in the
background while clients keep writing. Every story ends by reading the
tensors back with AI.TENSORGET META BLOB and comparing them with the exact
bytes that were stored. A bad DUMP payload (corrupted bytes, or well-formed
framing around a broken tensor) must be refused with an error while the
server keeps serving and the keyspace stays as it was.

DUMP payloads are built here by hand where a test needs one: a payload is
the RDB value (type 7 = module value, the 64-bit module type id whose low 10
bits are the encoding version, then the module's fields, each behind an
opcode: 2 = unsigned, 5 = string, 0 = end), then the RDB version as two
little-endian bytes, then a CRC64 (Jones) of all that, little-endian.
"""

from __future__ import annotations

import math
import signal
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import redis

from keyspace import assert_intact, snapshot

# --------------------------------------------------------------------------
# The tensors every story stores: key -> (dtype, shape, blob).


def _float_blob() -> bytes:
    # Values whose bit patterns a lossy path would change: -0.0, a NaN with a
    # payload, infinities and a subnormal.
    specials = struct.pack("<5I", 0x80000000, 0x7FC00123, 0x7F800000, 0xFF800000, 0x00000001)
    return specials + struct.pack("<f", 1.5)


def _random(dtype: str, count: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=count * np.dtype(dtype).itemsize, dtype=np.uint8).tobytes()


TENSORS: dict[str, tuple[str, tuple[int, ...], bytes]] = {
    "t:float": ("FLOAT", (2, 3), _float_blob()),
    "t:double": ("DOUBLE", (4,), _random("<f8", 4, 1)),
    "t:int8": ("INT8", (2, 2, 2), _random("i1", 8, 2)),
    "t:int16": ("INT16", (3, 1), _random("<i2", 3, 3)),
    "t:int32": ("INT32", (5,), _random("<i4", 5, 4)),
    "t:int64": ("INT64", (1, 2), _random("<i8", 2, 5)),
    "t:uint8": ("UINT8", (7,), _random("u1", 7, 6)),
    "t:uint16": ("UINT16", (2, 2), _random("<u2", 4, 7)),
    "t:bool": ("BOOL", (6,), bytes([0, 1, 1, 0, 1, 0])),
    # Four elements: "alpha", "" (empty), UTF-8 "été", "z".
    "t:string": ("STRING", (2, 2), b"alpha\0\0\xc3\xa9t\xc3\xa9\0z\0"),
    "t:string_scalar": ("STRING", (), b"only one\0"),
    "t:scalar": ("DOUBLE", (), struct.pack("<d", math.pi)),
    # 4 MiB of random FLOAT bits: large enough that RDB and AOF write it in
    # many pieces, and LZF cannot shrink it.
    "t:big": ("FLOAT", (1024, 1024), _random("<f4", 1024 * 1024, 8)),
}


def store(client: redis.Redis, tensors: dict[str, tuple[str, tuple[int, ...], bytes]]) -> None:
    for key, (dtype, shape, blob) in tensors.items():
        reply = client.execute_command("AI.TENSORSET", key, dtype, *shape, "BLOB", blob)
        assert reply in (True, b"OK"), key


def expected_get(dtype: str, shape: tuple[int, ...], blob: bytes) -> list[object]:
    return [b"dtype", dtype.encode(), b"shape", list(shape), b"blob", blob]


def tensor_get(client: redis.Redis, key: str) -> list[object]:
    return client.execute_command("AI.TENSORGET", key, "META", "BLOB")


def assert_tensors(client: redis.Redis,
                   tensors: dict[str, tuple[str, tuple[int, ...], bytes]]) -> None:
    """Every tensor reads back with its dtype, shape and exact bytes."""
    for key, spec in tensors.items():
        assert tensor_get(client, key) == expected_get(*spec), key


def info_field(client: redis.Redis, section: str, field: str) -> str:
    return str(client.info(section)[field])


def wait_for(predicate, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def loaded(server, r):
    """A server holding TENSORS, checked once on the way in."""
    store(r, TENSORS)
    assert_tensors(r, TENSORS)
    return server


# --------------------------------------------------------------------------
# Hand-built DUMP payloads.

TENSOR_TYPE_ID = 0x8FD310D48E4400  # "AI_TENSOR" at encver 0 (reference, section 1)
RDB_VERSION = 10  # Redis 7.0; RESTORE accepts this and older versions (Valkey too)


def _crc64_table() -> list[int]:
    poly = 0x95AC9329AC4BC9B5  # Jones polynomial, bit-reflected
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc64_table()


def crc64(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def rdb_len(n: int) -> bytes:
    if n < 1 << 6:
        return bytes([n])
    if n < 1 << 14:
        return bytes([0x40 | (n >> 8), n & 0xFF])
    if n < 1 << 32:
        return b"\x80" + n.to_bytes(4, "big")
    return b"\x81" + n.to_bytes(8, "big")


def op_uint(n: int) -> bytes:
    return b"\x02" + rdb_len(n % (1 << 64))  # SaveSigned writes the same opcode


def op_string(data: bytes) -> bytes:
    return b"\x05" + rdb_len(len(data)) + data


def payload(encver: int, fields: bytes, rdb_version: int = RDB_VERSION) -> bytes:
    body = b"\x07" + rdb_len(TENSOR_TYPE_ID | encver) + fields + b"\x00"
    body += rdb_version.to_bytes(2, "little")
    return body + crc64(body).to_bytes(8, "little")


def dump_rdb_version(client: redis.Redis) -> int:
    """The RDB version the server under test writes into a DUMP footer (Redis
    7.0: 10, Valkey 9: 80), read from a DUMP of a plain string."""
    client.set("rdb-version-probe", "x")
    footer = client.dump("rdb-version-probe")[-10:]
    client.delete("rdb-version-probe")
    return int.from_bytes(footer[:2], "little")


def v4_fields(code: int, bits: int, shape: list[int], data: bytes,
              offsets: list[int] | None = None) -> bytes:
    out = op_uint(code) + op_uint(bits) + op_uint(len(shape))
    out += b"".join(op_uint(d) for d in shape) + op_string(data)
    return out + b"".join(op_uint(o) for o in offsets or [])


def legacy_fields(bits: int, code: int, shape: list[int], data: bytes,
                  device_type: int = 1, lanes: int = 1) -> bytes:
    out = op_uint(device_type) + op_uint(0) + op_uint(bits) + op_uint(code) + op_uint(lanes)
    out += op_uint(len(shape)) + b"".join(op_uint(d) for d in shape)
    out += b"".join(op_uint(1) for _ in shape) + op_uint(0)  # strides, byte offset
    return out + op_string(data)


INT32_1_2 = struct.pack("<2i", 1, 2)


# --------------------------------------------------------------------------
# (a) RDB


def test_save_and_restart_from_rdb_gives_every_tensor_back(loaded, r):
    dumps_before = snapshot(r)
    assert r.save() is True
    assert (loaded.workdir / "dump.rdb").stat().st_size > 4 * 1024 * 1024

    loaded.restart()
    r2 = loaded.client()
    assert r2.dbsize() == len(TENSORS)
    assert_tensors(r2, TENSORS)
    # Re-serialising what was loaded gives the very same bytes.
    assert snapshot(r2) == dumps_before


# --------------------------------------------------------------------------
# (b) AOF, (c) AOF rewrite

AOF_ARGS = ["--appendonly", "yes", "--appendfsync", "always", "--aof-use-rdb-preamble", "no"]


def aof_files(workdir: Path) -> dict[str, bytes]:
    """The files the manifest names, by type (b: base, i: incr)."""
    aofdir = workdir / "appendonlydir"
    manifest = (aofdir / "appendonly.aof.manifest").read_text().split("\n")
    files: dict[str, bytes] = {}
    for line in filter(None, manifest):
        fields = line.split()
        info = dict(zip(fields[::2], fields[1::2]))
        files[info["type"]] = files.get(info["type"], b"") + (aofdir / info["file"]).read_bytes()
    return files


def parse_resp_commands(data: bytes) -> list[list[bytes]]:
    """The commands of an AOF written as RESP arrays of bulk strings."""
    commands, pos = [], 0
    while pos < len(data):
        assert data[pos:pos + 1] == b"*", data[pos:pos + 20]
        end = data.index(b"\r\n", pos)
        argc, pos = int(data[pos + 1:end]), end + 2
        args = []
        for _ in range(argc):
            assert data[pos:pos + 1] == b"$"
            end = data.index(b"\r\n", pos)
            n, pos = int(data[pos + 1:end]), end + 2
            args.append(data[pos:pos + n])
            assert data[pos + n:pos + n + 2] == b"\r\n"
            pos += n + 2
        commands.append(args)
    return commands


def test_restart_after_crash_replays_the_aof(server_factory):
    server = server_factory(server_args=AOF_ARGS)
    r = server.client()
    store(r, TENSORS)

    # SIGKILL: nothing is saved on the way down, so only the AOF
    # (fsynced on every write) can bring the tensors back.
    server.stop(signal.SIGKILL)
    assert not (server.workdir / "dump.rdb").exists()
    assert b"AI.TENSORSET" in aof_files(server.workdir)["i"]

    server.start()
    r2 = server.client()
    assert r2.dbsize() == len(TENSORS)
    assert_tensors(r2, TENSORS)


def test_bgrewriteaof_writes_tensorset_commands_that_restore_the_tensors(server_factory):
    server = server_factory(server_args=AOF_ARGS)
    r = server.client()
    # Overwrite a key a few times first: the rewrite keeps only the last value.
    for value in (1.0, 2.0):
        r.execute_command("AI.TENSORSET", "t:float", "FLOAT", 1, "VALUES", value)
    store(r, TENSORS)

    r.bgrewriteaof()
    wait_for(lambda: info_field(r, "persistence", "aof_rewrite_in_progress") == "0"
             and info_field(r, "persistence", "aof_rewrite_scheduled") == "0",
             what="the AOF rewrite")
    assert info_field(r, "persistence", "aof_last_bgrewrite_status") == "ok"

    files = aof_files(server.workdir)
    assert files["i"] == b""  # nothing written since: the base holds it all
    base = files["b"]
    assert base.startswith(b"*")  # plain commands, no RDB preamble
    tensorsets = [c for c in parse_resp_commands(base) if c[0] == b"AI.TENSORSET"]
    emitted = {c[1].decode(): c for c in tensorsets}
    assert len(tensorsets) == len(TENSORS)
    for key, (dtype, shape, blob) in TENSORS.items():
        assert emitted[key] == [b"AI.TENSORSET", key.encode(), dtype.encode(),
                                *(str(d).encode() for d in shape), b"BLOB", blob]

    server.restart()
    r2 = server.client()
    assert r2.dbsize() == len(TENSORS)
    assert_tensors(r2, TENSORS)


# --------------------------------------------------------------------------
# (d) DEBUG RELOAD


def test_debug_reload_keeps_every_tensor(loaded, r):
    dumps_before = snapshot(r)
    assert r.execute_command("DEBUG", "RELOAD") in (True, b"OK")
    assert_tensors(r, TENSORS)
    assert snapshot(r) == dumps_before


# --------------------------------------------------------------------------
# (e) DUMP / RESTORE


def test_dump_restore_on_the_same_server_and_onto_another(loaded, r, server_factory):
    other = server_factory().client()
    for key, spec in TENSORS.items():
        dumped = r.dump(key)
        assert r.restore(key + ":restored", 0, dumped) in (True, b"OK")
        assert tensor_get(r, key + ":restored") == expected_get(*spec)
        assert r.dump(key + ":restored") == dumped

        assert other.restore(key, 0, dumped) in (True, b"OK")
        assert other.type(key) == b"AI_TENSOR"
        assert tensor_get(other, key) == expected_get(*spec)

    # An existing key is only replaced on request.
    with pytest.raises(redis.ResponseError, match="BUSYKEY"):
        other.restore("t:int8", 0, r.dump("t:float"))
    assert tensor_get(other, "t:int8") == expected_get(*TENSORS["t:int8"])
    other.restore("t:int8", 0, r.dump("t:float"), replace=True)
    assert tensor_get(other, "t:int8") == expected_get(*TENSORS["t:float"])


def test_dump_writes_the_documented_encoding_version_4_layout(r):
    rdb = dump_rdb_version(r)  # the footer is the server's; the fields are ours
    r.execute_command("AI.TENSORSET", "i", "INT32", 2, 1, "BLOB", INT32_1_2)
    # code before bits (v4), signed ndims and dims, the blob.
    assert r.dump("i") == payload(4, v4_fields(0, 32, [2, 1], INT32_1_2), rdb)

    r.execute_command("AI.TENSORSET", "s", "STRING", 3, "VALUES", "a", "", "bc")
    # STRING: the blob, then every element's start offset.
    assert r.dump("s") == payload(4, v4_fields(7, 8, [3], b"a\0\0bc\0", [0, 2, 3]), rdb)

    r.execute_command("AI.TENSORSET", "scalar", "UINT16", "VALUES", 513)
    assert r.dump("scalar") == payload(4, v4_fields(1, 16, [], b"\x01\x02"), rdb)


def test_restore_of_hand_built_v4_payloads_reads_every_field(r):
    # Offsets in the payload are not trusted: they are recomputed from the
    # blob, so wrong ones still give the right elements.
    r.restore("s", 0, payload(4, v4_fields(7, 8, [2], b"xy\0z\0", [9, 9])))
    assert r.execute_command("AI.TENSORGET", "s", "VALUES") == [b"xy", b"z"]
    r.restore("b", 0, payload(4, v4_fields(6, 8, [2, 2], b"\x01\x00\x00\x01")))
    assert tensor_get(r, "b") == expected_get("BOOL", (2, 2), b"\x01\x00\x00\x01")


# --------------------------------------------------------------------------
# (j) Payloads of older encoding versions.

# Payloads in the encodings RedisAI wrote before version 4 (an INT32 tensor
# of shape [2, 1] holding 1 and 2), built from the layouts the reference
# describes (section 9), in an RDB of version 9 as Redis 6 wrote them.
LEGACY_V0 = payload(0, legacy_fields(32, 0, [2, 1], INT32_1_2), rdb_version=9)
LEGACY_V1 = payload(1, legacy_fields(32, 0, [2, 1], INT32_1_2), rdb_version=9)


@pytest.mark.parametrize("legacy", [LEGACY_V0, LEGACY_V1], ids=["v0", "v1"])
def test_restore_of_legacy_v0_v1_payloads(r, legacy):
    assert r.restore("tensor{1}", 0, legacy) in (True, b"OK")
    assert tensor_get(r, "tensor{1}") == expected_get("INT32", (2, 1), INT32_1_2)
    assert r.execute_command("AI.TENSORGET", "tensor{1}", "VALUES") == [1, 2]
    # Saved again, it is written in the current encoding.
    assert r.dump("tensor{1}") == payload(4, v4_fields(0, 32, [2, 1], INT32_1_2),
                                          dump_rdb_version(r))


@pytest.mark.parametrize("encver", [2, 3])
def test_restore_of_legacy_v2_v3_layout(r, encver):
    # v2 and v3 share v0's layout (reference, section 9).
    blob = struct.pack("<3d", 0.5, -2.0, 1e300)
    r.restore("d", 0, payload(encver, legacy_fields(64, 2, [3], blob)))
    assert tensor_get(r, "d") == expected_get("DOUBLE", (3,), blob)


def rdb_file(entries: dict[str, bytes], rdb_version: int = 9) -> bytes:
    """An RDB file holding db 0 with `entries`: key -> DUMP payload. A DUMP
    payload is the value's RDB encoding (type byte, value) plus a footer; a
    file frames each as type byte, key, value."""
    out = b"REDIS%04d" % rdb_version + b"\xfe\x00"  # SELECTDB 0
    for key, dumped in entries.items():
        out += dumped[:1] + rdb_len(len(key)) + key.encode() + dumped[1:-10]
    out += b"\xff"  # EOF
    return out + crc64(out).to_bytes(8, "little")


def test_server_starts_from_an_rdb_file_of_legacy_tensors(server_factory, tmp_path):
    workdir = tmp_path / "legacy"
    workdir.mkdir()
    double = struct.pack("<2d", 0.25, -8.0)
    (workdir / "dump.rdb").write_bytes(rdb_file({
        "v0": LEGACY_V0,
        "v1": LEGACY_V1,
        "v3": payload(3, legacy_fields(64, 2, [1, 2], double)),
        "v4": payload(4, v4_fields(7, 8, [2], b"p\0q\0", [0, 2])),
    }))
    r = server_factory(workdir=workdir).client()
    assert r.dbsize() == 4
    assert tensor_get(r, "v0") == expected_get("INT32", (2, 1), INT32_1_2)
    assert tensor_get(r, "v1") == expected_get("INT32", (2, 1), INT32_1_2)
    assert tensor_get(r, "v3") == expected_get("DOUBLE", (1, 2), double)
    assert tensor_get(r, "v4") == expected_get("STRING", (2,), b"p\0q\0")


def test_server_refuses_to_start_from_an_rdb_file_with_a_broken_tensor(server_factory, tmp_path):
    workdir = tmp_path / "broken"
    workdir.mkdir()
    (workdir / "dump.rdb").write_bytes(rdb_file({
        "good": LEGACY_V0,
        "bad": payload(4, v4_fields(0, 32, [3], INT32_1_2)),
    }))
    server = server_factory(workdir=workdir, start=False)
    server.start(wait=False)
    # Serving a keyspace that silently lost a key would be worse: the
    # server stops with the reason in its log.
    deadline = time.monotonic() + 20
    while server.proc.poll() is None:
        assert time.monotonic() < deadline, "redis-server kept running on a corrupt RDB"
        time.sleep(0.02)
    # (The exit status is Redis's business: 7.0 runs its RDB checker on the
    # way out and exits with the checker's verdict, which can be 0.)
    log = server.log()
    assert "AI_TENSOR: corrupt tensor in RDB (ERR data length does not match" in log
    assert "Ready to accept connections" not in log


# --------------------------------------------------------------------------
# (h) Bad payloads are refused; the server and its keyspace are unharmed.


def test_restore_refuses_a_payload_with_corrupted_bytes(loaded, r):
    before = snapshot(r)
    good = r.dump("t:int32")
    for pos in (len(good) // 2, 3, len(good) - 1):
        bad = bytearray(good)
        bad[pos] ^= 0x5A
        with pytest.raises(redis.ResponseError, match="payload version or checksum are wrong"):
            r.restore("victim", 0, bytes(bad))
        with pytest.raises(redis.ResponseError, match="payload version or checksum are wrong"):
            r.restore("t:int32", 0, bytes(bad), replace=True)
    assert_intact(r, before)


# Well-framed payloads (right checksum) whose tensor is broken: RESTORE
# answers "Bad data format". Where the module's own checks refuse the tensor,
# the log says why; the others break the module-API framing itself, which
# Redis detects (the loader still must fail cleanly and free what it read).
BROKEN_PAYLOADS: dict[str, tuple[bytes, str | None]] = {
    "newer encoding version": (payload(5, v4_fields(0, 32, [2, 1], INT32_1_2)),
                               "encoding version 5 is newer than this module reads (4)"),
    "unknown dtype code": (payload(4, v4_fields(3, 32, [2], INT32_1_2)), "bad dtype or rank"),
    "UINT32": (payload(4, v4_fields(1, 32, [2], INT32_1_2)), "bad dtype or rank"),
    "blob shorter than shape": (payload(4, v4_fields(0, 32, [3], INT32_1_2)),
                                "data length does not match tensor shape and type"),
    "blob longer than shape": (payload(4, v4_fields(0, 32, [1], INT32_1_2)),
                               "data length does not match tensor shape and type"),
    "zero dimension": (payload(4, v4_fields(0, 32, [2, 0], INT32_1_2)), "bad dimension in RDB"),
    "negative dimension": (payload(4, v4_fields(0, 32, [-2, -1], INT32_1_2)),
                           "bad dimension in RDB"),
    "shape overflows": (payload(4, v4_fields(0, 8, [1 << 62, 1 << 62], b"\x01")),
                        "shape overflows"),
    "too many dimensions": (payload(4, v4_fields(0, 8, [1] * 65, b"\x01")), "bad dtype or rank"),
    "bool element not 0/1": (payload(4, v4_fields(6, 8, [2], b"\x01\x02")),
                             "BOOL tensor elements must be 0 or 1"),
    "string element count": (payload(4, v4_fields(7, 8, [3], b"a\0b\0", [0, 2, 4])),
                             "Number of string elements"),
    "string without final NUL": (payload(4, v4_fields(7, 8, [1], b"ab", [0])),
                                 "Number of string elements"),
    "string offsets missing": (payload(4, v4_fields(7, 8, [2], b"a\0b\0", [0])), None),
    # The blob claims 200 bytes; the payload ends long before.
    "truncated blob": (payload(4, v4_fields(0, 32, [2], b"")[:-1] + rdb_len(200) + INT32_1_2),
                       None),
    "field of the wrong kind": (
        payload(4, op_string(b"\x00") + v4_fields(0, 32, [2], INT32_1_2)[2:]), None),
    "trailing field": (payload(4, v4_fields(0, 32, [2], INT32_1_2) + op_uint(7)), None),
    "legacy GPU tensor": (payload(3, legacy_fields(32, 0, [2], INT32_1_2, device_type=2)),
                          "unsupported legacy tensor"),
    "legacy vector lanes": (payload(3, legacy_fields(32, 0, [2], INT32_1_2, lanes=2)),
                            "unsupported legacy tensor"),
    "legacy STRING": (payload(3, legacy_fields(8, 7, [2], b"a\0b\0")),
                      "unsupported legacy tensor"),
    "legacy zero dimension": (payload(0, legacy_fields(32, 0, [0], b"")),
                              "bad dimension in legacy RDB"),
    "legacy blob length": (payload(1, legacy_fields(32, 0, [3], INT32_1_2)),
                           "data length does not match tensor shape and type"),
}


@pytest.mark.parametrize("name", list(BROKEN_PAYLOADS))
def test_restore_refuses_a_well_framed_but_broken_tensor(loaded, r, name):
    before = snapshot(r)
    bad, reason = BROKEN_PAYLOADS[name]
    log_start = len(loaded.log())
    with pytest.raises(redis.ResponseError, match="Bad data format"):
        r.restore("victim", 0, bad)
    with pytest.raises(redis.ResponseError, match="Bad data format"):
        r.restore("t:int32", 0, bad, replace=True)
    assert_intact(r, before)
    assert_tensors(r, TENSORS)
    if reason is not None:
        assert "<ai> AI_TENSOR: " in loaded.log()[log_start:]
        assert reason in loaded.log()[log_start:]


def test_refused_payloads_leak_nothing(r):
    # Each refusal path holds a 64 KiB buffer when it fails: the blob read
    # before the shape check, the tensor built before the STRING offsets run
    # out, the tensor Redis frees when a field follows it. 50 refusals of
    # each would leave 9 MiB behind if any of them leaked.
    big = 64 * 1024
    floats = bytes(big)
    strings = b"s\0" * (big // 2)
    refusals = [
        payload(4, v4_fields(2, 32, [big // 4 + 1], floats)),
        payload(4, v4_fields(7, 8, [big // 2], strings, [0] * 10)),
        payload(4, v4_fields(2, 32, [big // 4], floats) + op_uint(7)),
        payload(2, legacy_fields(32, 2, [big // 4 - 1], floats)),
    ]

    def attempt_all() -> None:
        for bad in refusals:
            with pytest.raises(redis.ResponseError, match="Bad data format"):
                r.restore("victim", 0, bad)

    attempt_all()  # let buffers that are reused (query buffer) reach size
    baseline = r.info("memory")["used_memory"]
    for _ in range(50):
        attempt_all()
    assert r.info("memory")["used_memory"] - baseline < 1024 * 1024
    assert r.dbsize() == 0

    # The measure is not blind: 50 tensors kept do show up.
    good = payload(4, v4_fields(2, 32, [big // 4], floats))
    for i in range(50):
        r.restore(f"kept:{i}", 0, good)
    assert r.info("memory")["used_memory"] - baseline >= 50 * big


# --------------------------------------------------------------------------
# (f) COPY, (g) MEMORY USAGE


def test_copy_gives_an_independent_equal_tensor(loaded, r):
    for key, spec in TENSORS.items():
        assert r.copy(key, key + ":copy") is True
        assert tensor_get(r, key + ":copy") == expected_get(*spec)

    # Overwriting or deleting the sources leaves every copy as it was.
    for key in TENSORS:
        r.execute_command("AI.TENSORSET", key, "INT8", 1, "VALUES", 7)
    r.delete("t:big", "t:string")
    for key, spec in TENSORS.items():
        assert tensor_get(r, key + ":copy") == expected_get(*spec)

    # Without REPLACE an existing destination is kept; with it, replaced.
    assert r.copy("t:int8", "t:float:copy") is False
    assert tensor_get(r, "t:float:copy") == expected_get(*TENSORS["t:float"])
    assert r.copy("t:int8", "t:float:copy", replace=True) is True
    assert tensor_get(r, "t:float:copy") == expected_get("INT8", (1,), b"\x07")

    # Into another database, too.
    assert r.copy("t:double:copy", "elsewhere", destination_db=1) is True
    other_db = redis.Redis(host="127.0.0.1", port=loaded.port, db=1)
    assert tensor_get(other_db, "elsewhere") == expected_get(*TENSORS["t:double"])


def test_memory_usage_grows_with_the_tensor(r):
    mib = 1024 * 1024
    r.execute_command("AI.TENSORSET", "tiny", "INT8", 1, "VALUES", 1)
    r.execute_command("AI.TENSORSET", "one_mib", "FLOAT", mib // 4, "BLOB", bytes(mib))
    r.execute_command("AI.TENSORSET", "four_mib", "FLOAT", mib, "BLOB", bytes(4 * mib))
    tiny = r.memory_usage("tiny")
    one = r.memory_usage("one_mib")
    four = r.memory_usage("four_mib")
    assert 0 < tiny < 1024
    assert mib <= one < mib + 4096
    assert 4 * mib <= four < 4 * mib + 4096
    # STRING tensors also count their per-element offsets.
    r.execute_command("AI.TENSORSET", "strings", "STRING", 1000, "BLOB", b"x\0" * 1000)
    assert r.memory_usage("strings") >= 2000 + 8 * 1000
    # A copy owns its own buffer, so it reports the same size.
    r.copy("one_mib", "one_mib:copy")
    assert r.memory_usage("one_mib:copy") == one


# --------------------------------------------------------------------------
# (i) BGSAVE while clients write


def test_bgsave_under_writes_saves_the_moment_it_was_asked(server, r):
    keys = {f"w:{i}": ("FLOAT", (256,), _random("<f4", 256, 100 + i)) for i in range(100)}
    keys["t:big"] = TENSORS["t:big"]
    store(r, keys)
    # Slow the child down (2 ms a key) so the writes below overlap the save.
    r.config_set("rdb-key-save-delay", 2000)

    assert r.bgsave() in (True, b"Background saving started")
    writes_during_save = 0
    deadline = time.monotonic() + 20
    i = 0
    while info_field(r, "persistence", "rdb_bgsave_in_progress") == "1":
        assert time.monotonic() < deadline, "BGSAVE did not finish"
        key = f"w:{i % 100}"
        r.execute_command("AI.TENSORSET", key, "INT16", 2, "VALUES", i % 1000, 1)
        r.execute_command("AI.TENSORSET", f"new:{i}", "UINT8", 1, "VALUES", 1)
        if i == 3:
            r.delete("t:big")
        writes_during_save += 1
        i += 1
    assert writes_during_save > 10
    assert info_field(r, "persistence", "rdb_last_bgsave_status") == "ok"

    # save "" is in force, so shutting down does not overwrite the file: the
    # restart loads exactly what the fork saw.
    server.restart()
    r2 = server.client()
    assert r2.dbsize() == len(keys)
    assert_tensors(r2, keys)
