"""AI.MODEL* user stories against a real server, for every backend.

A data scientist stores a model (TORCH, ONNX, a TF frozen graph, a TF
SavedModel archive, TFLITE), feeds it tensors with AI.TENSORSET, runs it with
AI.MODELEXECUTE and reads the outputs back; every output is compared with a
numpy reference. Around that: what AI.MODELGET shows (metadata exactly, the
blob byte for byte, in chunks when MODEL_CHUNK_SIZE is small), deleting and
replacing models, the run statistics of AI.INFO, AI._MODELSCAN, the
deprecated AI.MODELSET / AI.MODELRUN, TIMEOUT, the run queues and backends
that INFO MODULES reports, devices (GPU without CUDA), transactions and Lua,
the iris classifier from scikit-learn, COMMAND GETKEYS, and the server
staying responsive while a large model is stored or a blocked client goes
away.

Most stories share one server (started once for this file, FLUSHALL before
each); the ones that need module arguments or a pristine server (lazy
backend loading, worker threads, the slow-model queue) start their own.
"""

from __future__ import annotations

import functools
import io
import socket
import threading
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pytest
import redis

import model_builders as mb
from conftest import RedisServer, ServerFactory, wait_until

DEFAULT_CHUNK_SIZE = 511 * 1024 * 1024
MODEL_EMPTY = "model key is empty"
NO_RUN_INFO = "cannot find run info for key"

_NUMPY_OF = {
    "FLOAT": np.float32, "DOUBLE": np.float64, "INT8": np.int8, "INT16": np.int16,
    "INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8, "UINT16": np.uint16, "BOOL": np.bool_,
}
_NAME_OF = {np.dtype(v): k for k, v in _NUMPY_OF.items()}


# ---------------------------------------------------------------------------
# helpers


def tensorset(r: redis.Redis, key: str, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array)
    dtype = _NAME_OF[array.dtype]
    assert r.execute_command("AI.TENSORSET", key, dtype, *array.shape, "BLOB", array.tobytes()) == b"OK"


def tensorget(r: redis.Redis, key: str) -> np.ndarray:
    reply = r.execute_command("AI.TENSORGET", key, "META", "BLOB")
    assert reply[0] == b"dtype" and reply[2] == b"shape" and reply[4] == b"blob", reply
    dtype = _NUMPY_OF[reply[1].decode()]
    return np.frombuffer(reply[5], dtype=dtype).reshape(reply[3])


def modelexecute(r: redis.Redis, key: str, inputs: list[str], outputs: list[str],
                 *extra: object) -> object:
    return r.execute_command("AI.MODELEXECUTE", key, "INPUTS", len(inputs), *inputs,
                             "OUTPUTS", len(outputs), *outputs, *extra)


def run_info(r: redis.Redis, key: str) -> dict[str, object]:
    reply = r.execute_command("AI.INFO", key)
    assert len(reply) == 18, reply
    return {reply[i].decode(): reply[i + 1] for i in range(0, 18, 2)}


def info_text(client: redis.Redis) -> str:
    """INFO MODULES as the raw text (redis-py's parser mangles 'CPU:1' field names)."""
    raw = redis.Redis(connection_pool=client.connection_pool)
    raw.set_response_callback("INFO", lambda response, **_: response)
    return raw.execute_command("INFO", "MODULES").decode()


def info_sections(client: redis.Redis) -> dict[str, dict[str, str]]:
    """INFO MODULES split on '#' as RedisAI's tests do: section name -> fields in order."""
    sections: dict[str, dict[str, str]] = {}
    parts = info_text(client).split("#")
    assert parts[0] == ""
    for part in parts[1:]:
        lines = [line for line in part.splitlines() if line.strip()]
        name = lines[0].strip()
        sections[name] = dict(line.split(":", 1) if not line.startswith("ai_queue_") else
                              line.rsplit(":", 1) for line in lines[1:])
    return sections


def blocked_clients(r: redis.Redis) -> int:
    return int(r.info("clients")["blocked_clients"])


def torchscript(module: object) -> bytes:
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(module), buffer)
    return buffer.getvalue()


def resp(*args: object) -> bytes:
    """A command in RESP, for a raw socket."""
    out = b"*%d\r\n" % len(args)
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out += b"$%d\r\n%s\r\n" % (len(data), data)
    return out


# ---------------------------------------------------------------------------
# models, built once per test session


@functools.cache
def torch_add() -> bytes:
    return mb.torch_add()


@functools.cache
def onnx_add() -> bytes:
    return mb.onnx_add()


@functools.cache
def tf_mul() -> bytes:
    return mb.tf_graph_def_mul()


@functools.cache
def tflite_add_mul() -> bytes:
    return mb.tflite_add_mul()


@functools.cache
def torch_sub_div() -> bytes:
    """TorchScript forward(a, b) -> (a - b, a / b): tells itself apart from torch_add/onnx_add."""
    import torch

    class SubDiv(torch.nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return a - b, a / b

    return torchscript(SubDiv())


@functools.cache
def tflite_names() -> tuple[list[bytes], list[bytes]]:
    """The tensor names the TFLite interpreter reports for tflite_add_mul()."""
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_content=tflite_add_mul())
    return ([d["name"].encode() for d in interpreter.get_input_details()],
            [d["name"].encode() for d in interpreter.get_output_details()])


@dataclass
class BackendCase:
    """A model of one backend with inputs and the outputs numpy expects."""

    backend: str
    blob: bytes
    store_args: list[object]  # between device/options and BLOB (TF node names)
    inputs: dict[str, np.ndarray]
    expected: list[np.ndarray]
    input_names: list[bytes]
    output_names: list[bytes]
    tolerance: dict[str, float] = field(default_factory=lambda: {"rtol": 1e-6, "atol": 0.0})


def _rng_floats(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def backend_case(name: str) -> BackendCase:
    if name in ("TORCH", "ONNX"):
        weights = mb.mlp_weights()
        transaction, reference = mb.mlp_inputs(batch=4)
        expected = mb.mlp_reference(weights, transaction, reference)
        blob = mb.torch_mlp() if name == "TORCH" else mb.onnx_mlp()
        return BackendCase(
            name, blob, [], {"transaction": transaction, "reference": reference}, [expected],
            [b"transaction", b"reference"], [b""] if name == "TORCH" else [b"output"],
            {"rtol": 1e-4, "atol": 1e-6},
        )
    if name == "TF":
        a, b = _rng_floats((2, 3), 1), _rng_floats((2, 3), 2)
        return BackendCase("TF", tf_mul(), ["INPUTS", 2, "a", "b", "OUTPUTS", 1, "mul"],
                           {"a": a, "b": b}, [a * b], [b"a", b"b"], [b"mul"])
    if name.startswith("TF_SAVEDMODEL_"):
        archive = name.removeprefix("TF_SAVEDMODEL_").lower().replace("_", ".")
        x, y = _rng_floats((4, 3), 3), _rng_floats((4, 3), 4)
        return BackendCase(
            "TF", mb.tf_saved_model_archive(archive),
            ["INPUTS", 2, "x", "y", "OUTPUTS", 2, "sum", "scaled"],
            {"x": x, "y": y}, [x + y, x * 2], [b"x", b"y"], [b"sum", b"scaled"],
        )
    if name == "TFLITE":
        a, b = _rng_floats((1, 3), 5), _rng_floats((1, 3), 6)
        inputs, outputs = tflite_names()
        return BackendCase("TFLITE", tflite_add_mul(), [], {"a": a, "b": b}, [a + b, a * b],
                           inputs, outputs)
    raise KeyError(name)


# ---------------------------------------------------------------------------
# fixtures


@pytest.fixture
def r(shared_server: RedisServer, request: pytest.FixtureRequest) -> redis.Redis:
    request.node.redis_servers = [shared_server]  # conftest attaches its log on failure
    client = shared_server.client(socket_timeout=60)
    client.flushall()
    client.execute_command("AI.CONFIG", "MODEL_CHUNK_SIZE", DEFAULT_CHUNK_SIZE)
    return client


# ---------------------------------------------------------------------------
# store, execute, get: every backend

BACKENDS = ["TORCH", "ONNX", "TF", "TF_SAVEDMODEL_TAR", "TF_SAVEDMODEL_TAR_GZ", "TF_SAVEDMODEL_ZIP",
            "TFLITE"]


@pytest.mark.parametrize("name", BACKENDS)
def test_store_execute_and_read_back_every_backend(r: redis.Redis, name: str) -> None:
    case = backend_case(name)
    tag = f"{name.lower()}:v1"
    assert r.execute_command("AI.MODELSTORE", "model", case.backend, "CPU", "TAG", tag,
                             *case.store_args, "BLOB", case.blob) == b"OK"

    meta = [b"backend", case.backend.encode(), b"device", b"CPU", b"tag", tag.encode(),
            b"batchsize", 0, b"minbatchsize", 0, b"inputs", case.input_names,
            b"outputs", case.output_names, b"minbatchtimeout", 0]
    assert r.execute_command("AI.MODELGET", "model", "META") == meta
    assert r.execute_command("AI.MODELGET", "model", "META", "BLOB") == meta + [b"blob", case.blob]
    assert r.execute_command("AI.MODELGET", "model") == meta + [b"blob", case.blob]
    assert r.execute_command("AI.MODELGET", "model", "BLOB") == case.blob

    for key, array in case.inputs.items():
        tensorset(r, key, array)
    outputs = [f"out{i}" for i in range(len(case.expected))]
    assert modelexecute(r, "model", list(case.inputs), outputs) == b"OK"
    for key, expected in zip(outputs, case.expected):
        got = tensorget(r, key)
        assert got.dtype == np.float32 and got.shape == expected.shape, key
        np.testing.assert_allclose(got, expected, **case.tolerance)
    # The inputs are untouched by the run.
    for key, array in case.inputs.items():
        np.testing.assert_array_equal(tensorget(r, key), array)


def test_store_options_show_in_meta(r: redis.Redis) -> None:
    assert r.execute_command(
        "AI.MODELSTORE", "m", "torch", "cpu", "TAG", "fraud v2", "BATCHSIZE", 8,
        "MINBATCHSIZE", 2, "MINBATCHTIMEOUT", 30, "BLOB", torch_add()) == b"OK"
    # Backend names come back upper-case; the device as it was given.
    assert r.execute_command("AI.MODELGET", "m", "META") == [
        b"backend", b"TORCH", b"device", b"cpu", b"tag", b"fraud v2", b"batchsize", 8,
        b"minbatchsize", 2, b"inputs", [b"a", b"b"], b"outputs", [b"", b""], b"minbatchtimeout", 30]
    # A lone request of one row is below MINBATCHSIZE: it runs once MINBATCHTIMEOUT has passed.
    tensorset(r, "a", np.array([[1, 2]], dtype=np.float32))
    tensorset(r, "b", np.array([[3, 4]], dtype=np.float32))
    assert modelexecute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
    np.testing.assert_array_equal(tensorget(r, "s"), [[4, 6]])
    np.testing.assert_array_equal(tensorget(r, "p"), [[3, 8]])


def test_blob_in_several_chunks_is_concatenated(r: redis.Redis) -> None:
    blob = onnx_add()
    pieces = [blob[:10], blob[10:50], blob[50:]]
    assert r.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", *pieces) == b"OK"
    assert r.execute_command("AI.MODELGET", "m", "BLOB") == blob
    tensorset(r, "a", np.array([1, 2], dtype=np.float32))
    tensorset(r, "b", np.array([5, 7], dtype=np.float32))
    assert modelexecute(r, "m", ["a", "b"], ["sum", "product"]) == b"OK"
    np.testing.assert_array_equal(tensorget(r, "sum"), [6, 9])
    np.testing.assert_array_equal(tensorget(r, "product"), [5, 14])


# ---------------------------------------------------------------------------
# MODELGET in chunks


def test_modelget_chunks_the_blob_by_model_chunk_size(r: redis.Redis) -> None:
    blob = torch_add()
    length = len(blob)
    r.execute_command("AI.MODELSTORE", "m", "TORCH", "CPU", "BLOB", blob)

    assert r.execute_command("AI.CONFIG", "MODEL_CHUNK_SIZE", 100) == b"OK"
    assert r.execute_command("AI.CONFIG", "GET", "MODEL_CHUNK_SIZE") == 100
    chunks = r.execute_command("AI.MODELGET", "m", "BLOB")
    assert isinstance(chunks, list) and len(chunks) == length // 100 + 1
    assert all(len(c) == 100 for c in chunks[:-1]) and len(chunks[-1]) == length % 100
    assert b"".join(chunks) == blob
    # META BLOB carries the same array.
    assert r.execute_command("AI.MODELGET", "m", "META", "BLOB")[17] == chunks

    # An exact multiple ends with an empty chunk (RedisAI does the same).
    r.execute_command("AI.CONFIG", "MODEL_CHUNK_SIZE", length)
    assert r.execute_command("AI.MODELGET", "m", "BLOB") == [blob, b""]
    divisor = next((d for d in range(16, length // 2 + 1) if length % d == 0), None)
    if divisor is not None:
        r.execute_command("AI.CONFIG", "MODEL_CHUNK_SIZE", divisor)
        chunks = r.execute_command("AI.MODELGET", "m", "BLOB")
        assert len(chunks) == length // divisor + 1 and chunks[-1] == b""
        assert b"".join(chunks) == blob

    # One byte more than the blob: a single bulk string again.
    r.execute_command("AI.CONFIG", "MODEL_CHUNK_SIZE", length + 1)
    assert r.execute_command("AI.MODELGET", "m", "BLOB") == blob
    assert r.execute_command("AI.MODELGET", "m", "META", "BLOB")[17] == blob


# ---------------------------------------------------------------------------
# delete, overwrite


def test_modeldel_removes_model_and_its_statistics(r: redis.Redis) -> None:
    r.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", onnx_add())
    r.execute_command("AI.MODELSTORE", "other", "ONNX", "CPU", "BLOB", onnx_add())
    assert run_info(r, "m")["calls"] == 0
    assert r.execute_command("AI.MODELDEL", "m") == b"OK"
    assert r.exists("m") == 0
    for command in (("AI.MODELGET", "m", "META"), ("AI.MODELDEL", "m"),
                    ("AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "b", "OUTPUTS", 2, "s", "p")):
        with pytest.raises(redis.ResponseError, match=f"^{MODEL_EMPTY}$"):
            r.execute_command(*command)
    with pytest.raises(redis.ResponseError, match=f"^{NO_RUN_INFO}$"):
        r.execute_command("AI.INFO", "m")
    # The other model is untouched.
    assert r.execute_command("AI.MODELGET", "other", "BLOB") == onnx_add()
    assert r.execute_command("AI._MODELSCAN") == [[b"other", b""]]


def test_overwriting_a_model_serves_the_new_one(r: redis.Redis) -> None:
    tensorset(r, "a", np.array([6, 8], dtype=np.float32))
    tensorset(r, "b", np.array([2, 4], dtype=np.float32))
    r.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "TAG", "v1", "BLOB", onnx_add())
    assert modelexecute(r, "m", ["a", "b"], ["x", "y"]) == b"OK"
    np.testing.assert_array_equal(tensorget(r, "x"), [8, 12])
    np.testing.assert_array_equal(tensorget(r, "y"), [12, 32])
    assert run_info(r, "m")["calls"] == 1

    assert r.execute_command("AI.MODELSTORE", "m", "TORCH", "CPU", "TAG", "v2",
                             "BLOB", torch_sub_div()) == b"OK"
    meta = r.execute_command("AI.MODELGET", "m", "META")
    assert meta[:6] == [b"backend", b"TORCH", b"device", b"CPU", b"tag", b"v2"]
    assert r.execute_command("AI.MODELGET", "m", "BLOB") == torch_sub_div()
    # The statistics start again with the new model.
    info = run_info(r, "m")
    assert (info["backend"], info["tag"], info["calls"], info["samples"]) == (b"TORCH", b"v2", 0, 0)
    assert modelexecute(r, "m", ["a", "b"], ["x", "y"]) == b"OK"
    np.testing.assert_array_equal(tensorget(r, "x"), [4, 4])
    np.testing.assert_array_equal(tensorget(r, "y"), [3, 2])
    assert r.execute_command("AI._MODELSCAN") == [[b"m", b"v2"]]


def test_model_outputs_overwrite_existing_tensors(r: redis.Redis) -> None:
    r.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", onnx_add())
    tensorset(r, "a", np.array([1, 2], dtype=np.float32))
    tensorset(r, "out", np.arange(6, dtype=np.int64).reshape(2, 3))
    assert modelexecute(r, "m", ["a", "a"], ["out", "a"]) == b"OK"  # an input is also an output
    np.testing.assert_array_equal(tensorget(r, "out"), np.array([2, 4], dtype=np.float32))
    np.testing.assert_array_equal(tensorget(r, "a"), np.array([1, 4], dtype=np.float32))


# ---------------------------------------------------------------------------
# AI.INFO, AI._MODELSCAN


def test_ai_info_counts_calls_samples_errors_and_resets(r: redis.Redis) -> None:
    r.execute_command("AI.MODELSTORE", "m", "TORCH", "CPU", "TAG", "counted", "BLOB", torch_add())
    assert run_info(r, "m") == {
        "key": b"m", "type": b"MODEL", "backend": b"TORCH", "device": b"CPU", "tag": b"counted",
        "duration": 0, "samples": 0, "calls": 0, "errors": 0}

    tensorset(r, "a", np.ones((3, 2), dtype=np.float32))
    tensorset(r, "b", np.ones((3, 2), dtype=np.float32))
    tensorset(r, "c", np.ones((5, 2), dtype=np.float32))
    tensorset(r, "bad", np.ones((4, 7), dtype=np.float32))
    assert modelexecute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
    assert modelexecute(r, "m", ["c", "c"], ["s", "p"]) == b"OK"
    info = run_info(r, "m")
    assert (info["calls"], info["samples"], info["errors"]) == (2, 3 + 5, 0)
    assert isinstance(info["duration"], int) and info["duration"] > 0
    duration = info["duration"]

    # A failing run counts a call and an error, no samples and no duration.
    with pytest.raises(redis.ResponseError, match="The size of tensor a \\(2\\) must match the size of tensor b \\(7\\)"):
        modelexecute(r, "m", ["a", "bad"], ["s", "p"])
    info = run_info(r, "m")
    assert (info["calls"], info["samples"], info["errors"], info["duration"]) == (3, 8, 1, duration)
    # A command rejected by the parser counts nothing.
    with pytest.raises(redis.ResponseError):
        modelexecute(r, "m", ["a"], ["s", "p"])
    assert run_info(r, "m")["calls"] == 3

    assert r.execute_command("AI.INFO", "m", "resetstat") == b"OK"
    info = run_info(r, "m")
    assert (info["calls"], info["samples"], info["errors"], info["duration"]) == (0, 0, 0, 0)
    assert info["tag"] == b"counted"
    # Any other third argument is ignored: the full reply.
    assert r.execute_command("AI.INFO", "m", "whatever")[0:2] == [b"key", b"m"]
    with pytest.raises(redis.ResponseError, match=f"^{NO_RUN_INFO}$"):
        r.execute_command("AI.INFO", "a")  # a tensor has no run info
    with pytest.raises(redis.ResponseError, match=f"^{NO_RUN_INFO}$"):
        r.execute_command("AI.INFO", "nothing")


def test_modelscan_lists_every_model_with_its_tag(r: redis.Redis) -> None:
    assert r.execute_command("AI._MODELSCAN") == []
    r.execute_command("AI.MODELSTORE", "m1", "ONNX", "CPU", "TAG", "first", "BLOB", onnx_add())
    r.execute_command("AI.MODELSTORE", "m2", "TORCH", "CPU", "BLOB", torch_add())
    r.execute_command("AI.MODELSTORE", "m3", "ONNX", "CPU:1", "TAG", "third", "BLOB", onnx_add())
    tensorset(r, "t", np.ones(2, dtype=np.float32))
    r.set("s", "plain")
    scan = r.execute_command("AI._MODELSCAN")
    assert sorted(scan) == [[b"m1", b"first"], [b"m2", b""], [b"m3", b"third"]]


# ---------------------------------------------------------------------------
# deprecated commands


def test_deprecated_modelset_and_modelrun(r: redis.Redis) -> None:
    # TF with node names but no counts, the blob in two chunks.
    graph = tf_mul()
    assert r.execute_command("AI.MODELSET", "tf", "TF", "CPU", "TAG", "old", "INPUTS", "a", "b",
                             "OUTPUTS", "mul", "BLOB", graph[:20], graph[20:]) == b"OK"
    assert r.execute_command("AI.MODELGET", "tf", "META") == [
        b"backend", b"TF", b"device", b"CPU", b"tag", b"old", b"batchsize", 0, b"minbatchsize", 0,
        b"inputs", [b"a", b"b"], b"outputs", [b"mul"], b"minbatchtimeout", 0]
    assert r.execute_command("AI.MODELGET", "tf", "BLOB") == graph
    assert r.execute_command("AI.MODELSET", "torch", "TORCH", "CPU", "BATCHSIZE", 4,
                             "MINBATCHSIZE", 1, "BLOB", torch_add()) == b"OK"
    assert r.execute_command("AI.MODELGET", "torch", "META")[6:10] == [b"batchsize", 4,
                                                                     b"minbatchsize", 1]

    a = np.array([[1.5, 2.0]], dtype=np.float32)
    b = np.array([[2.0, -3.0]], dtype=np.float32)
    tensorset(r, "a", a)
    tensorset(r, "b", b)
    assert r.execute_command("AI.MODELRUN", "tf", "INPUTS", "a", "b", "OUTPUTS", "c") == b"OK"
    np.testing.assert_array_equal(tensorget(r, "c"), a * b)
    assert r.execute_command("AI.MODELRUN", "torch", "TIMEOUT", 5000, "INPUTS", "a", "b",
                             "OUTPUTS", "s", "p") == b"OK"
    np.testing.assert_array_equal(tensorget(r, "s"), a + b)
    np.testing.assert_array_equal(tensorget(r, "p"), a * b)
    assert run_info(r, "torch")["calls"] == 1
    # MODELSET models run with MODELEXECUTE too, and MODELSTORE models with MODELRUN.
    assert modelexecute(r, "tf", ["b", "b"], ["c"]) == b"OK"
    np.testing.assert_array_equal(tensorget(r, "c"), b * b)


# ---------------------------------------------------------------------------
# the iris classifier


def test_iris_classifier_from_scikit_learn(r: redis.Redis) -> None:
    iris = mb.onnx_iris()
    assert r.execute_command("AI.MODELSTORE", "iris", "ONNX", "CPU", "TAG", "sklearn",
                             "BLOB", iris.blob) == b"OK"
    meta = r.execute_command("AI.MODELGET", "iris", "META")
    assert meta[10:14] == [b"inputs", [b"float_input"],
                           b"outputs", [b"output_label", b"output_probability"]]

    flowers = iris.features[[0, 51, 77, 149]]  # a setosa, two versicolor and a virginica
    tensorset(r, "flowers", flowers)
    assert modelexecute(r, "iris", ["flowers"], ["label", "probabilities"]) == b"OK"

    label_meta = r.execute_command("AI.TENSORGET", "label", "META")
    assert label_meta == [b"dtype", b"INT64", b"shape", [4]]
    prob_meta = r.execute_command("AI.TENSORGET", "probabilities", "META")
    assert prob_meta == [b"dtype", b"FLOAT", b"shape", [4, 3]]
    labels = tensorget(r, "label")
    np.testing.assert_array_equal(labels, iris.classifier.predict(flowers))
    np.testing.assert_allclose(tensorget(r, "probabilities"), iris.classifier.predict_proba(flowers),
                               rtol=1e-4, atol=1e-5)
    info = run_info(r, "iris")
    assert (info["calls"], info["samples"]) == (1, 4)


# ---------------------------------------------------------------------------
# COMMAND GETKEYS


def test_command_getkeys_lists_model_inputs_and_outputs(r: redis.Redis) -> None:
    assert r.command_getkeys("AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "b", "OUTPUTS", 2, "s", "p",
                             "TIMEOUT", 100) == ["m", "a", "b", "s", "p"]
    assert r.command_getkeys("AI.MODELEXECUTE", "m", "INPUTS", 1, "a", "OUTPUTS", 3,
                             "x", "y", "z") == ["m", "a", "x", "y", "z"]
    assert r.command_getkeys("AI.MODELRUN", "m", "INPUTS", "a", "b", "OUTPUTS", "s", "p") == [
        "m", "a", "b", "s", "p"]
    assert r.command_getkeys("AI.MODELRUN", "m", "TIMEOUT", 10, "INPUTS", "a", "OUTPUTS", "s") == [
        "m", "a", "s"]
    # The single-key model commands use their static key spec.
    assert r.command_getkeys("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", "x") == ["m"]
    assert r.command_getkeys("AI.MODELGET", "m", "META") == ["m"]
    assert r.command_getkeys("AI.MODELDEL", "m") == ["m"]


# ---------------------------------------------------------------------------
# transactions and Lua (runs: tests/test_inference_in_transactions.py)


def test_modelstore_inside_multi_and_lua(r: redis.Redis) -> None:
    """Storing (unlike running) works in a transaction and in Lua: the model is
    made at once, so the same transaction already sees its I/O names."""
    pipe = r.pipeline(transaction=True)
    pipe.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "TAG", "multi", "BLOB", onnx_add())
    pipe.execute_command("AI.MODELGET", "m", "META")
    stored, meta = pipe.execute()
    assert stored == b"OK"
    assert meta == [b"backend", b"ONNX", b"device", b"CPU", b"tag", b"multi", b"batchsize", 0,
                    b"minbatchsize", 0, b"inputs", [b"a", b"b"], b"outputs", [b"sum", b"product"],
                    b"minbatchtimeout", 0]
    assert r.eval("return redis.call('AI.MODELSTORE', KEYS[1], 'TORCH', 'CPU', 'TAG', 'lua', "
                  "'BLOB', ARGV[1])", 1, "t", torch_add()) == b"OK"
    assert r.execute_command("AI.MODELGET", "t", "META")[10:14] == [
        b"inputs", [b"a", b"b"], b"outputs", [b"", b""]]
    tensorset(r, "a", np.array([1, 2], dtype=np.float32))
    for key in ("m", "t"):
        assert modelexecute(r, key, ["a", "a"], ["s", "p"]) == b"OK"
        np.testing.assert_array_equal(tensorget(r, "s"), [2, 4])
    assert sorted(r.execute_command("AI._MODELSCAN")) == [[b"m", b"multi"], [b"t", b"lua"]]


# ---------------------------------------------------------------------------
# devices, queues, INFO MODULES


def test_info_modules_sections_and_cpu_queue_fields(r: redis.Redis) -> None:
    sections = info_sections(r)
    # RedisAI's sections in RedisAI's order, then ours (the inference cache, loaded sessions, functions).
    assert list(sections) == ["Modules", "ai_versions", "ai_git", "ai_load_time_configs",
                              "ai_backends_info", "ai_cpu", "ai_cache", "ai_sessions", "ai_functions"]
    assert list(sections["ai_cache"]) == [f"ai_cache_{f}" for f in (
        "entries", "bytes", "budget", "hits", "misses", "inserts", "evictions", "expired")]
    assert list(sections["ai_versions"]) == ["ai_RedisAI_version", "ai_low_level_API_version",
                                             "ai_rdb_version"]
    cpu = sections["ai_cpu"]
    assert list(cpu)[:6] == ["ai_self_used_cpu_sys", "ai_self_used_cpu_user",
                             "ai_children_used_cpu_sys", "ai_children_used_cpu_user",
                             "ai_main_thread_used_cpu_sys", "ai_main_thread_used_cpu_user"]
    assert "ai_queue_CPU_bthread_n1_used_cpu_total" in cpu
    assert "ai_queue_CPU_bthread_n2_used_cpu_total" not in cpu
    for value in cpu.values():
        seconds, micros = value.split(".")
        assert seconds.isdigit() and len(micros) == 6 and micros.isdigit(), value


def test_model_on_cpu_1_gets_its_own_queue(r: redis.Redis) -> None:
    assert r.execute_command("AI.MODELSTORE", "m", "ONNX", "cpu:1", "BLOB", onnx_add()) == b"OK"
    cpu = info_sections(r)["ai_cpu"]
    # The queue name is upper-cased; the model keeps the device as given.
    assert "ai_queue_CPU:1_bthread_n1_used_cpu_total" in cpu
    assert "ai_queue_CPU_bthread_n1_used_cpu_total" in cpu
    assert r.execute_command("AI.MODELGET", "m", "META")[2:4] == [b"device", b"cpu:1"]
    assert run_info(r, "m")["device"] == b"cpu:1"
    tensorset(r, "a", np.array([1, 2], dtype=np.float32))
    assert modelexecute(r, "m", ["a", "a"], ["s", "p"]) == b"OK"
    np.testing.assert_array_equal(tensorget(r, "s"), [2, 4])


def test_device_names_cannot_make_threads_without_end(server_factory: ServerFactory) -> None:
    """Each device name gets a queue with threads of its own; past 64 queues a new device
    name is refused with RedisAI's queue error and no thread is made."""
    r = server_factory().client(socket_timeout=60)
    for i in range(1, 64):  # CPU is the first queue
        assert r.execute_command("AI.MODELSTORE", f"m{i}", "ONNX", f"CPU:{i}", "BLOB", onnx_add()) == b"OK"
    workers = len([k for k in info_sections(r)["ai_cpu"] if k.startswith("ai_queue_")])
    assert workers == 64
    with pytest.raises(redis.ResponseError, match="^Could not initialize queue on requested device$"):
        r.execute_command("AI.MODELSTORE", "m64", "ONNX", "CPU:64", "BLOB", onnx_add())
    assert r.exists("m64") == 0
    assert len([k for k in info_sections(r)["ai_cpu"] if k.startswith("ai_queue_")]) == 64
    tensorset(r, "a", np.array([1, 2], dtype=np.float32))
    assert modelexecute(r, "m63", ["a", "a"], ["s", "p"]) == b"OK"


def test_threads_per_queue_gives_each_queue_that_many_workers(server_factory: ServerFactory) -> None:
    server = server_factory(module_args=["THREADS_PER_QUEUE", "2"])
    r = server.client(socket_timeout=60)
    sections = info_sections(r)
    assert sections["ai_load_time_configs"]["ai_threads_per_queue"] == "2"
    queues = [k for k in sections["ai_cpu"] if k.startswith("ai_queue_")]
    assert queues == ["ai_queue_CPU_bthread_n1_used_cpu_total",
                      "ai_queue_CPU_bthread_n2_used_cpu_total"]
    r.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU:3", "BLOB", onnx_add())
    queues = [k for k in info_sections(r)["ai_cpu"] if k.startswith("ai_queue_")]
    assert sorted(queues) == ["ai_queue_CPU:3_bthread_n1_used_cpu_total",
                              "ai_queue_CPU:3_bthread_n2_used_cpu_total",
                              "ai_queue_CPU_bthread_n1_used_cpu_total",
                              "ai_queue_CPU_bthread_n2_used_cpu_total"]


def worker_cpu_s(r: redis.Redis) -> float:
    return float(info_sections(r)["ai_cpu"]["ai_queue_CPU_bthread_n1_used_cpu_total"])


def test_worker_spin_is_read_and_changed_with_ai_config(server_factory: ServerFactory) -> None:
    r = server_factory(module_args=["WORKER_SPIN_US", "0"]).client()
    assert r.execute_command("AI.CONFIG", "GET", "WORKER_SPIN_US") == 0
    assert r.execute_command("AI.CONFIG", "WORKER_SPIN_US", 250) == b"OK"
    assert r.execute_command("AI.CONFIG", "GET", "WORKER_SPIN_US") == 250
    for bad in ("-1", "1000001", "abc", "1.5", ""):
        with pytest.raises(redis.ResponseError, match="^WORKER_SPIN_US: microseconds, 0 to 1000000$"):
            r.execute_command("AI.CONFIG", "WORKER_SPIN_US", bad)
    with pytest.raises(redis.ResponseError, match="^WORKER_SPIN_US: missing value$"):
        r.execute_command("AI.CONFIG", "WORKER_SPIN_US")
    assert r.execute_command("AI.CONFIG", "GET", "WORKER_SPIN_US") == 250


def test_worker_spin_defaults_to_a_millisecond(r: redis.Redis) -> None:
    assert r.execute_command("AI.CONFIG", "GET", "WORKER_SPIN_US") == 1000


@pytest.mark.parametrize("spin_us, spins", [(200_000, True), (0, False)])
def test_a_worker_polls_for_the_spin_time_after_a_burst_then_sleeps(
        server_factory: ServerFactory, spin_us: int, spins: bool) -> None:
    # Requests that come back to back arm the worker: once the queue runs
    # dry it polls for WORKER_SPIN_US (here 200 ms, so it shows in its CPU
    # time), then sleeps and costs nothing while the server is idle.
    r = server_factory(module_args=["WORKER_SPIN_US", str(spin_us)]).client(socket_timeout=60)
    r.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", onnx_add())
    tensorset(r, "a", np.array([1, 2], dtype=np.float32))
    for _ in range(50):
        assert modelexecute(r, "m", ["a", "a"], ["s", "p"]) == b"OK"
    after_burst = worker_cpu_s(r)
    time.sleep(0.5)
    after_spin = worker_cpu_s(r)
    time.sleep(0.5)
    idle = worker_cpu_s(r) - after_spin
    assert (after_spin - after_burst >= 0.02) == spins, after_spin - after_burst
    assert idle < 0.02
    np.testing.assert_array_equal(tensorget(r, "s"), [2, 4])


def test_backends_load_lazily_and_show_in_info(server_factory: ServerFactory) -> None:
    server = server_factory()
    r = server.client(socket_timeout=60)
    assert info_sections(r)["ai_backends_info"] == {}
    # Parse errors load nothing.
    with pytest.raises(redis.ResponseError):
        r.execute_command("AI.MODELSTORE", "m", "TORCH", "bad_device", "BLOB", b"x")
    assert info_sections(r)["ai_backends_info"] == {}

    r.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", onnx_add())
    backends = info_sections(r)["ai_backends_info"]
    assert list(backends)[0] == "ai_onnxruntime_version"
    assert not any("Torch" in k or "TensorFlow" in k for k in backends)

    r.execute_command("AI.MODELSTORE", "m2", "TORCH", "CPU", "BLOB", torch_add())
    backends = info_sections(r)["ai_backends_info"]
    assert "ai_Torch_version" in backends and "ai_onnxruntime_version" in backends
    assert list(backends).index("ai_Torch_version") < list(backends).index("ai_onnxruntime_version")
    assert not any("TensorFlow" in k for k in backends)


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _backend_has_cuda(backend: str) -> bool:
    """Whether `backend`'s framework can put a model on a GPU here: torch may see
    CUDA while onnxruntime is a CPU build (no CUDAExecutionProvider)."""
    if backend == "ONNX":
        import onnxruntime

        return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    if backend == "TF":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    return _cuda_available()


GPU_ERRORS = {
    "TORCH": "GPU requested but Torch couldn't find CUDA",
    "ONNX": "GPU requested but ONNX couldn't find CUDA",
    "TF": "GPU requested but TF couldn't find CUDA",
}


@pytest.mark.parametrize("device", ["GPU", "gpu:0"])
@pytest.mark.parametrize("backend", ["TORCH", "ONNX", "TF"])
def test_gpu_model_without_cuda_is_refused_at_store(r: redis.Redis, backend: str, device: str) -> None:
    if _backend_has_cuda(backend):
        pytest.skip(f"{backend} finds CUDA on this machine: a GPU model would be stored")
    # Only this backend's model is built: a machine may lack the other frameworks.
    build, args = {"TORCH": (torch_add, []), "ONNX": (onnx_add, []),
                   "TF": (tf_mul, ["INPUTS", 2, "a", "b", "OUTPUTS", 1, "mul"])}[backend]
    blob = build()
    r.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "TAG", "before", "BLOB", onnx_add())
    with pytest.raises(redis.ResponseError) as err:
        r.execute_command("AI.MODELSTORE", "m", backend, device, *args, "BLOB", blob)
    assert str(err.value) == GPU_ERRORS[backend]
    with pytest.raises(redis.ResponseError) as err:
        r.execute_command("AI.MODELSTORE", "gpu_model", backend, device, *args, "BLOB", blob)
    assert str(err.value) == GPU_ERRORS[backend]
    assert r.exists("gpu_model") == 0
    # The model already under the key is kept.
    assert r.execute_command("AI.MODELGET", "m", "META")[:6] == [b"backend", b"ONNX", b"device",
                                                                b"CPU", b"tag", b"before"]
    assert r.execute_command("AI._MODELSCAN") == [[b"m", b"before"]]


def test_refused_store_leaves_no_device_queue(r: redis.Redis) -> None:
    with pytest.raises(redis.ResponseError):
        r.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU:7", "BLOB", b"not a model")
    assert not any(k.startswith("ai_queue_CPU:7_") for k in info_sections(r)["ai_cpu"])


@pytest.mark.gpu
@pytest.mark.skipif("not _cuda_available()",
                    reason="no CUDA device on this machine (torch.cuda.is_available() is False)")
@pytest.mark.parametrize("backend", ["TORCH", "ONNX"])
def test_gpu_model_runs_on_gpu(r: redis.Redis, backend: str) -> None:
    if not _backend_has_cuda(backend):
        pytest.skip(f"{backend} cannot use the GPU here (onnxruntime has no CUDAExecutionProvider)")
    blob = torch_add() if backend == "TORCH" else onnx_add()
    assert r.execute_command("AI.MODELSTORE", "m", backend, "GPU:0", "BLOB", blob) == b"OK"
    tensorset(r, "a", np.array([1, 2], dtype=np.float32))
    tensorset(r, "b", np.array([3, 4], dtype=np.float32))
    assert modelexecute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
    np.testing.assert_array_equal(tensorget(r, "s"), [4, 6])
    np.testing.assert_array_equal(tensorget(r, "p"), [3, 8])
    assert "ai_queue_GPU:0_bthread_n1_used_cpu_total" in info_sections(r)["ai_cpu"]


# ---------------------------------------------------------------------------
# TIMEOUT and blocked clients, behind a model that runs until it is killed


@pytest.fixture
def slow_server(server_factory: ServerFactory) -> RedisServer:
    """A server whose ONNX kill switch stops a run after 1 s, holding `slow`
    (runs until killed), `fast` (onnx_add) and their inputs."""
    server = server_factory(module_args=["MODEL_EXECUTION_TIMEOUT", "1000"])
    r = server.client(socket_timeout=60)
    r.execute_command("AI.MODELSTORE", "slow", "ONNX", "CPU", "BLOB", mb.onnx_slow(8))
    r.execute_command("AI.MODELSTORE", "fast", "ONNX", "CPU", "BLOB", onnx_add())
    tensorset(r, "x", np.eye(8, dtype=np.float32))
    tensorset(r, "a", np.array([1, 2], dtype=np.float32))
    return server


class SlowRun(threading.Thread):
    """AI.MODELEXECUTE of the slow model on a connection of its own."""

    def __init__(self, server: RedisServer, output: str = "y") -> None:
        super().__init__(daemon=True)
        self.client = server.client(socket_timeout=60)
        self.output = output
        self.reply: object = None

    def run(self) -> None:
        try:
            self.reply = modelexecute(self.client, "slow", ["x"], [self.output])
        except redis.ResponseError as exc:
            self.reply = exc


def test_job_waiting_behind_a_slow_model_times_out(slow_server: RedisServer) -> None:
    r = slow_server.client(socket_timeout=60)
    slow = SlowRun(slow_server)
    slow.start()
    wait_until(lambda: blocked_clients(r) == 1, what="the slow run to block its client")

    started = time.monotonic()
    results: dict[str, object] = {}

    def queued(name: str, command: tuple[object, ...]) -> None:
        results[name] = slow_server.client(socket_timeout=60).execute_command(*command)

    waiters = [
        threading.Thread(target=queued, args=("execute", (
            "AI.MODELEXECUTE", "fast", "INPUTS", 2, "a", "a", "OUTPUTS", 2, "s", "p", "TIMEOUT", 50))),
        threading.Thread(target=queued, args=("run", (
            "AI.MODELRUN", "fast", "TIMEOUT", 50, "INPUTS", "a", "a", "OUTPUTS", "s2", "p2"))),
    ]
    for t in waiters:
        t.start()
    for t in waiters:
        t.join(30)
    slow.join(30)
    # TIMEDOUT is a status reply, not an error; the jobs were skipped, not run.
    assert results == {"execute": b"TIMEDOUT", "run": b"TIMEDOUT"}
    assert time.monotonic() - started < 20
    assert r.exists("s", "p", "s2", "p2") == 0
    info = run_info(r, "fast")
    assert (info["calls"], info["errors"]) == (0, 0)

    # The slow run itself was stopped by the kill switch.
    assert isinstance(slow.reply, redis.ResponseError)
    assert "Exiting due to terminate flag being set to true" in str(slow.reply)
    assert run_info(r, "slow")["errors"] == 1

    # With the queue free, the same command with a TIMEOUT runs.
    assert modelexecute(r, "fast", ["a", "a"], ["s", "p"], "TIMEOUT", 10000) == b"OK"
    np.testing.assert_array_equal(tensorget(r, "s"), [2, 4])


def test_client_that_disconnects_while_blocked_does_not_hurt(slow_server: RedisServer) -> None:
    r = slow_server.client(socket_timeout=60)
    with socket.create_connection(("127.0.0.1", slow_server.port)) as sock:
        sock.sendall(resp("AI.MODELEXECUTE", "slow", "INPUTS", 1, "x", "OUTPUTS", 1, "gone"))
        wait_until(lambda: blocked_clients(r) == 1, what="the raw client to block")
    wait_until(lambda: blocked_clients(r) == 0, what="the disconnected client to go away")
    assert r.ping() is True

    # The model can even be deleted while its job still runs.
    assert r.execute_command("AI.MODELDEL", "slow") == b"OK"
    # The next job waits for the orphaned one to end, then runs normally.
    assert modelexecute(r, "fast", ["a", "a"], ["s", "p"]) == b"OK"
    np.testing.assert_array_equal(tensorget(r, "p"), [1, 4])
    assert r.exists("gone") == 0
    assert slow_server.proc is not None and slow_server.proc.poll() is None


# ---------------------------------------------------------------------------
# storing a large model while others keep working


def big_torch_model(offset: float, megabytes: int = 64) -> bytes:
    """forward(a, b) -> (a + b + offset, a * b), carrying `megabytes` of weights."""
    import torch

    class Heavy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weights = torch.nn.Parameter(
                torch.full((megabytes * 1024 * 1024 // 4,), offset), requires_grad=False)

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return a + b + self.weights[0], a * b

    return torchscript(Heavy())


def test_storing_a_large_model_keeps_server_and_old_model_serving(
        r: redis.Redis, shared_server: RedisServer) -> None:
    r.execute_command("AI.MODELSTORE", "m", "TORCH", "CPU", "BLOB", torch_add())
    tensorset(r, "a", np.array([1, 2], dtype=np.float32))
    tensorset(r, "b", np.array([3, 4], dtype=np.float32))
    assert modelexecute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
    big = big_torch_model(100.0, megabytes=200)
    assert 200 * 1024 * 1024 < len(big) < 220 * 1024 * 1024

    storer = shared_server.client(socket_timeout=120, single_connection_client=True)
    storer_id = storer.client_id()
    stored: dict[str, object] = {}
    store_done = threading.Event()
    stop_pinging = threading.Event()
    latencies: list[float] = []

    def store() -> None:
        try:
            stored["reply"] = storer.execute_command("AI.MODELSTORE", "m", "TORCH", "CPU", "BLOB", big)
        except Exception as exc:  # reported by the assertion below
            stored["reply"] = exc
        finally:
            store_done.set()

    def ping() -> None:
        pinger = shared_server.client(socket_timeout=60)
        while not stop_pinging.is_set():
            started = time.perf_counter()
            pinger.ping()
            latencies.append(time.perf_counter() - started)
            time.sleep(0.001)

    pinger = threading.Thread(target=ping, daemon=True)
    pinger.start()
    wait_until(lambda: len(latencies) >= 5, what="the first PINGs")
    store_thread = threading.Thread(target=store, daemon=True)
    store_thread.start()

    runs_while_blocked = 0
    deadline = time.monotonic() + 60
    while not store_done.is_set() and time.monotonic() < deadline:
        listing = r.execute_command("CLIENT", "LIST", "ID", storer_id).decode()
        if "cmd=ai.modelstore" in listing and " flags=b" in listing:
            # The store is under way: the key still has the previous model.
            assert modelexecute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
            np.testing.assert_array_equal(tensorget(r, "s"), [4, 6])
            runs_while_blocked += 1
        time.sleep(0.002)
    store_thread.join(60)
    stop_pinging.set()
    pinger.join(10)

    assert stored.get("reply") == b"OK"
    assert runs_while_blocked >= 1
    assert modelexecute(r, "m", ["a", "b"], ["s", "p"]) == b"OK"
    np.testing.assert_array_equal(tensorget(r, "s"), [104, 106])
    assert r.execute_command("AI.MODELGET", "m", "BLOB") == big
    assert len(latencies) >= 20
    p99 = float(np.percentile(latencies, 99))
    print(f"PING p99 {p99 * 1000:.2f} ms over {len(latencies)} PINGs during a 200 MB store")
    assert p99 < 0.020, f"PING p99 {p99 * 1000:.1f} ms over {len(latencies)} PINGs"
    # Drop the big model before the next story.
    assert r.execute_command("AI.MODELDEL", "m") == b"OK"
