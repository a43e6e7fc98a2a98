"""Every parser path of AI.TENSORSET / AI.TENSORGET that rejects its input.

Each story stores a few keys first (among them the tensor `t` the bad
command aims at), sends one bad command, and checks the exact error text
(redis-py strips the leading "ERR ") and that nothing stored has changed.
Texts come from reference sections 2 and 3; the ones the reference has no
text for (too many dims, shape overflow, too large) come from csrc/commands/parse.c.

The stories share one server, started once for this file: each begins with
FLUSHALL and its own keys, and each ends by proving the server still answers
with its keyspace intact, so a case that hurt the server fails right there.
"""

from __future__ import annotations


import numpy as np
import pytest
import redis

from conftest import RedisServer
from keyspace import assert_intact, snapshot

ARITY_SET = "wrong number of arguments for 'AI.TENSORSET' command"
ARITY_GET = "wrong number of arguments for 'AI.TENSORGET' command"
BAD_DTYPE = "invalid data type"
BAD_SHAPE = "invalid or negative value found in tensor shape"
TOO_MANY_DIMS = "tensor has too many dimensions (at most 64)"
SHAPE_OVERFLOW = "tensor shape is too large: the product of its dimensions overflows"
TOO_LARGE = "tensor is too large: its data would exceed 536870912 bytes"
BLOB_ARGS = "a single binary string should come after the BLOB argument in 'AI.TENSORSET' command"
BLOB_LENGTH = "data length does not match tensor shape and type"
BOOL_BLOB = "BOOL tensor elements must be 0 or 1"
STRING_BLOB = "Number of string elements in data blob does not match tensor length"
VALUES_COUNT = "wrong number of values was given in 'AI.TENSORSET' command"
BAD_VALUE = "invalid value"
NUL_IN_STRING = "C-string value contains null character"
BAD_FORMAT = "unsupported data format"
BLOB_AND_VALUES = "both BLOB and VALUES specified"
EMPTY_KEY = "tensor key is empty or in a different shard"
WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"

FLOATS = np.array([[1, 2], [3, 4]], dtype=np.float32)


@pytest.fixture
def r(shared_server: RedisServer, request: pytest.FixtureRequest) -> redis.Redis:
    """A client of the shared server, holding: `t` (the target of every bad
    TENSORSET), a STRING tensor, a BOOL tensor and a plain string key."""
    request.node.redis_servers = [shared_server]  # conftest attaches its log on failure
    client = shared_server.client(socket_timeout=10)  # a missing reply fails, not hangs
    client.flushall()
    client.execute_command("AI.TENSORSET", "t", "FLOAT", 2, 2, "BLOB", FLOATS.tobytes())
    client.execute_command("AI.TENSORSET", "names", "STRING", 2, "VALUES", "ada", "grace")
    client.execute_command("AI.TENSORSET", "flags", "BOOL", 3, "VALUES", 1, 0, 1)
    client.set("plain", "not a tensor")
    return client


def assert_rejected(r: redis.Redis, command: tuple[object, ...], message: str) -> None:
    before = snapshot(r)
    with pytest.raises(redis.ResponseError) as err:
        r.execute_command(*command)
    assert str(err.value) == message
    assert_intact(r, before)
    # The target still reads back exactly as stored.
    assert r.execute_command("AI.TENSORGET", "t", "BLOB") == FLOATS.tobytes()


def tensorset(*args: object) -> tuple[object, ...]:
    return ("AI.TENSORSET", "t", *args)


def tensorget(*args: object) -> tuple[object, ...]:
    return ("AI.TENSORGET", *args)


# --- arity ------------------------------------------------------------------------------------


@pytest.mark.parametrize("command, message", [
    pytest.param(("AI.TENSORSET",), ARITY_SET, id="set-no-key"),
    pytest.param(("AI.TENSORSET", "t"), ARITY_SET, id="set-no-type"),
    pytest.param(("AI.TENSORSET", "t", "FLOAT"), ARITY_SET, id="set-type-only"),
    pytest.param(("AI.TENSORSET", "plain", "FLOAT"), ARITY_SET, id="set-arity-before-wrongtype"),
    pytest.param(("ai.TensorSet", "t", "FLOAT"), "wrong number of arguments for 'ai.TensorSet' command",
                 id="set-echoes-client-spelling"),
    pytest.param(("AI.TENSORGET",), ARITY_GET, id="get-no-key"),
    pytest.param(("AI.TENSORGET", "t", "META", "BLOB", "VALUES"), ARITY_GET, id="get-three-formats"),
    pytest.param(("AI.TENSORGET", "t", "META", "BLOB", "META", "BLOB"), ARITY_GET, id="get-four-formats"),
    pytest.param(("AI.TENSORGET", "missing", "a", "b", "c"), ARITY_GET, id="get-arity-before-key"),
    pytest.param(("ai.tensorget",), "wrong number of arguments for 'ai.tensorget' command",
                 id="get-echoes-client-spelling"),
])
def test_wrong_number_of_arguments(r, command, message):
    assert_rejected(r, command, message)


# --- dtype ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [
    "UINT32", "UINT64", "INT128", "FLOAT16", "FLOAT32", "FLOAT64", "INT", "INT08", "BOOLEAN",
    "STR", "garbage", "", "FLOAT ",
])
def test_unsupported_dtype(r, dtype):
    assert_rejected(r, tensorset(dtype, 2, "VALUES", 1, 0), BAD_DTYPE)


def test_dtype_is_checked_before_the_shape_and_data(r):
    assert_rejected(r, tensorset("UINT32", -1, "BLOB"), BAD_DTYPE)


# --- shape ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dims", [
    pytest.param((0,), id="zero"),
    pytest.param((-1,), id="negative"),
    pytest.param((2, 0), id="zero-after-a-good-dim"),
    pytest.param((2, -3), id="negative-after-a-good-dim"),
    pytest.param(("2.0",), id="not-an-integer"),
    pytest.param(("1e3",), id="exponent"),
    pytest.param(("two",), id="word"),
    pytest.param(("",), id="empty"),
    pytest.param((" 2",), id="leading-space"),
    pytest.param(("+2",), id="plus-sign"),
    pytest.param(("9223372036854775808",), id="beyond-int64"),
])
def test_dims_must_be_positive_integers(r, dims):
    assert_rejected(r, tensorset("FLOAT", *dims, "VALUES", 1), BAD_SHAPE)
    assert_rejected(r, tensorset("FLOAT", *dims), BAD_SHAPE)


def test_a_bad_dim_is_reported_before_a_bad_blob_count(r):
    assert_rejected(r, tensorset("FLOAT", 0, "BLOB", "a", "b"), BAD_SHAPE)


def test_more_than_64_dims(r):
    assert_rejected(r, tensorset("FLOAT", *([1] * 65), "VALUES", 1), TOO_MANY_DIMS)
    assert_rejected(r, tensorset("INT8", *([1] * 65)), TOO_MANY_DIMS)
    assert_rejected(r, tensorset("INT8", *([1] * 100), "BLOB", b"\x00"), TOO_MANY_DIMS)


@pytest.mark.parametrize("dims", [
    pytest.param((4294967296, 4294967296, 4294967296), id="2^96"),
    pytest.param((4294967296, 4294967296), id="2^64"),
    pytest.param((9223372036854775807, 3), id="int64max-times-3"),
])
def test_shape_whose_element_count_overflows_64_bits(r, dims):
    assert_rejected(r, tensorset("FLOAT", *dims), SHAPE_OVERFLOW)
    assert_rejected(r, tensorset("STRING", *dims, "BLOB", b"\0"), SHAPE_OVERFLOW)
    assert_rejected(r, tensorset("INT8", *dims, "VALUES", 1), SHAPE_OVERFLOW)


@pytest.mark.parametrize("dtype, dims", [
    pytest.param("FLOAT", (1000000, 1000), id="FLOAT-4GB"),
    pytest.param("FLOAT", (134217729,), id="FLOAT-one-element-over-512MiB"),
    pytest.param("DOUBLE", (67108865,), id="DOUBLE-one-element-over-512MiB"),
    pytest.param("INT64", (9223372036854775807,), id="INT64-bytes-overflow"),
    pytest.param("UINT8", (1024, 1024, 513), id="UINT8-513MiB"),
    pytest.param("STRING", (536870913,), id="STRING-one-empty-string-over-512MiB"),
])
def test_zero_filled_shape_whose_data_would_exceed_512_mib(r, dtype, dims):
    assert_rejected(r, tensorset(dtype, *dims), TOO_LARGE)


@pytest.mark.parametrize("dtype, dims, blob, message", [
    # A blob that cannot match a shape this large is merely the wrong length, as in RedisAI.
    pytest.param("FLOAT", (1000000, 1000), FLOATS.tobytes(), BLOB_LENGTH, id="FLOAT-4GB"),
    # 2^62 floats are 2^64 bytes: the byte count wraps to 0 and must not match an empty blob.
    pytest.param("FLOAT", (4611686018427387904,), b"", BLOB_LENGTH, id="FLOAT-bytes-wrap-to-zero"),
    pytest.param("STRING", (536870913,), b"a\0", STRING_BLOB, id="STRING"),
])
def test_blob_for_a_huge_shape(r, dtype, dims, blob, message):
    assert_rejected(r, tensorset(dtype, *dims, "BLOB", blob), message)


def test_values_for_a_huge_shape_are_simply_too_few(r):
    assert_rejected(r, tensorset("FLOAT", 1000000, 1000, "VALUES", 1, 2), VALUES_COUNT)


# --- BLOB -------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    pytest.param(("FLOAT", 2, 2, "BLOB"), id="nothing-after-BLOB"),
    pytest.param(("FLOAT", "BLOB"), id="scalar-nothing-after-BLOB"),
    pytest.param(("FLOAT", 2, 2, "BLOB", FLOATS.tobytes(), FLOATS.tobytes()), id="two-blobs"),
    pytest.param(("FLOAT", 2, "BLOB", b"\0" * 4, b"\0" * 4), id="blob-split-in-two"),
    pytest.param(("FLOAT", "BLOB", b"\0" * 4, 2), id="dims-after-the-blob"),
    pytest.param(("STRING", 1, "BLOB"), id="STRING-nothing-after-BLOB"),
])
def test_blob_must_be_followed_by_exactly_one_argument(r, args):
    assert_rejected(r, tensorset(*args), BLOB_ARGS)


@pytest.mark.parametrize("dtype, dims, blob", [
    pytest.param("FLOAT", (2, 2), FLOATS.tobytes()[:-1], id="FLOAT-truncated-by-one"),
    pytest.param("FLOAT", (2, 2), FLOATS.tobytes()[:8], id="FLOAT-half"),
    pytest.param("FLOAT", (2, 2), FLOATS.tobytes() + b"\0", id="FLOAT-one-byte-too-long"),
    pytest.param("FLOAT", (2, 2), b"", id="FLOAT-empty"),
    pytest.param("FLOAT", (), b"\0" * 8, id="FLOAT-scalar-with-a-double"),
    pytest.param("DOUBLE", (2, 2), FLOATS.tobytes(), id="DOUBLE-given-float32-bytes"),
    pytest.param("INT8", (3,), b"\x01\x02", id="INT8-short"),
    pytest.param("INT16", (3,), b"\x01\x00\x02\x00\x03", id="INT16-odd-length"),
    pytest.param("INT32", (2,), b"\0" * 12, id="INT32-long"),
    pytest.param("INT64", (1, 1), b"\0" * 7, id="INT64-short"),
    pytest.param("UINT8", (4,), b"\x01\x02\x03", id="UINT8-short"),
    pytest.param("UINT16", (2,), b"\0" * 2, id="UINT16-short"),
    pytest.param("BOOL", (2,), b"\x01", id="BOOL-short"),
    pytest.param("BOOL", (2,), b"\x01\x00\x01", id="BOOL-long"),
])
def test_blob_length_must_match_shape_and_dtype(r, dtype, dims, blob):
    assert_rejected(r, tensorset(dtype, *dims, "BLOB", blob), BLOB_LENGTH)


@pytest.mark.parametrize("blob", [
    pytest.param(b"\x01\x02\x00\x01", id="2-in-the-middle"),
    pytest.param(b"\x01\x00\x01\x02", id="2-as-last-byte"),  # RedisAI skips the last byte; we don't
    pytest.param(b"\xff\x00\x00\x00", id="0xff"),
    pytest.param(b"\x00\x00\x80\x00", id="0x80"),
])
def test_bool_blob_bytes_must_be_0_or_1(r, blob):
    assert_rejected(r, tensorset("BOOL", 4, "BLOB", blob), BOOL_BLOB)


@pytest.mark.parametrize("dims, blob", [
    pytest.param((2,), b"a\0b", id="last-not-NUL-terminated"),
    pytest.param((1,), b"abc", id="no-NUL-at-all"),
    pytest.param((2,), b"a\0b\0c\0", id="three-pieces-for-two"),
    pytest.param((2,), b"a\0", id="one-piece-for-two"),
    pytest.param((1,), b"", id="empty-blob"),
    pytest.param((2, 2), b"\0\0\0", id="three-empty-for-four"),
    pytest.param((), b"a\0b\0", id="scalar-with-two-pieces"),
])
def test_string_blob_must_hold_one_nul_terminated_piece_per_element(r, dims, blob):
    assert_rejected(r, tensorset("STRING", *dims, "BLOB", blob), STRING_BLOB)


# --- VALUES -----------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    pytest.param(("FLOAT", 2, 2, "VALUES", 1, 2, 3), id="one-too-few"),
    pytest.param(("FLOAT", 2, 2, "VALUES", 1, 2, 3, 4, 5), id="one-too-many"),
    pytest.param(("FLOAT", 2, 2, "VALUES"), id="none"),
    pytest.param(("FLOAT", "VALUES"), id="scalar-none"),
    pytest.param(("FLOAT", "VALUES", 1, 2), id="scalar-two"),
    pytest.param(("STRING", 3, "VALUES", "a", "b"), id="STRING-too-few"),
    pytest.param(("INT8", 2, "VALUES", 1, "VALUES", 2), id="VALUES-twice"),
])
def test_values_count_must_match_shape(r, args):
    assert_rejected(r, tensorset(*args), VALUES_COUNT)


@pytest.mark.parametrize("dtype, value", [
    ("INT8", 128), ("INT8", -129),
    ("INT16", 32768), ("INT16", -32769),
    ("INT32", 2147483648), ("INT32", -2147483649),
    ("INT64", "9223372036854775808"), ("INT64", "-9223372036854775809"),
    ("UINT8", 256), ("UINT8", -1),
    ("UINT16", 65536), ("UINT16", -1),
    ("BOOL", 2), ("BOOL", -1),
])
def test_integer_values_out_of_the_dtype_range(r, dtype, value):
    assert_rejected(r, tensorset(dtype, 3, "VALUES", 0, 1, value), BAD_VALUE)


@pytest.mark.parametrize("dtype, value", [
    pytest.param("FLOAT", "abc", id="FLOAT-word"),
    pytest.param("FLOAT", "", id="FLOAT-empty"),
    pytest.param("FLOAT", "nan", id="FLOAT-nan"),
    pytest.param("FLOAT", "1.5x", id="FLOAT-trailing-garbage"),
    pytest.param("FLOAT", " 1", id="FLOAT-leading-space"),
    pytest.param("FLOAT", "1e39", id="FLOAT-1e39-beyond-float-range"),
    pytest.param("FLOAT", "-1e39", id="FLOAT-minus-1e39"),
    pytest.param("FLOAT", "3.4028236e+38", id="FLOAT-rounds-to-infinity"),
    pytest.param("DOUBLE", "1e309", id="DOUBLE-beyond-double-range"),
    pytest.param("DOUBLE", "1,5", id="DOUBLE-comma"),
    pytest.param("INT32", "1.87", id="INT32-fraction"),
    pytest.param("INT32", "1.0", id="INT32-point-zero"),
    pytest.param("INT64", "1e3", id="INT64-exponent"),
    pytest.param("INT8", "0x10", id="INT8-hex"),
    pytest.param("UINT8", "one", id="UINT8-word"),
    pytest.param("INT16", "", id="INT16-empty"),
    pytest.param("BOOL", "true", id="BOOL-true"),
])
def test_values_that_do_not_parse(r, dtype, value):
    assert_rejected(r, tensorset(dtype, 2, "VALUES", 1, value), BAD_VALUE)


def test_the_first_bad_value_fails_the_whole_tensor(r):
    # The target keeps its old value even though most values were good.
    assert_rejected(r, tensorset("FLOAT", 2, 2, "VALUES", 9, 9, 9, "x"), BAD_VALUE)
    assert_rejected(r, tensorset("INT8", 4, "VALUES", 1, 2, 300, "x"), BAD_VALUE)


@pytest.mark.parametrize("value", [
    pytest.param("a\0b", id="inner-NUL"),
    pytest.param("ab\0\0", id="two-trailing-NULs"),
    pytest.param("\0a", id="leading-NUL"),
    pytest.param("\0\0", id="two-NULs"),
])
def test_string_values_may_not_hold_a_nul_of_their_own(r, value):
    assert_rejected(r, tensorset("STRING", 2, "VALUES", "fine", value), NUL_IN_STRING)


# --- TENSORSET on a key of another type --------------------------------------------------------


def test_tensorset_on_a_string_key_is_wrongtype_before_any_argument_check(r):
    assert_rejected(r, ("AI.TENSORSET", "plain", "FLOAT", 1, "VALUES", 1), WRONGTYPE)
    assert_rejected(r, ("AI.TENSORSET", "plain", "UINT32", 0, "BLOB"), WRONGTYPE)


# --- TENSORGET --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [
    pytest.param(("BLOBS",), id="BLOBS"),
    pytest.param(("JSON",), id="JSON"),
    pytest.param(("",), id="empty"),
    pytest.param(("META", "SHAPE"), id="META-then-unknown"),
    pytest.param(("values", "x"), id="VALUES-then-unknown"),
    pytest.param(("x", "VALUES"), id="unknown-before-VALUES"),
    pytest.param(("BLOB", "VALUES "), id="VALUES-with-a-trailing-space"),
])
def test_tensorget_unsupported_format(r, fmt):
    assert_rejected(r, tensorget("t", *fmt), BAD_FORMAT)


@pytest.mark.parametrize("fmt", [
    pytest.param(("BLOB", "VALUES"), id="BLOB-VALUES"),
    pytest.param(("values", "blob"), id="values-blob"),
    pytest.param(("Blob", "Values"), id="mixed-case"),
])
def test_tensorget_blob_and_values_together(r, fmt):
    assert_rejected(r, tensorget("t", *fmt), BLOB_AND_VALUES)


@pytest.mark.parametrize("fmt", [
    pytest.param((), id="no-format"),
    pytest.param(("META",), id="META"),
    pytest.param(("VALUES",), id="VALUES"),
    pytest.param(("bogus",), id="key-checked-before-format"),
    pytest.param(("BLOB", "VALUES"), id="key-checked-before-BLOB-VALUES"),
])
def test_tensorget_on_a_missing_key(r, fmt):
    assert_rejected(r, tensorget("missing", *fmt), EMPTY_KEY)


def test_tensorget_on_a_deleted_tensor(r):
    r.delete("names")
    assert_rejected(r, tensorget("names", "VALUES"), EMPTY_KEY)


@pytest.mark.parametrize("fmt", [(), ("META",), ("bogus",), ("BLOB", "VALUES")])
def test_tensorget_on_a_string_key_is_wrongtype_before_the_format(r, fmt):
    assert_rejected(r, tensorget("plain", *fmt), WRONGTYPE)
