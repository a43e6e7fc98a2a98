"""Every parser path of the AI.MODEL* commands that rejects its input, and
models that cannot be made or cannot run.

Each story starts from the same keyspace: the ONNX model `m` (a, b FLOAT [2]
-> sum, product; tag "keep"), the tensors `a` and `b`, and the string `plain`.
It sends one bad command, checks the exact error text (redis-py strips a
leading "ERR "; texts without it, such as the INPUTS/OUTPUTS count mismatch,
come through unchanged) and ends by proving that the server still answers,
that nothing stored has changed and that `m` still serves.

Texts come from reference section 3 (parsers) and section 5 (backends); our
arity errors echo the command as typed, except MODELEXECUTE/MODELRUN, which
hard-code the upper-case name as RedisAI does.

The stories share one server, started once for this file, with FLUSHALL
before each.
"""

from __future__ import annotations

import functools
import io
import warnings

import numpy as np
import pytest
import redis

import model_builders as mb
from conftest import RedisServer
from keyspace import assert_intact, snapshot

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
MODEL_EMPTY = "model key is empty"
TENSOR_EMPTY = "tensor key is empty or in a different shard"
NO_RUN_INFO = "cannot find run info for key"
INVALID_DEVICE = "Invalid DEVICE"
MISSING_BLOB = "Insufficient arguments, missing model BLOB"
EXPECTED_BLOB = "Invalid argument, expected BLOB"
INPUTS_MISMATCH = "Number of keys given as INPUTS here does not match model definition"
OUTPUTS_MISMATCH = "Number of keys given as OUTPUTS here does not match model definition"
EXECUTE_ARITY = "wrong number of arguments for 'AI.MODELEXECUTE' command"
RUN_ARITY = "wrong number of arguments for 'AI.MODELRUN' command"

# Counts near the integer limits: each once made the parser index past argv
# (the sum position + count wrapped) or a deadline wrap into the past.
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
BEYOND_INT64 = 2**64

A = np.array([1, 2], dtype=np.float32)
B = np.array([3, 5], dtype=np.float32)


def arity(command: str) -> str:
    return f"wrong number of arguments for '{command}' command"


# ---------------------------------------------------------------------------
# models


@functools.cache
def onnx_add() -> bytes:
    return mb.onnx_add()


@functools.cache
def torch_add() -> bytes:
    return mb.torch_add()


@functools.cache
def tf_mul() -> bytes:
    return mb.tf_graph_def_mul()


@functools.cache
def tf_saved_model() -> bytes:
    return mb.tf_saved_model_archive("tar")


@functools.cache
def tflite_add_mul() -> bytes:
    return mb.tflite_add_mul()


@functools.cache
def onnx_sum7() -> bytes:
    """ONNX Sum of seven FLOAT [2] inputs x0..x6: a model with many inputs."""
    from onnx import TensorProto, helper

    names = [f"x{i}" for i in range(7)]
    graph = helper.make_graph(
        [helper.make_node("Sum", names, ["total"])], "sum7",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in names],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", mb.ONNX_OPSET)])
    model.ir_version = mb.ONNX_IR_VERSION
    return model.SerializeToString()


@functools.cache
def torch_refuses_negatives() -> bytes:
    """TorchScript forward(x) -> x * 2 that raises on any negative element."""
    import torch

    class RefuseNegatives(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if bool((x < 0).any()):
                raise ValueError("negative input is not allowed")
            return x * 2

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(RefuseNegatives()), buffer)
    return buffer.getvalue()


# ---------------------------------------------------------------------------
# fixtures and checks


def tensorset(r: redis.Redis, key: str, array: np.ndarray) -> None:
    dtype = {np.dtype(np.float32): "FLOAT", np.dtype(np.int32): "INT32"}[array.dtype]
    assert r.execute_command("AI.TENSORSET", key, dtype, *array.shape, "BLOB", array.tobytes()) == b"OK"


def tensor_values(r: redis.Redis, key: str) -> np.ndarray:
    return np.frombuffer(r.execute_command("AI.TENSORGET", key, "BLOB"), dtype=np.float32)


@pytest.fixture
def r(shared_server: RedisServer, request: pytest.FixtureRequest) -> redis.Redis:
    request.node.redis_servers = [shared_server]  # conftest attaches its log on failure
    client = shared_server.client(socket_timeout=60)  # a missing reply fails, not hangs
    client.flushall()
    assert client.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "TAG", "keep",
                                  "BLOB", onnx_add()) == b"OK"
    tensorset(client, "a", A)
    tensorset(client, "b", B)
    client.set("plain", "not a model")
    return client


def assert_m_serves(r: redis.Redis) -> None:
    """`m` is the model the fixture stored, with no runs counted, and it still runs
    (that run is then taken off its counters again)."""
    meta = r.execute_command("AI.MODELGET", "m", "META", "BLOB")
    assert meta[:6] == [b"backend", b"ONNX", b"device", b"CPU", b"tag", b"keep"]
    assert meta[17] == onnx_add()
    info = r.execute_command("AI.INFO", "m")
    assert info[14:18] == [b"calls", 0, b"errors", 0]
    assert r.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "b",
                             "OUTPUTS", 2, "check_sum", "check_product") == b"OK"
    np.testing.assert_array_equal(tensor_values(r, "check_sum"), A + B)
    np.testing.assert_array_equal(tensor_values(r, "check_product"), A * B)
    r.delete("check_sum", "check_product")
    assert r.execute_command("AI.INFO", "m", "RESETSTAT") == b"OK"


def assert_rejected(r: redis.Redis, command: tuple[object, ...], message: str) -> None:
    """The command fails with exactly `message`, and nothing stored changes."""
    before = snapshot(r)
    with pytest.raises(redis.ResponseError) as err:
        r.execute_command(*command)
    assert str(err.value) == message
    assert_intact(r, before)
    assert_m_serves(r)


def store(*args: object) -> tuple[object, ...]:
    return ("AI.MODELSTORE", "m", *args)


# ---------------------------------------------------------------------------
# AI.MODELSTORE

STORE_CASES = {
    "arity": (("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB"), arity("AI.MODELSTORE")),
    "arity_as_typed": (("ai.modelstore", "m", "ONNX", "CPU", "BLOB"), arity("ai.modelstore")),
    "arity_two_args": (("AI.MODELSTORE", "m"), arity("AI.MODELSTORE")),
    "backend": (store("PYTORCH", "CPU", "BLOB", "x"), "unsupported backend"),
    "backend_empty": (store("", "CPU", "BLOB", "x"), "unsupported backend"),
    "device_double_colon": (store("ONNX", "CPU::", "BLOB", "x"), INVALID_DEVICE),
    "device_fraction": (store("ONNX", "CPU:1.8", "BLOB", "x"), INVALID_DEVICE),
    "device_too_long": (store("ONNX", "CPU:123456", "BLOB", "x"), INVALID_DEVICE),
    "device_word": (store("ONNX", "bad_device", "BLOB", "x"), INVALID_DEVICE),
    "device_no_index": (store("ONNX", "GPU:", "BLOB", "x"), INVALID_DEVICE),
    "device_no_colon": (store("ONNX", "CPU1", "BLOB", "x"), INVALID_DEVICE),
    "device_empty": (store("ONNX", "", "BLOB", "x"), INVALID_DEVICE),
    "device_tpu": (store("ONNX", "TPU", "BLOB", "x"), INVALID_DEVICE),
    "batchsize_word": (store("ONNX", "CPU", "BATCHSIZE", "many", "BLOB", "x"),
                       "Invalid argument for BATCHSIZE"),
    "batchsize_negative": (store("ONNX", "CPU", "BATCHSIZE", -1, "BLOB", "x"),
                           "Invalid argument for BATCHSIZE"),
    "batchsize_no_value": (store("ONNX", "CPU", "TAG", "t", "BATCHSIZE"),
                           "Invalid argument for BATCHSIZE"),
    "minbatchsize_word": (store("ONNX", "CPU", "BATCHSIZE", 4, "MINBATCHSIZE", "x", "BLOB", "x"),
                          "Invalid argument for MINBATCHSIZE"),
    "minbatchsize_without_batchsize": (store("ONNX", "CPU", "MINBATCHSIZE", 2, "BLOB", "x"),
                                       "MINBATCHSIZE specified without BATCHSIZE"),
    "minbatchsize_with_batchsize_0": (
        store("ONNX", "CPU", "BATCHSIZE", 0, "MINBATCHSIZE", 2, "BLOB", "x"),
        "MINBATCHSIZE specified without BATCHSIZE"),
    "minbatchtimeout_word": (
        store("ONNX", "CPU", "BATCHSIZE", 4, "MINBATCHSIZE", 2, "MINBATCHTIMEOUT", "soon", "BLOB", "x"),
        "Invalid argument for MINBATCHTIMEOUT"),
    "minbatchtimeout_without_minbatchsize": (
        store("ONNX", "CPU", "BATCHSIZE", 4, "MINBATCHTIMEOUT", 10, "BLOB", "x"),
        "MINBATCHTIMEOUT specified without MINBATCHSIZE"),
    "minbatchtimeout_alone": (store("ONNX", "CPU", "MINBATCHTIMEOUT", 10, "BLOB", "x"),
                              "MINBATCHTIMEOUT specified without MINBATCHSIZE"),
    "nothing_after_tag": (store("ONNX", "CPU", "TAG", "t"), MISSING_BLOB),
    "nothing_after_batchsize": (store("ONNX", "CPU", "BATCHSIZE", 2), MISSING_BLOB),
    "nothing_after_blob": (store("ONNX", "CPU", "TAG", "t", "BLOB"), MISSING_BLOB),
    "no_blob_keyword": (store("ONNX", "CPU", "DATA", "x"), EXPECTED_BLOB),
    "options_out_of_order": (store("ONNX", "CPU", "BATCHSIZE", 2, "TAG", "t", "BLOB", "x"),
                             EXPECTED_BLOB),
    "tf_without_inputs": (store("TF", "CPU", "BLOB", "x"), "INPUTS not specified for TF"),
    "tf_outputs_first": (store("TF", "CPU", "OUTPUTS", 1, "mul", "BLOB", "x"),
                         "INPUTS not specified for TF"),
    "tf_input_count_word": (store("TF", "CPU", "INPUTS", "two", "a", "b", "BLOB", "x"),
                            "Invalid argument for input_count"),
    "tf_input_count_zero": (store("TF", "CPU", "INPUTS", 0, "OUTPUTS", 1, "mul", "BLOB", "x"),
                            "Invalid argument for input_count"),
    "tf_input_count_negative": (store("TF", "CPU", "INPUTS", -1, "a", "BLOB", "x"),
                                "Invalid argument for input_count"),
    "tf_too_few_inputs": (store("TF", "CPU", "INPUTS", 5, "a", "b", "BLOB", "x"),
                          "number of model inputs does not match the number of given arguments"),
    "tf_without_outputs": (store("TF", "CPU", "INPUTS", 2, "a", "b", "BLOB", "x"),
                           "OUTPUTS not specified for TF"),
    "tf_output_count_word": (store("TF", "CPU", "INPUTS", 2, "a", "b", "OUTPUTS", "one", "mul",
                                   "BLOB", "x"), "Invalid argument for output_count"),
    "tf_output_count_zero": (store("TF", "CPU", "INPUTS", 2, "a", "b", "OUTPUTS", 0, "BLOB", "x"),
                             "Invalid argument for output_count"),
    "tf_too_few_outputs": (store("TF", "CPU", "INPUTS", 1, "a", "OUTPUTS", 4, "mul", "BLOB", "x"),
                           "number of model outputs does not match the number of given arguments"),
    "tf_nothing_after_outputs": (store("TF", "CPU", "INPUTS", 1, "a", "OUTPUTS", 1, "mul"),
                                 EXPECTED_BLOB),
    "tf_input_count_int64_max": (store("TF", "CPU", "INPUTS", INT64_MAX, "a", "BLOB", "x"),
                                 "number of model inputs does not match the number of given arguments"),
    "tf_input_count_2_31": (store("TF", "CPU", "INPUTS", 2**31, "a", "OUTPUTS", 1, "mul", "BLOB", "x"),
                            "number of model inputs does not match the number of given arguments"),
    "tf_input_count_2_32_plus_1": (store("TF", "CPU", "INPUTS", 2**32 + 1, "a", "BLOB", "x"),
                                   "number of model inputs does not match the number of given arguments"),
    "tf_input_count_int64_min": (store("TF", "CPU", "INPUTS", INT64_MIN, "a", "BLOB", "x"),
                                 "Invalid argument for input_count"),
    "tf_input_count_beyond_int64": (store("TF", "CPU", "INPUTS", BEYOND_INT64, "a", "BLOB", "x"),
                                    "Invalid argument for input_count"),
    "tf_output_count_int64_max": (store("TF", "CPU", "INPUTS", 1, "a", "OUTPUTS", INT64_MAX, "mul",
                                        "BLOB", "x"),
                                  "number of model outputs does not match the number of given arguments"),
    "batchsize_beyond_int64": (store("ONNX", "CPU", "BATCHSIZE", BEYOND_INT64, "BLOB", "x"),
                               "Invalid argument for BATCHSIZE"),
    "onnx_with_inputs": (store("ONNX", "CPU", "INPUTS", 1, "a", "OUTPUTS", 1, "b", "BLOB", "x"),
                         "INPUTS argument should not be specified for this backend"),
    "torch_with_inputs": (store("TORCH", "CPU", "TAG", "t", "INPUTS", 2, "a", "b", "BLOB", "x"),
                          "INPUTS argument should not be specified for this backend"),
    "tflite_with_inputs": (store("TFLITE", "CPU", "INPUTS", 1, "a", "BLOB", "x"),
                           "INPUTS argument should not be specified for this backend"),
    "wrongtype_string": (("AI.MODELSTORE", "plain", "ONNX", "CPU", "BLOB", onnx_add), WRONGTYPE),
    "wrongtype_tensor": (("AI.MODELSTORE", "a", "TORCH", "CPU", "BLOB", torch_add), WRONGTYPE),
    "tf_unknown_input_node": (store("TF", "CPU", "INPUTS", 2, "a", "zz", "OUTPUTS", 1, "mul",
                                    "BLOB", tf_mul), 'Input node named "zz" not found in TF graph.'),
    "tf_unknown_output_node": (store("TF", "CPU", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "product",
                                     "BLOB", tf_mul),
                               'Output node named "product" not found in TF graph'),
}


def _materialize(command: tuple[object, ...]) -> tuple[object, ...]:
    """Model builders in a command (functions) become their blobs."""
    return tuple(arg() if callable(arg) else arg for arg in command)


@pytest.mark.parametrize("case", list(STORE_CASES))
def test_modelstore_rejects(r: redis.Redis, case: str) -> None:
    command, message = STORE_CASES[case]
    assert_rejected(r, _materialize(command), message)
    assert r.exists("a", "b", "plain") == 3


def test_modelstore_parse_errors_come_before_wrongtype(r: redis.Redis) -> None:
    """RedisAI parses (and builds the model) before it looks at the key."""
    assert_rejected(r, ("AI.MODELSTORE", "plain", "PYTORCH", "CPU", "BLOB", "x"), "unsupported backend")
    assert_rejected(r, ("AI.MODELSTORE", "a", "ONNX", "CPU:1.8", "BLOB", "x"), INVALID_DEVICE)
    assert_rejected(r, ("AI.MODELSTORE", "plain", "TF", "CPU", "BLOB", "x"), "INPUTS not specified for TF")


def test_modelstore_backend_error_comes_before_wrongtype(r: redis.Redis) -> None:
    assert_rejected(r, ("AI.MODELSTORE", "plain", "ONNX", "CPU", "BLOB", b""),
                    "No graph was found in the protobuf.")


# ---------------------------------------------------------------------------
# AI.MODELSET (deprecated)

def modelset(*args: object) -> tuple[object, ...]:
    return ("AI.MODELSET", "m", *args)


MODELSET_CASES = {
    "arity": (("AI.MODELSET", "m", "ONNX"), arity("AI.MODELSET")),
    "arity_as_typed": (("ai.modelset", "m"), arity("ai.modelset")),
    "backend": (modelset("CAFFE", "CPU", "BLOB", "x"), "unsupported backend"),
    "device_keyword": (modelset("ONNX", "BLOB", "x"), INVALID_DEVICE),
    "device_tag_keyword": (modelset("ONNX", "tag", "t", "BLOB", "x"), INVALID_DEVICE),
    "device_too_long": (modelset("ONNX", "CPU:1234567", "BLOB", "x"), INVALID_DEVICE),
    "tflite_batching": (modelset("TFLITE", "CPU", "BATCHSIZE", 2, "BLOB", "x"),
                        "Auto-batching not supported by the TFLITE backend"),
    "batchsize_word": (modelset("ONNX", "CPU", "BATCHSIZE", "x", "BLOB", "x"),
                       "Invalid argument for BATCHSIZE"),
    "minbatchsize_without_batchsize": (modelset("ONNX", "CPU", "MINBATCHSIZE", "x", "BLOB", "x"),
                                       "MINBATCHSIZE specified without BATCHSIZE"),
    "minbatchsize_word": (modelset("ONNX", "CPU", "BATCHSIZE", 2, "MINBATCHSIZE", "x", "BLOB", "x"),
                          "Invalid argument for MINBATCHSIZE"),
    "minbatchtimeout_without_batchsize": (modelset("ONNX", "CPU", "MINBATCHTIMEOUT", 5, "BLOB", "x"),
                                          "MINBATCHTIMEOUT specified without BATCHSIZE"),
    "minbatchtimeout_without_minbatchsize": (
        modelset("ONNX", "CPU", "BATCHSIZE", 2, "MINBATCHTIMEOUT", 5, "BLOB", "x"),
        "MINBATCHTIMEOUT specified without MINBATCHSIZE"),
    "minbatchtimeout_word": (
        modelset("ONNX", "CPU", "BATCHSIZE", 2, "MINBATCHSIZE", 1, "MINBATCHTIMEOUT", "x", "BLOB", "x"),
        "Invalid argument for MINBATCHTIMEOUT"),
    "nothing_after_device": (modelset("ONNX", "CPU"), MISSING_BLOB),
    "nothing_after_blob": (modelset("ONNX", "CPU", "BLOB"), MISSING_BLOB),
    "no_blob_keyword": (modelset("ONNX", "CPU", "some", "names"), MISSING_BLOB),
    "tf_blob_first": (modelset("TF", "CPU", "BLOB", "x"),
                      "Insufficient arguments, INPUTS and OUTPUTS not specified"),
    "tf_no_inputs_keyword": (modelset("TF", "CPU", "TAG", "t", "NAMES", "a", "BLOB", "x"),
                             "INPUTS not specified"),
    "tf_no_outputs": (modelset("TF", "CPU", "INPUTS", "a", "b", "BLOB", "x"), "OUTPUTS not specified"),
    "tf_nothing_after_blob": (modelset("TF", "CPU", "INPUTS", "a", "OUTPUTS", "mul", "BLOB"),
                              MISSING_BLOB),
    "wrongtype": (("AI.MODELSET", "plain", "ONNX", "CPU", "BLOB", onnx_add), WRONGTYPE),
    # MODELSET's parser lets any short device through; the backend refuses it.
    "device_unknown_to_backend": (modelset("ONNX", "bad_device", "BLOB", onnx_add),
                                  "unsupported device"),
}


@pytest.mark.parametrize("case", list(MODELSET_CASES))
def test_modelset_rejects(r: redis.Redis, case: str) -> None:
    command, message = MODELSET_CASES[case]
    assert_rejected(r, _materialize(command), message)


# ---------------------------------------------------------------------------
# AI.MODELGET, AI.MODELDEL, AI.INFO, AI._MODELSCAN

READ_CASES = {
    "modelget_arity_short": (("AI.MODELGET",), arity("AI.MODELGET")),
    "modelget_arity_long": (("AI.MODELGET", "m", "META", "BLOB", "x"), arity("AI.MODELGET")),
    "modelget_as_typed": (("ai.modelget",), arity("ai.modelget")),
    "modelget_empty": (("AI.MODELGET", "nothing", "META"), MODEL_EMPTY),
    "modelget_tensor": (("AI.MODELGET", "a"), WRONGTYPE),
    "modelget_string": (("AI.MODELGET", "plain", "BLOB"), WRONGTYPE),
    "modelget_empty_before_format": (("AI.MODELGET", "nothing", "nonsense"), MODEL_EMPTY),
    "modeldel_arity_short": (("AI.MODELDEL",), arity("AI.MODELDEL")),
    "modeldel_arity_long": (("AI.MODELDEL", "m", "m"), arity("AI.MODELDEL")),
    "modeldel_empty": (("AI.MODELDEL", "nothing"), MODEL_EMPTY),
    "modeldel_tensor": (("AI.MODELDEL", "a"), WRONGTYPE),
    "modeldel_string": (("AI.MODELDEL", "plain"), WRONGTYPE),
    "info_arity_short": (("AI.INFO",), arity("AI.INFO")),
    "info_arity_long": (("AI.INFO", "m", "RESETSTAT", "x"), arity("AI.INFO")),
    "info_empty": (("AI.INFO", "nothing"), NO_RUN_INFO),
    "info_tensor": (("AI.INFO", "a"), NO_RUN_INFO),
    "info_string_resetstat": (("AI.INFO", "plain", "RESETSTAT"), NO_RUN_INFO),
    "modelscan_arity": (("AI._MODELSCAN", "m"), arity("AI._MODELSCAN")),
}


@pytest.mark.parametrize("case", list(READ_CASES))
def test_read_and_delete_commands_reject(r: redis.Redis, case: str) -> None:
    command, message = READ_CASES[case]
    assert_rejected(r, command, message)


def test_modelget_ignores_unknown_format_arguments(r: redis.Redis) -> None:
    meta = r.execute_command("AI.MODELGET", "m", "META")
    assert len(meta) == 16
    assert r.execute_command("AI.MODELGET", "m", "META", "nonsense") == meta
    assert r.execute_command("AI.MODELGET", "m", "nonsense") == meta + [b"blob", onnx_add()]


# ---------------------------------------------------------------------------
# AI.MODELEXECUTE

def execute(*args: object) -> tuple[object, ...]:
    return ("AI.MODELEXECUTE", "m", *args)


GOOD_OUTPUTS = ("OUTPUTS", 2, "s", "p")

EXECUTE_CASES = {
    "arity": (execute("INPUTS", 2, "a", "b", "OUTPUTS"), EXECUTE_ARITY),
    "arity_hard_coded_name": (("ai.modelexecute", "m", "INPUTS", 1, "a", "OUTPUTS", 1), EXECUTE_ARITY),
    "arity_two_args": (("AI.MODELEXECUTE", "m"), EXECUTE_ARITY),
    "model_empty": (("AI.MODELEXECUTE", "nothing", "INPUTS", 2, "a", "b", *GOOD_OUTPUTS), MODEL_EMPTY),
    "model_empty_before_arguments": (("AI.MODELEXECUTE", "nothing", "x", "y", "z", "w", "v", "u"),
                                     MODEL_EMPTY),
    "model_is_tensor": (("AI.MODELEXECUTE", "a", "INPUTS", 2, "a", "b", *GOOD_OUTPUTS), WRONGTYPE),
    "model_is_string": (("AI.MODELEXECUTE", "plain", "INPUTS", 2, "a", "b", *GOOD_OUTPUTS), WRONGTYPE),
    "outputs_first": (execute("OUTPUTS", 2, "s", "p", "INPUTS", 2, "a", "b"), "INPUTS not specified"),
    "timeout_first": (execute("TIMEOUT", 100, "INPUTS", 2, "a", "b", *GOOD_OUTPUTS),
                      "INPUTS not specified"),
    "input_count_word": (execute("INPUTS", "two", "a", "b", *GOOD_OUTPUTS),
                         "Invalid argument for input_count"),
    "input_count_zero": (execute("INPUTS", 0, "a", "b", *GOOD_OUTPUTS),
                         "Input count must be a positive integer"),
    "input_count_negative": (execute("INPUTS", -2, "a", "b", *GOOD_OUTPUTS),
                             "Input count must be a positive integer"),
    "input_count_below_model": (execute("INPUTS", 1, "a", *GOOD_OUTPUTS), INPUTS_MISMATCH),
    "input_count_above_model": (execute("INPUTS", 3, "a", "b", "a", *GOOD_OUTPUTS), INPUTS_MISMATCH),
    "too_few_input_keys": (("AI.MODELEXECUTE", "m7", "INPUTS", 7, "a", "a", "a", "a"),
                           "number of input keys to AI.MODELEXECUTE command does not match the "
                           "number of given arguments"),
    "no_outputs_keyword": (execute("INPUTS", 2, "a", "b", "RESULTS", 2, "s", "p"),
                           "OUTPUTS not specified"),
    "output_count_word": (execute("INPUTS", 2, "a", "b", "OUTPUTS", "two", "s", "p"),
                          "Invalid argument for output_count"),
    "output_count_zero": (execute("INPUTS", 2, "a", "b", "OUTPUTS", 0, "s", "p"),
                          "Output count must be a positive integer"),
    "output_count_negative": (execute("INPUTS", 2, "a", "b", "OUTPUTS", -1, "s"),
                              "Output count must be a positive integer"),
    "output_count_below_model": (execute("INPUTS", 2, "a", "b", "OUTPUTS", 1, "s"), OUTPUTS_MISMATCH),
    "output_count_above_model": (execute("INPUTS", 2, "a", "b", "OUTPUTS", 3, "s", "p", "q"),
                                 OUTPUTS_MISMATCH),
    "too_few_output_keys": (execute("INPUTS", 2, "a", "b", "OUTPUTS", 2, "s"),
                            "number of output keys to AI.MODELEXECUTE command does not match the "
                            "number of given arguments"),
    "timeout_without_value": (execute("INPUTS", 2, "a", "b", *GOOD_OUTPUTS, "TIMEOUT"),
                              "No value provided for TIMEOUT"),
    "timeout_zero": (execute("INPUTS", 2, "a", "b", *GOOD_OUTPUTS, "TIMEOUT", 0),
                     "Invalid value for TIMEOUT"),
    "timeout_negative": (execute("INPUTS", 2, "a", "b", *GOOD_OUTPUTS, "TIMEOUT", -10),
                         "Invalid value for TIMEOUT"),
    "timeout_word": (execute("INPUTS", 2, "a", "b", *GOOD_OUTPUTS, "TIMEOUT", "soon"),
                     "Invalid value for TIMEOUT"),
    "timeout_fraction": (execute("INPUTS", 2, "a", "b", *GOOD_OUTPUTS, "TIMEOUT", 1.5),
                         "Invalid value for TIMEOUT"),
    "junk_after_outputs": (execute("INPUTS", 2, "a", "b", *GOOD_OUTPUTS, "extra"),
                           "Invalid argument: extra"),
    "junk_after_timeout": (execute("INPUTS", 2, "a", "b", *GOOD_OUTPUTS, "TIMEOUT", 100, "extra"),
                           "Invalid argument: extra"),
    "timeout_twice": (execute("INPUTS", 2, "a", "b", *GOOD_OUTPUTS, "TIMEOUT", 100, "TIMEOUT", 100),
                      "Invalid argument: TIMEOUT"),
    "input_count_int64_max": (execute("INPUTS", INT64_MAX, "a", "b", *GOOD_OUTPUTS), INPUTS_MISMATCH),
    "input_count_2_32_plus_2": (execute("INPUTS", 2**32 + 2, "a", "b", *GOOD_OUTPUTS), INPUTS_MISMATCH),
    "input_count_int64_min": (execute("INPUTS", INT64_MIN, "a", "b", *GOOD_OUTPUTS),
                              "Input count must be a positive integer"),
    "input_count_beyond_int64": (execute("INPUTS", BEYOND_INT64, "a", "b", *GOOD_OUTPUTS),
                                 "Invalid argument for input_count"),
    "output_count_int64_max": (execute("INPUTS", 2, "a", "b", "OUTPUTS", INT64_MAX, "s", "p"),
                               OUTPUTS_MISMATCH),
    "output_count_2_31": (execute("INPUTS", 2, "a", "b", "OUTPUTS", 2**31, "s", "p"), OUTPUTS_MISMATCH),
    "timeout_beyond_int64": (execute("INPUTS", 2, "a", "b", *GOOD_OUTPUTS, "TIMEOUT", BEYOND_INT64),
                             "Invalid value for TIMEOUT"),
    "input_missing": (execute("INPUTS", 2, "a", "nothing", *GOOD_OUTPUTS), TENSOR_EMPTY),
    "input_is_string": (execute("INPUTS", 2, "plain", "b", *GOOD_OUTPUTS), WRONGTYPE),
    "input_is_model": (execute("INPUTS", 2, "a", "m", *GOOD_OUTPUTS), WRONGTYPE),
    "output_is_string": (execute("INPUTS", 2, "a", "b", "OUTPUTS", 2, "s", "plain"), WRONGTYPE),
    "output_is_model": (execute("INPUTS", 2, "a", "b", "OUTPUTS", 2, "m", "p"), WRONGTYPE),
}


@pytest.mark.parametrize("case", list(EXECUTE_CASES))
def test_modelexecute_rejects(r: redis.Redis, case: str) -> None:
    command, message = EXECUTE_CASES[case]
    if command[1] == "m7":
        r.execute_command("AI.MODELSTORE", "m7", "ONNX", "CPU", "BLOB", onnx_sum7())
    assert_rejected(r, command, message)
    # Nothing was written: no output key appeared.
    assert r.exists("s", "p", "q") == 0


def test_limits_as_settings_are_honoured_not_wrapped(r: redis.Redis) -> None:
    """The largest TIMEOUT and batch settings are valid values: they mean "no deadline"
    and "batch without limit", and the model runs at once (a deadline that wrapped
    would time it out instead)."""
    assert r.execute_command("AI.MODELSTORE", "big", "ONNX", "CPU", "BATCHSIZE", INT64_MAX,
                             "MINBATCHSIZE", 1, "MINBATCHTIMEOUT", INT64_MAX,
                             "BLOB", onnx_add()) == b"OK"
    meta = r.execute_command("AI.MODELGET", "big", "META")
    assert meta[6:12] == [b"batchsize", INT64_MAX, b"minbatchsize", 1, b"inputs", [b"a", b"b"]]
    assert meta[14:16] == [b"minbatchtimeout", INT64_MAX]
    for model in ("big", "m"):
        assert r.execute_command("AI.MODELEXECUTE", model, "INPUTS", 2, "a", "b", "OUTPUTS", 2, "s", "p",
                                 "TIMEOUT", INT64_MAX) == b"OK"
        np.testing.assert_array_equal(tensor_values(r, "s"), A + B)
    r.delete("s", "p", "big")
    assert r.execute_command("AI.INFO", "m", "RESETSTAT") == b"OK"
    assert_m_serves(r)


def run(*args: object) -> tuple[object, ...]:
    return ("AI.MODELRUN", "m", *args)


MODELRUN_CASES = {
    "arity": (run("INPUTS", "a", "OUTPUTS"), RUN_ARITY),
    "arity_hard_coded_name": (("ai.modelrun", "m", "TIMEOUT"), RUN_ARITY),
    "model_empty": (("AI.MODELRUN", "nothing", "INPUTS", "a", "b", "OUTPUTS", "s", "p"), MODEL_EMPTY),
    "model_is_tensor": (("AI.MODELRUN", "a", "INPUTS", "a", "b", "OUTPUTS", "s", "p"), WRONGTYPE),
    "no_inputs_keyword": (run("ARGS", "a", "b", "OUTPUTS", "s", "p"), "INPUTS not specified"),
    "timeout_after_inputs": (run("INPUTS", "a", "b", "OUTPUTS", "s", "p", "TIMEOUT", 5),
                             OUTPUTS_MISMATCH),
    "timeout_zero": (run("TIMEOUT", 0, "INPUTS", "a", "b", "OUTPUTS", "s", "p"),
                     "Invalid value for TIMEOUT"),
    "timeout_word": (run("TIMEOUT", "x", "INPUTS", "a", "b", "OUTPUTS", "s", "p"),
                     "Invalid value for TIMEOUT"),
    "too_few_inputs": (run("INPUTS", "a", "OUTPUTS", "s", "p"), INPUTS_MISMATCH),
    "no_outputs_keyword": (run("INPUTS", "a", "b", "s", "p"), INPUTS_MISMATCH),
    "too_few_outputs": (run("INPUTS", "a", "b", "OUTPUTS", "s"), OUTPUTS_MISMATCH),
    "nothing_after_outputs": (run("TIMEOUT", 9, "INPUTS", "a", "b", "OUTPUTS"), OUTPUTS_MISMATCH),
    "input_missing": (run("INPUTS", "a", "nothing", "OUTPUTS", "s", "p"), TENSOR_EMPTY),
    "output_is_string": (run("INPUTS", "a", "b", "OUTPUTS", "plain", "p"), WRONGTYPE),
}


@pytest.mark.parametrize("case", list(MODELRUN_CASES))
def test_modelrun_rejects(r: redis.Redis, case: str) -> None:
    command, message = MODELRUN_CASES[case]
    assert_rejected(r, command, message)
    assert r.exists("s", "p") == 0


def test_output_key_that_holds_a_string_writes_no_output(r: redis.Redis) -> None:
    """The first output could be written, the second cannot: neither is."""
    tensorset(r, "s", np.array([9, 9], dtype=np.float32))
    before = snapshot(r)
    with pytest.raises(redis.ResponseError) as err:
        r.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "b", "OUTPUTS", 2, "s", "plain")
    assert str(err.value) == WRONGTYPE
    assert_intact(r, before)
    assert r.get("plain") == b"not a model"
    np.testing.assert_array_equal(tensor_values(r, "s"), [9, 9])
    assert_m_serves(r)


# ---------------------------------------------------------------------------
# models that cannot be made: corrupt and truncated blobs


def _corrupt(blob: bytes, kind: str) -> bytes:
    if kind == "garbage":
        return b"\x00\x01 this is not a model \xff" * 8
    if kind == "first_half":
        return blob[: len(blob) // 2]
    if kind == "second_half":
        return blob[len(blob) // 2:]
    if kind == "empty":
        return b""
    raise KeyError(kind)


BLOB_BACKENDS = {
    "TORCH": ("TORCH", torch_add, []),
    "ONNX": ("ONNX", onnx_add, []),
    "TF": ("TF", tf_mul, ["INPUTS", 2, "a", "b", "OUTPUTS", 1, "mul"]),
    "TF_SAVEDMODEL": ("TF", tf_saved_model, ["INPUTS", 2, "x", "y", "OUTPUTS", 2, "sum", "scaled"]),
    "TFLITE": ("TFLITE", tflite_add_mul, []),
}

# Exact texts from reference section 5 where it has one; None: any backend error.
KNOWN_TEXTS = {
    ("ONNX", "empty"): "No graph was found in the protobuf.",
    ("TF", "garbage"): "Invalid GraphDef",
    ("TF", "first_half"): "Invalid GraphDef",
    ("TF", "second_half"): "Invalid GraphDef",
    ("TF", "empty"): 'Input node named "a" not found in TF graph.',
    ("TFLITE", "garbage"): "Failed to load model from buffer",
    ("TFLITE", "first_half"): "Failed to load model from buffer",
    ("TFLITE", "second_half"): "Failed to load model from buffer",
    ("TFLITE", "empty"): "Failed to load model from buffer",
}


@pytest.mark.parametrize("kind", ["garbage", "first_half", "second_half", "empty"])
@pytest.mark.parametrize("name", list(BLOB_BACKENDS))
def test_blob_that_is_not_a_model_is_refused(r: redis.Redis, name: str, kind: str) -> None:
    backend, builder, args = BLOB_BACKENDS[name]
    bad = _corrupt(builder(), kind)
    before = snapshot(r)
    for key in ("m", "new"):  # over the existing model, and under a new key
        with pytest.raises(redis.ResponseError) as err:
            r.execute_command("AI.MODELSTORE", key, backend, "CPU", *args, "BLOB", bad)
        text = str(err.value)
        expected = KNOWN_TEXTS.get((name, kind))
        if expected is not None:
            assert text == expected
        elif name == "TF_SAVEDMODEL" and kind == "first_half":
            assert text.startswith("Invalid SavedModel archive")
        else:
            assert text and "\n" not in text and "\r" not in text
        assert_intact(r, before)
    assert r.exists("new") == 0
    assert r.execute_command("AI._MODELSCAN") == [[b"m", b"keep"]]
    assert_m_serves(r)


def test_corrupt_blob_refused_inside_multi_and_lua(r: redis.Redis) -> None:
    """In MULTI and Lua the client cannot wait, yet still gets the backend's verdict."""
    before = snapshot(r)
    pipe = r.pipeline(transaction=True)
    pipe.execute_command("AI.MODELSTORE", "new", "ONNX", "CPU", "BLOB", b"not a model")
    pipe.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", b"")
    pipe.execute_command("AI.MODELSTORE", "gpu", "ONNX", "GPU", "BLOB", onnx_add())
    replies = pipe.execute(raise_on_error=False)
    assert [str(e) for e in replies] == [
        "Failed to load model because protobuf parsing failed.",
        "No graph was found in the protobuf.",
        "GPU requested but ONNX couldn't find CUDA",
    ]
    assert all(isinstance(e, redis.ResponseError) for e in replies)
    with pytest.raises(redis.ResponseError) as err:
        r.eval("return redis.pcall('AI.MODELSTORE', 'new2', 'ONNX', 'CPU', 'BLOB', '')", 0)
    assert str(err.value) == "No graph was found in the protobuf."
    with pytest.raises(redis.ResponseError) as err:
        r.eval("return redis.call('AI.MODELSTORE', 'new2', 'ONNX', 'CPU', 'BLOB', '')", 0)
    assert str(err.value).startswith("No graph was found in the protobuf.")
    assert_intact(r, before)
    assert_m_serves(r)


# ---------------------------------------------------------------------------
# models that cannot run these inputs: the backend's error, server alive


def assert_run_fails(r: redis.Redis, model: str, inputs: list[str], outputs: list[str],
                     check: object) -> None:
    before = snapshot(r)
    info = r.execute_command("AI.INFO", model)
    calls, errors = info[15], info[17]
    with pytest.raises(redis.ResponseError) as err:
        r.execute_command("AI.MODELEXECUTE", model, "INPUTS", len(inputs), *inputs,
                          "OUTPUTS", len(outputs), *outputs)
    text = str(err.value)
    if isinstance(check, str):
        assert text == check
    else:
        assert check(text), text
    assert "\n" not in text and "\r" not in text
    assert_intact(r, before)
    info = r.execute_command("AI.INFO", model)
    assert (info[15], info[17]) == (calls + 1, errors + 1)  # counted as a failed call


@pytest.fixture
def odd_tensors(r: redis.Redis) -> redis.Redis:
    tensorset(r, "three", np.array([1, 2, 3], dtype=np.float32))
    tensorset(r, "square", np.ones((2, 2), dtype=np.float32))
    tensorset(r, "ints", np.array([1, 2], dtype=np.int32))
    tensorset(r, "row", np.ones((1, 3), dtype=np.float32))
    tensorset(r, "int_row", np.ones((1, 3), dtype=np.int32))
    return r


def test_onnx_wrong_shape_rank_and_dtype(odd_tensors: redis.Redis) -> None:
    r = odd_tensors
    assert_run_fails(r, "m", ["three", "b"], ["s", "p"],
                     "Got invalid dimensions for input: a for the following indices  index: 0 Got: 3 "
                     "Expected: 2  Please fix either the inputs or the model.")
    assert_run_fails(r, "m", ["a", "square"], ["s", "p"],
                     "Invalid rank for input: b Got: 2 Expected: 1 Please fix either the inputs or the model.")
    assert_run_fails(r, "m", ["ints", "b"], ["s", "p"],
                     lambda t: t.startswith("Unexpected input data type") and "int32" in t)
    assert r.execute_command("AI.INFO", "m", "RESETSTAT") == b"OK"
    assert_m_serves(r)


def test_torch_wrong_shape(odd_tensors: redis.Redis) -> None:
    r = odd_tensors
    r.execute_command("AI.MODELSTORE", "torch", "TORCH", "CPU", "BLOB", torch_add())
    assert_run_fails(r, "torch", ["three", "b"], ["s", "p"],
                     lambda t: "The size of tensor a (3) must match the size of tensor b (2) "
                               "at non-singleton dimension 0" in t)
    assert r.execute_command("AI.MODELEXECUTE", "torch", "INPUTS", 2, "a", "b",
                             "OUTPUTS", 2, "s", "p") == b"OK"
    assert_m_serves(r)


def test_tf_wrong_shape_and_dtype(odd_tensors: redis.Redis) -> None:
    r = odd_tensors
    r.execute_command("AI.MODELSTORE", "tf", "TF", "CPU", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "mul",
                      "BLOB", tf_mul())
    assert_run_fails(r, "tf", ["three", "b"], ["out"],
                     lambda t: t.startswith("Incompatible shapes: [3] vs. [2]") and "{{node mul}}" in t)
    assert_run_fails(r, "tf", ["ints", "b"], ["out"], lambda t: "int32" in t)
    assert r.execute_command("AI.MODELEXECUTE", "tf", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "out") == b"OK"
    np.testing.assert_array_equal(tensor_values(r, "out"), A * B)
    assert_m_serves(r)


def test_tflite_wrong_dtype_and_shape(odd_tensors: redis.Redis) -> None:
    r = odd_tensors
    r.execute_command("AI.MODELSTORE", "lite", "TFLITE", "CPU", "BLOB", tflite_add_mul())
    assert_run_fails(r, "lite", ["int_row", "row"], ["o1", "o2"],
                     "Input tensor type doesn't match the type expected by the model definition")
    assert_run_fails(r, "lite", ["square", "row"], ["o1", "o2"], "Failed to allocate tensors")
    # After a refused shape the interpreter still runs the shape it was made for.
    assert r.execute_command("AI.MODELEXECUTE", "lite", "INPUTS", 2, "row", "row",
                             "OUTPUTS", 2, "o1", "o2") == b"OK"
    np.testing.assert_array_equal(tensor_values(r, "o1"), [2, 2, 2])
    assert_m_serves(r)


def test_model_that_raises_at_run_time(r: redis.Redis) -> None:
    r.execute_command("AI.MODELSTORE", "strict", "TORCH", "CPU", "BLOB", torch_refuses_negatives())
    tensorset(r, "negative", np.array([1, -2], dtype=np.float32))
    assert_run_fails(r, "strict", ["negative"], ["doubled"],
                     lambda t: "negative input is not allowed" in t)
    # The same model serves good input right after.
    assert r.execute_command("AI.MODELEXECUTE", "strict", "INPUTS", 1, "a",
                             "OUTPUTS", 1, "doubled") == b"OK"
    np.testing.assert_array_equal(tensor_values(r, "doubled"), A * 2)
    info = r.execute_command("AI.INFO", "strict")
    assert info[12:18] == [b"samples", 2, b"calls", 2, b"errors", 1]
    assert_m_serves(r)
