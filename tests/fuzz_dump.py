"""DUMP payloads of module types, taken apart and put back together, so the
fuzzer can hand RESTORE a payload whose checksum is right but whose content
is wrong.

A payload that fails Redis's own checks (the RDB version in the footer, the
CRC64 over everything before it) never reaches our decoders, so random byte
flips alone test Redis, not us. This module re-signs mutated payloads, and
it understands the shape of a module value well enough to change one field
at a time (a length, a count, a string, the encoding version).

Format facts (Redis 7.0 RDB, DUMP/RESTORE):

    payload  = type byte, value, RDB version (2 bytes LE), CRC64 (8 bytes LE)
    value    = module id (a length), then (opcode, item) pairs, then opcode EOF
    module id: 54 bits of type name, low 10 bits the encoding version
    opcodes  : 0 EOF, 1 SINT, 2 UINT, 3 FLOAT, 4 DOUBLE, 5 STRING

Lengths are RDB lengths (6-bit, 14-bit, 32-bit or 64-bit big endian).
Strings may be stored as small integers or LZF-compressed; we decode both
and always write them back raw, which loads the same bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

RDB_TYPE_MODULE_2 = 7
OP_EOF, OP_SINT, OP_UINT, OP_FLOAT, OP_DOUBLE, OP_STRING = 0, 1, 2, 3, 4, 5
ENCVER_BITS = 10

# ---------------------------------------------------------------- CRC64 (Jones)

_CRC64_POLY_REFLECTED = 0x95AC9329AC4BC9B5


def _crc64_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _CRC64_POLY_REFLECTED if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC64_TABLE = _crc64_table()


def crc64(data: bytes) -> int:
    """Redis's CRC64 (Jones polynomial, reflected, no final xor)."""
    crc = 0
    table = _CRC64_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def sign(body: bytes, rdb_version: int) -> bytes:
    """`body` (type byte + value) with the footer RESTORE checks."""
    head = body + struct.pack("<H", rdb_version)
    return head + struct.pack("<Q", crc64(head))


def split(payload: bytes) -> tuple[bytes, int]:
    """(type byte + value, RDB version) of a DUMP payload; the CRC is dropped."""
    if len(payload) < 10:
        raise ValueError("not a DUMP payload")
    return payload[:-10], struct.unpack("<H", payload[-10:-8])[0]


# ---------------------------------------------------------------- RDB lengths and strings


def encode_length(n: int) -> bytes:
    if n < 1 << 6:
        return bytes([n])
    if n < 1 << 14:
        return bytes([0x40 | (n >> 8), n & 0xFF])
    if n <= 0xFFFFFFFF:
        return b"\x80" + struct.pack(">I", n)
    return b"\x81" + struct.pack(">Q", n & 0xFFFFFFFFFFFFFFFF)


def _decode_length(buf: bytes, pos: int) -> tuple[int, bool, int]:
    """(value, is_special_string_encoding, new position)."""
    first = buf[pos]
    kind = first >> 6
    if kind == 0:
        return first & 0x3F, False, pos + 1
    if kind == 1:
        return ((first & 0x3F) << 8) | buf[pos + 1], False, pos + 2
    if kind == 3:
        return first & 0x3F, True, pos + 1
    if first == 0x80:
        return struct.unpack(">I", buf[pos + 1:pos + 5])[0], False, pos + 5
    if first == 0x81:
        return struct.unpack(">Q", buf[pos + 1:pos + 9])[0], False, pos + 9
    raise ValueError(f"bad RDB length byte {first:#x}")


def _lzf_decompress(data: bytes, expected: int) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        ctrl = data[i]
        i += 1
        if ctrl < 32:
            out += data[i:i + ctrl + 1]
            i += ctrl + 1
            continue
        length = ctrl >> 5
        if length == 7:
            length += data[i]
            i += 1
        ref = len(out) - ((ctrl & 0x1F) << 8) - data[i] - 1
        i += 1
        for k in range(length + 2):
            out.append(out[ref + k])
    if len(out) != expected:
        raise ValueError("LZF length mismatch")
    return bytes(out)


def _decode_string(buf: bytes, pos: int) -> tuple[bytes, int]:
    value, special, pos = _decode_length(buf, pos)
    if not special:
        return buf[pos:pos + value], pos + value
    if value in (0, 1, 2):  # an integer stored as 1, 2 or 4 little-endian bytes
        size = 1 << value
        number = int.from_bytes(buf[pos:pos + size], "little", signed=True)
        return str(number).encode(), pos + size
    if value == 3:  # LZF
        clen, _, pos = _decode_length(buf, pos)
        ulen, _, pos = _decode_length(buf, pos)
        return _lzf_decompress(buf[pos:pos + clen], ulen), pos + clen
    raise ValueError(f"unknown string encoding {value}")


# ---------------------------------------------------------------- module values


@dataclass
class ModuleValue:
    """A module value as a list of (opcode, item): ints for SINT/UINT, bytes
    for STRING, raw 4/8 bytes for FLOAT/DOUBLE."""

    module_id: int
    fields: list[tuple[int, int | bytes]]
    rdb_version: int

    @property
    def encver(self) -> int:
        return self.module_id & ((1 << ENCVER_BITS) - 1)

    def with_encver(self, encver: int) -> ModuleValue:
        base = self.module_id & ~((1 << ENCVER_BITS) - 1)
        return ModuleValue(base | (encver & ((1 << ENCVER_BITS) - 1)), list(self.fields),
                           self.rdb_version)

    def encode(self) -> bytes:
        """The signed DUMP payload; strings are written raw."""
        out = bytearray([RDB_TYPE_MODULE_2])
        out += encode_length(self.module_id)
        for op, item in self.fields:
            out += encode_length(op)
            if op in (OP_SINT, OP_UINT):
                out += encode_length(int(item) & 0xFFFFFFFFFFFFFFFF)
            elif op == OP_STRING:
                out += encode_length(len(item)) + bytes(item)
            else:
                out += bytes(item)
        out += encode_length(OP_EOF)
        return sign(bytes(out), self.rdb_version)


def decode(payload: bytes) -> ModuleValue:
    """Parse a DUMP payload of a module type (raises ValueError otherwise)."""
    body, rdb_version = split(payload)
    if not body or body[0] != RDB_TYPE_MODULE_2:
        raise ValueError("not a module value")
    module_id, _, pos = _decode_length(body, 1)
    fields: list[tuple[int, int | bytes]] = []
    while True:
        op, _, pos = _decode_length(body, pos)
        if op == OP_EOF:
            break
        if op in (OP_SINT, OP_UINT):
            value, _, pos = _decode_length(body, pos)
            fields.append((op, value))
        elif op == OP_STRING:
            text, pos = _decode_string(body, pos)
            fields.append((op, text))
        elif op == OP_FLOAT:
            fields.append((op, body[pos:pos + 4]))
            pos += 4
        elif op == OP_DOUBLE:
            fields.append((op, body[pos:pos + 8]))
            pos += 8
        else:
            raise ValueError(f"unknown module opcode {op}")
    return ModuleValue(module_id, fields, rdb_version)
