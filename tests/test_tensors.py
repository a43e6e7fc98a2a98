"""User stories for AI.TENSORSET / AI.TENSORGET against a real server.

A tensor goes in as a BLOB (numpy's tobytes) or as VALUES and comes back as
the same bytes, the same numbers and the same shape, in every reply format
the reference lists (section 3): META, BLOB, VALUES, META BLOB, META VALUES,
and META+BLOB when no format is given.
"""

from __future__ import annotations

import numpy as np
import pytest
import redis

NUMERIC_DTYPES = {
    "FLOAT": np.float32,
    "DOUBLE": np.float64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "BOOL": np.bool_,
}
INTEGER_DTYPES = [name for name in NUMERIC_DTYPES if name not in ("FLOAT", "DOUBLE", "BOOL")]

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"


def tensorset(client: redis.Redis, key: str, dtype: str, *args: object) -> None:
    assert client.execute_command("AI.TENSORSET", key, dtype, *args) == b"OK"


def tensorget(client: redis.Redis, key: str, *fmt: str) -> object:
    return client.execute_command("AI.TENSORGET", key, *fmt)


def g17(value: float) -> bytes:
    """What TENSORGET VALUES sends for a FLOAT/DOUBLE element: %.17g of the double."""
    return b"%.17g" % value


def sample(dtype: str) -> np.ndarray:
    """A 2x3 array of `dtype` holding its extremes, zero and ordinary values."""
    np_type = NUMERIC_DTYPES[dtype]
    if dtype == "BOOL":
        return np.array([[True, False, True], [False, False, True]])
    if dtype in ("FLOAT", "DOUBLE"):
        info = np.finfo(np_type)
        # -0.0, a subnormal, infinities and a NaN with a payload: BLOB must keep every bit.
        nan = np.frombuffer(b"\x01\x00\xc0\x7f" if dtype == "FLOAT" else b"\x01\x00\x00\x00\x00\x00\xf8\x7f",
                            dtype=np_type)[0]
        return np.array([[info.max, info.min, -0.0], [info.smallest_subnormal, np.inf, nan]], dtype=np_type)
    info = np.iinfo(np_type)
    return np.array([[info.min, info.max, 0], [1, info.max // 3, info.min // 7]], dtype=np_type)


# --- BLOB round trips -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", list(NUMERIC_DTYPES))
def test_numpy_array_round_trips_bit_exact_through_blob(r, dtype):
    array = sample(dtype)
    tensorset(r, "t", dtype, 2, 3, "BLOB", array.tobytes())

    blob = tensorget(r, "t", "BLOB")
    assert blob == array.tobytes()
    back = np.frombuffer(blob, dtype=NUMERIC_DTYPES[dtype]).reshape(2, 3)
    assert back.tobytes() == array.tobytes()
    assert tensorget(r, "t", "META") == [b"dtype", dtype.encode(), b"shape", [2, 3]]


def test_string_tensor_round_trips_through_blob(r):
    # Three NUL-terminated UTF-8 elements, one of them empty.
    blob = "hello\0\0wörld\0".encode()
    tensorset(r, "s", "STRING", 3, "BLOB", blob)

    assert tensorget(r, "s", "BLOB") == blob
    assert tensorget(r, "s", "VALUES") == [b"hello", b"", "wörld".encode()]
    assert tensorget(r, "s", "META", "BLOB") == [b"dtype", b"STRING", b"shape", [3], b"blob", blob]


def test_a_four_megabyte_tensor_round_trips(r):
    array = np.arange(1 << 20, dtype=np.float32).reshape(1024, 1024) * np.float32(0.5)
    tensorset(r, "big", "FLOAT", 1024, 1024, "BLOB", array.tobytes())

    dtype, name, shape, dims, blob, data = tensorget(r, "big", "META", "BLOB")
    assert (dtype, name, shape, dims, blob) == (b"dtype", b"FLOAT", b"shape", [1024, 1024], b"blob")
    assert np.array_equal(np.frombuffer(data, dtype=np.float32).reshape(1024, 1024), array)


def test_a_tensor_may_have_up_to_64_dimensions(r):
    tensorset(r, "t", "INT8", *([1] * 63), 2, "VALUES", 7, -7)
    assert tensorget(r, "t", "META", "VALUES") == [
        b"dtype", b"INT8", b"shape", [1] * 63 + [2], b"values", [7, -7]]


# --- VALUES round trips -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", INTEGER_DTYPES)
def test_integer_values_span_the_whole_range_of_the_dtype(r, dtype):
    # Negative values for signed types are accepted on purpose (RedisAI rejects them).
    info = np.iinfo(NUMERIC_DTYPES[dtype])
    values = [int(info.min), int(info.max), 0, 1, int(info.min) + 1, int(info.max) - 1]
    tensorset(r, "t", dtype, 2, 3, "VALUES", *values)

    assert tensorget(r, "t", "VALUES") == values
    assert tensorget(r, "t", "BLOB") == np.array(values, dtype=NUMERIC_DTYPES[dtype]).tobytes()
    assert tensorget(r, "t", "META", "VALUES") == [
        b"dtype", dtype.encode(), b"shape", [2, 3], b"values", values]


def test_negative_values_are_accepted_for_every_signed_dtype(r):
    tensorset(r, "z", "INT8", 2, "VALUES", -1, -128)
    assert tensorget(r, "z", "VALUES") == [-1, -128]
    assert tensorget(r, "z", "BLOB") == b"\xff\x80"


def test_bool_values_are_zero_and_one(r):
    tensorset(r, "b", "BOOL", 2, 2, "VALUES", 1, 0, 0, 1)
    assert tensorget(r, "b", "VALUES") == [1, 0, 0, 1]
    assert tensorget(r, "b", "BLOB") == b"\x01\x00\x00\x01"


def test_float_values_come_back_widened_to_double_in_17_digits(r):
    tensorset(r, "f", "FLOAT", 6, "VALUES", "0.1", "1", "-2.5", "3.4028235e+38", "-1e-45", "0")

    assert tensorget(r, "f", "VALUES") == [
        b"0.10000000149011612",  # 0.1 is not exact in float32
        b"1",
        b"-2.5",
        b"3.4028234663852886e+38",  # numpy's spelling of FLT_MAX is read as FLT_MAX
        b"-1.4012984643248171e-45",  # the smallest subnormal
        b"0",
    ]
    expected = np.array([0.1, 1, -2.5, 3.4028235e38, -1e-45, 0], dtype=np.float32)
    assert tensorget(r, "f", "BLOB") == expected.tobytes()


def test_float_extremes_and_infinities_round_trip_through_values(r):
    info = np.finfo(np.float32)
    values = [info.max, info.min, info.tiny, info.smallest_subnormal, np.float32(np.inf), np.float32(-np.inf)]
    tensorset(r, "f", "FLOAT", 6, "VALUES", *(repr(float(v)) for v in values))

    assert tensorget(r, "f", "VALUES") == [g17(float(v)) for v in values]
    assert tensorget(r, "f", "BLOB") == np.array(values, dtype=np.float32).tobytes()


def test_double_values_keep_full_precision(r):
    info = np.finfo(np.float64)
    values = [0.1, float(info.max), float(info.min), 5e-324, -0.0, 1 / 3]
    tensorset(r, "d", "DOUBLE", 2, 3, "VALUES", *(repr(v) for v in values))

    assert tensorget(r, "d", "VALUES") == [
        b"0.10000000000000001",
        b"1.7976931348623157e+308",
        b"-1.7976931348623157e+308",
        b"4.9406564584124654e-324",
        b"-0",
        b"0.33333333333333331",
    ]
    assert tensorget(r, "d", "BLOB") == np.array(values, dtype=np.float64).tobytes()


def test_string_values_may_end_with_their_own_nul(r):
    tensorset(r, "s", "STRING", 2, 2, "VALUES", "a", "bc\0", "", "\0")

    assert tensorget(r, "s", "VALUES") == [b"a", b"bc", b"", b""]
    assert tensorget(r, "s", "BLOB") == b"a\0bc\0\0\0"


# --- reply shapes -----------------------------------------------------------------------------


@pytest.fixture
def floats(r):
    tensorset(r, "t", "FLOAT", 2, 2, "VALUES", 1, 2, 3, "0.5")
    return np.array([1, 2, 3, 0.5], dtype=np.float32).tobytes()


@pytest.mark.parametrize("fmt, reply", [
    pytest.param(("META",), [b"dtype", b"FLOAT", b"shape", [2, 2]], id="META"),
    pytest.param(("BLOB",), "blob", id="BLOB"),
    pytest.param(("VALUES",), [b"1", b"2", b"3", b"0.5"], id="VALUES"),
    pytest.param(("META", "BLOB"), [b"dtype", b"FLOAT", b"shape", [2, 2], b"blob", "blob"], id="META-BLOB"),
    pytest.param(("BLOB", "META"), [b"dtype", b"FLOAT", b"shape", [2, 2], b"blob", "blob"], id="BLOB-META"),
    pytest.param(("META", "VALUES"),
                 [b"dtype", b"FLOAT", b"shape", [2, 2], b"values", [b"1", b"2", b"3", b"0.5"]], id="META-VALUES"),
    pytest.param(("VALUES", "META"),
                 [b"dtype", b"FLOAT", b"shape", [2, 2], b"values", [b"1", b"2", b"3", b"0.5"]], id="VALUES-META"),
    pytest.param((), [b"dtype", b"FLOAT", b"shape", [2, 2], b"blob", "blob"], id="no-format"),
    pytest.param(("META", "META"), [b"dtype", b"FLOAT", b"shape", [2, 2]], id="META-twice"),
])
def test_tensorget_reply_shape_for_each_format(r, floats, fmt, reply):
    expected = floats if reply == "blob" else [floats if x == "blob" else x for x in reply]
    assert tensorget(r, "t", *fmt) == expected


def test_resp3_client_gets_the_same_data(server, r, floats):
    r3 = server.client(protocol=3)
    tensorset(r3, "s", "STRING", 2, "VALUES", "x", "yz")
    tensorset(r3, "i", "INT16", 3, "VALUES", -5, 0, 32767)
    for key in ("t", "s", "i"):
        for fmt in [(), ("META",), ("BLOB",), ("VALUES",), ("META", "BLOB"), ("META", "VALUES")]:
            assert tensorget(r3, key, *fmt) == tensorget(r, key, *fmt), (key, fmt)
    assert tensorget(r3, "t", "META", "VALUES") == [
        b"dtype", b"FLOAT", b"shape", [2, 2], b"values", [b"1", b"2", b"3", b"0.5"]]
    assert tensorget(r3, "i", "VALUES") == [-5, 0, 32767]


# --- scalars, zero fill, keywords, overwrite --------------------------------------------------


def test_scalar_tensor_has_an_empty_shape(r):
    tensorset(r, "s", "FLOAT", "VALUES", 3)
    assert tensorget(r, "s", "META", "VALUES") == [b"dtype", b"FLOAT", b"shape", [], b"values", [b"3"]]
    assert tensorget(r, "s", "BLOB") == np.float32(3).tobytes()

    tensorset(r, "i", "INT64", "BLOB", np.int64(-42).tobytes())
    assert tensorget(r, "i") == [b"dtype", b"INT64", b"shape", [], b"blob", np.int64(-42).tobytes()]
    assert tensorget(r, "i", "VALUES") == [-42]


@pytest.mark.parametrize("dtype", list(NUMERIC_DTYPES))
def test_shape_without_data_is_zero_filled(r, dtype):
    tensorset(r, "z", dtype, 2, 3)

    zeros = np.zeros((2, 3), dtype=NUMERIC_DTYPES[dtype])
    assert tensorget(r, "z") == [b"dtype", dtype.encode(), b"shape", [2, 3], b"blob", zeros.tobytes()]
    expected_values = [b"0"] * 6 if dtype in ("FLOAT", "DOUBLE") else [0] * 6
    assert tensorget(r, "z", "VALUES") == expected_values


def test_string_shape_without_data_is_empty_strings(r):
    tensorset(r, "z", "STRING", 3)
    assert tensorget(r, "z", "META", "VALUES") == [b"dtype", b"STRING", b"shape", [3], b"values", [b"", b"", b""]]
    assert tensorget(r, "z", "BLOB") == b"\0\0\0"


@pytest.mark.parametrize("spelling", ["float", "Float", "fLoAt"])
def test_dtype_is_case_insensitive(r, spelling):
    tensorset(r, "t", spelling, 2, "VALUES", 1, 2)
    assert tensorget(r, "t", "META") == [b"dtype", b"FLOAT", b"shape", [2]]


def test_commands_and_keywords_are_case_insensitive(r):
    assert r.execute_command("ai.tensorset", "a", "int8", 2, "values", 1, -1) == b"OK"
    assert r.execute_command("Ai.TensorSet", "b", "uInt16", 2, "bLoB", b"\x01\x00\x02\x00") == b"OK"
    assert r.execute_command("AI.TENSORSET", "c", "Bool", 1, "Values", 1) == b"OK"

    assert r.execute_command("ai.tensorget", "a", "meta", "values") == [
        b"dtype", b"INT8", b"shape", [2], b"values", [1, -1]]
    assert r.execute_command("AI.tensorGET", "b", "Values") == [1, 2]
    assert r.execute_command("ai.TENSORget", "c", "Blob", "Meta") == [
        b"dtype", b"BOOL", b"shape", [1], b"blob", b"\x01"]


def test_tensorset_overwrites_an_existing_tensor(r):
    tensorset(r, "t", "FLOAT", 2, 2, "VALUES", 1, 2, 3, 4)
    tensorset(r, "t", "INT8", 3, "VALUES", -1, 0, 1)
    assert tensorget(r, "t", "META", "VALUES") == [b"dtype", b"INT8", b"shape", [3], b"values", [-1, 0, 1]]

    tensorset(r, "t", "STRING", 1, "VALUES", "now a string")
    assert tensorget(r, "t", "VALUES") == [b"now a string"]

    tensorset(r, "t", "DOUBLE", 1)
    assert tensorget(r, "t") == [b"dtype", b"DOUBLE", b"shape", [1], b"blob", b"\0" * 8]
    assert r.dbsize() == 1
    assert r.type("t") == b"AI_TENSOR"


def test_binary_key_names_work(r):
    key = b"tensor\x00\xff:key"
    tensorset(r, key, "UINT8", 2, "BLOB", b"\xfe\x01")
    assert tensorget(r, key, "VALUES") == [254, 1]
    assert r.keys() == [key]


# --- WRONGTYPE --------------------------------------------------------------------------------


@pytest.mark.parametrize("make_key", [
    pytest.param(lambda r: r.set("k", "a string"), id="string"),
    pytest.param(lambda r: r.rpush("k", "a", "b"), id="list"),
    pytest.param(lambda r: r.hset("k", "field", "value"), id="hash"),
])
def test_a_key_of_another_type_gives_wrongtype_and_is_left_alone(r, make_key):
    make_key(r)
    dumped = r.dump("k")

    for command in [
        ("AI.TENSORSET", "k", "FLOAT", 1, "VALUES", 1),
        ("AI.TENSORSET", "k", "FLOAT", 2),
        ("AI.TENSORSET", "k", "NOT_A_TYPE", 0),  # the key is checked before any argument
        ("AI.TENSORGET", "k"),
        ("AI.TENSORGET", "k", "META", "VALUES"),
        ("AI.TENSORGET", "k", "NOT_A_FORMAT"),  # the key is checked before the format
    ]:
        with pytest.raises(redis.ResponseError) as err:
            r.execute_command(*command)
        assert str(err.value) == WRONGTYPE, command
    assert r.dump("k") == dumped


# --- the official client's usage --------------------------------------------------------------


def test_pipelined_tensorsets_like_redisai_py(r):
    """redisai-py's tensorset sends `AI.TENSORSET key DTYPE dims... BLOB bytes`; its
    tensorget sends `META BLOB` and rebuilds numpy with np.frombuffer(dtype=lower(DTYPE))."""
    rng = np.random.default_rng(7)
    arrays = {}
    for i in range(300):
        dtype = list(NUMERIC_DTYPES)[i % len(NUMERIC_DTYPES)]
        shape = (1 + i % 4, 1 + i % 5)
        if dtype == "BOOL":
            array = rng.integers(0, 2, size=shape).astype(np.bool_)
        elif dtype in ("FLOAT", "DOUBLE"):
            array = rng.standard_normal(shape).astype(NUMERIC_DTYPES[dtype])
        else:
            info = np.iinfo(NUMERIC_DTYPES[dtype])
            array = rng.integers(info.min, info.max, size=shape, dtype=NUMERIC_DTYPES[dtype], endpoint=True)
        arrays[f"tensor:{i}"] = (dtype, array)

    pipe = r.pipeline(transaction=False)
    for key, (dtype, array) in arrays.items():
        pipe.execute_command("AI.TENSORSET", key, dtype, *array.shape, "BLOB", array.tobytes())
    assert pipe.execute() == [b"OK"] * len(arrays)

    pipe = r.pipeline(transaction=True)  # redisai-py's default: MULTI/EXEC
    for key in arrays:
        pipe.execute_command("AI.TENSORGET", key, "META", "BLOB")
    replies = pipe.execute()

    for (key, (dtype, array)), reply in zip(arrays.items(), replies):
        meta = dict(zip(reply[::2], reply[1::2]))
        assert meta[b"dtype"] == dtype.encode(), key
        np_name = {"FLOAT": "float32", "DOUBLE": "float64"}.get(dtype, dtype.lower())
        back = np.frombuffer(meta[b"blob"], dtype=np_name).reshape(meta[b"shape"])
        assert back.dtype == array.dtype
        assert back.tobytes() == array.tobytes(), key
    assert r.dbsize() == len(arrays)


def test_pipelined_values_tensorsets_like_redisai_py_lists(r):
    """A list given to redisai-py's tensorset becomes `AI.TENSORSET key DTYPE len VALUES v...`."""
    pipe = r.pipeline()
    for i in range(100):
        pipe.execute_command("AI.TENSORSET", f"v:{i}", "INT32", 3, "VALUES", i, -i, i * 1000)
        pipe.execute_command("AI.TENSORGET", f"v:{i}", "META", "VALUES")
    replies = pipe.execute()
    for i in range(100):
        assert replies[2 * i] == b"OK"
        assert replies[2 * i + 1] == [b"dtype", b"INT32", b"shape", [3], b"values", [i, -i, i * 1000]]
