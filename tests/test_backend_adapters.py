"""The four backend adapters, in process (no Redis): load, I/O names, results, error texts.

Each backend's models come from tests/model_builders.py. Error texts are the
client-visible ones from the RedisAI reference (section 5); where the
framework's own wording is passed through, the test checks the part clients
depend on.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import model_builders as builders
from redisai_py._errors import BackendError, BackendLoadError, one_line
from redisai_py.backends import ModelSession, ModelSpec, adapter, load_model

REPO_ROOT = Path(__file__).resolve().parent.parent


def spec(backend: str, device: str = "CPU", **options: object) -> ModelSpec:
    return ModelSpec(backend=backend, device=device, **options)  # type: ignore[arg-type]


def load_error(blob: bytes, model_spec: ModelSpec) -> str:
    with pytest.raises(BackendError) as raised:
        load_model(blob, model_spec)
    return str(raised.value)


def run_error(session: ModelSession, inputs: list[np.ndarray]) -> str:
    with pytest.raises(BackendError) as raised:
        session.run(inputs)
    return str(raised.value)


def read_only(array: np.ndarray) -> np.ndarray:
    """A read-only view, as the bridge hands out views of tensors Redis owns."""
    view = array.view()
    view.setflags(write=False)
    return view


# ---- registry, spec, errors ------------------------------------------------------------

def test_importing_the_package_imports_no_framework() -> None:
    code = (
        "import sys, redisai_py, redisai_py.backends, redisai_py.backends.base\n"
        "loaded = [m for m in ('torch', 'onnxruntime', 'tensorflow') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO_ROOT)


def test_unknown_backend_is_a_load_error() -> None:
    with pytest.raises(BackendLoadError):
        adapter("CAFFE")


@pytest.mark.parametrize(
    ("device", "on_gpu", "device_id"),
    [("CPU", False, -1), ("cpu:1", False, 1), ("GPU", True, -1), ("gpu:3", True, 3)],
)
def test_spec_device(device: str, on_gpu: bool, device_id: int) -> None:
    model_spec = spec("ONNX", device)
    assert (model_spec.on_gpu, model_spec.device_id) == (on_gpu, device_id)


def test_spec_rejects_other_devices() -> None:
    with pytest.raises(BackendError, match="^ERR unsupported device$"):
        spec("ONNX", "TPU").on_gpu


def test_errors_are_one_line_as_redisai_replies() -> None:
    assert one_line("a\nb\r\n\tc") == "a b  \tc"
    assert str(BackendError("Incompatible\n\t [[x]]")) == "Incompatible \t [[x]]"


# ---- TORCH -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def torch_mlp() -> ModelSession:
    return load_model(builders.torch_mlp(), spec("TORCH"))


def test_torch_mlp_names_and_results(torch_mlp: ModelSession) -> None:
    assert torch_mlp.input_names == ["transaction", "reference"]
    assert torch_mlp.output_names == [""]
    transaction, reference = builders.mlp_inputs(batch=4)
    expected = builders.mlp_reference(builders.mlp_weights(), transaction, reference)
    (output,) = torch_mlp.run([read_only(transaction), read_only(reference)])
    assert output.dtype == np.float32 and output.shape == (4, 2)
    assert output.flags.c_contiguous
    np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-6)


def test_torch_tuple_outputs_count_and_values() -> None:
    session = load_model(builders.torch_add(), spec("TORCH"))
    assert session.input_names == ["a", "b"]
    assert session.output_names == ["", ""]
    a, b = np.array([1, 2], np.int64), np.array([3, 4], np.int64)
    total, product = session.run([a, b])
    assert total.tolist() == [4, 6] and product.tolist() == [3, 8]
    assert total.dtype == np.int64


def test_torch_list_outputs_counted_from_the_graph() -> None:
    listed = load_model(builders.torch_list_outputs(), spec("TORCH"))
    assert listed.output_names == ["", "", ""]
    assert [o.tolist() for o in listed.run([np.array([1.0], np.float32)])] == [[1.0], [2.0], [3.0]]
    # A list built at run time has no count at load: empty names, the run decides.
    built = load_model(builders.torch_list_built_in_loop(), spec("TORCH"))
    assert built.input_names == ["a", "n"] and built.output_names == []
    assert len(built.run([np.zeros(2, np.float32), np.array(4)])) == 4


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int8, np.int16, np.int32,
                                   np.int64, np.uint8, np.bool_])
def test_torch_keeps_dtypes(dtype: type) -> None:
    session = load_model(builders.torch_add(), spec("TORCH"))
    x = np.ones((2, 2), dtype)
    outputs = session.run([x, x])
    assert [o.dtype for o in outputs] == [np.dtype(dtype)] * 2


def test_torch_inputs_are_not_written(torch_mlp: ModelSession) -> None:
    transaction, reference = builders.mlp_inputs()
    before = transaction.copy()
    torch_mlp.run([read_only(transaction), read_only(reference)])
    np.testing.assert_array_equal(transaction, before)


def test_torch_gpu_request_without_cuda() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available: a GPU model would load")
    for device in ("GPU", "GPU:0"):
        assert load_error(builders.torch_add(), spec("TORCH", device)) == (
            "GPU requested but Torch couldn't find CUDA"
        )


def test_torch_corrupt_and_truncated_blobs() -> None:
    blob = builders.torch_add()
    assert load_error(b"not a torchscript file", spec("TORCH"))
    assert "PytorchStreamReader failed reading zip archive" in load_error(
        blob[: len(blob) // 2], spec("TORCH")
    )


def test_torch_run_errors(torch_mlp: ModelSession) -> None:
    transaction, reference = builders.mlp_inputs()
    assert "forward() is missing value for argument 'reference'" in run_error(
        torch_mlp, [transaction]
    )
    wrong_shape = run_error(torch_mlp, [transaction[:, :29], reference])
    assert "mat1 and mat2 shapes cannot be multiplied" in wrong_shape
    assert "\n" not in wrong_shape
    assert "must have the same dtype" in run_error(torch_mlp, [transaction.astype(np.float64), reference])
    strings = np.array([b"a"], dtype=object)
    assert run_error(torch_mlp, [strings, reference]) == (
        "ERR The TORCH backend does not support STRING tensors"
    )


def test_torch_closed_session() -> None:
    session = load_model(builders.torch_add(), spec("TORCH"))
    session.close()
    x = np.ones(2, np.float32)
    assert run_error(session, [x, x]) == "ERR The TORCH model was freed"


# ---- ONNX ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def onnx_add() -> ModelSession:
    return load_model(builders.onnx_add(), spec("ONNX"))


def test_onnx_mlp_matches_the_reference() -> None:
    session = load_model(builders.onnx_mlp(), spec("ONNX", intra_op_threads=1))
    assert session.input_names == ["transaction", "reference"]
    assert session.output_names == ["output"]
    transaction, reference = builders.mlp_inputs(batch=3)
    expected = builders.mlp_reference(builders.mlp_weights(), transaction, reference)
    (output,) = session.run([read_only(transaction), read_only(reference)])
    np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-6)


def test_onnx_two_outputs(onnx_add: ModelSession) -> None:
    assert onnx_add.input_names == ["a", "b"]
    assert onnx_add.output_names == ["sum", "product"]
    total, product = onnx_add.run([np.array([1, 2], np.float32), np.array([3, 4], np.float32)])
    assert total.tolist() == [4, 6] and product.tolist() == [3, 8]


def test_onnx_runtime_error_texts(onnx_add: ModelSession) -> None:
    two, three = np.ones(2, np.float32), np.ones(3, np.float32)
    assert run_error(onnx_add, [three, two]) == (
        "Got invalid dimensions for input: a for the following indices  index: 0 Got: 3 "
        "Expected: 2  Please fix either the inputs or the model."
    )
    assert "Invalid rank for input: a Got: 2 Expected: 1 Please fix either the inputs or the model" in (
        run_error(onnx_add, [np.ones((1, 2), np.float32), two])
    )
    wrong_type = run_error(onnx_add, [np.ones(2, np.float64), two])
    assert wrong_type == "Unexpected input data type. Actual: (tensor(double)) , expected: (tensor(float))"
    assert run_error(onnx_add, [two]) == "ERR Expected 2 inputs but got 1"
    assert run_error(onnx_add, [two, two, two]) == "ERR Expected 2 inputs but got 3"


def test_onnx_create_error_texts() -> None:
    assert load_error(b"", spec("ONNX")) == "No graph was found in the protobuf."
    blob = builders.onnx_mlp()
    truncated = load_error(blob[: len(blob) // 2], spec("ONNX"))
    assert truncated == "Failed to load model because protobuf parsing failed."
    assert load_error(builders.onnx_with_external_data(), spec("ONNX")) == (
        "Initializer tensors with external data is not allowed."
    )


def test_onnx_gpu_request_without_cuda() -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime has CUDA: a GPU model would load")
    assert load_error(builders.onnx_add(), spec("ONNX", "GPU:0")) == (
        "ERR GPU requested but ONNX couldn't find CUDA"
    )


def test_onnx_iris_zipmap_comes_back_as_tensors() -> None:
    pytest.importorskip("sklearn", reason="scikit-learn (a test dependency) builds the model")
    pytest.importorskip("skl2onnx", reason="skl2onnx (a test dependency) converts the model")
    iris = builders.onnx_iris()
    session = load_model(iris.blob, spec("ONNX"))
    assert session.input_names == ["float_input"]
    assert session.output_names == ["output_label", "output_probability"]
    features = iris.features[::30]  # one row of each class, and then some
    labels, probabilities = session.run([features])
    assert labels.dtype == np.int64 and labels.shape == (len(features),)
    assert probabilities.dtype == np.float32 and probabilities.shape == (len(features), 3)
    np.testing.assert_array_equal(labels, iris.classifier.predict(features))
    np.testing.assert_allclose(probabilities, iris.classifier.predict_proba(features), atol=1e-5)
    np.testing.assert_array_equal(probabilities.argmax(axis=1), labels)


def test_onnx_strings_are_bytes_both_ways() -> None:
    session = load_model(builders.onnx_string_identity(), spec("ONNX"))
    text = np.array([b"hello", "w\u00f6rld".encode()], dtype=object)
    (same,) = session.run([text])
    assert same.dtype == object and same.tolist() == [b"hello", "w\u00f6rld".encode()]


def test_onnx_kill_switch_terminates_a_long_run() -> None:
    slow = load_model(builders.onnx_slow(), spec("ONNX", intra_op_threads=1, execution_timeout_ms=200))
    fast = load_model(builders.onnx_add(), spec("ONNX", execution_timeout_ms=200))
    watchdogs = [t for t in threading.enumerate() if t.name == "redisai-onnx-watchdog"]
    assert len(watchdogs) == 1, "one watchdog thread serves every session"
    started = time.monotonic()
    message = run_error(slow, [np.ones((128, 128), np.float32)])
    elapsed = time.monotonic() - started
    assert "Exiting due to terminate flag being set to true" in message
    assert not message.startswith("[ONNXRuntimeError]")
    assert 0.2 <= elapsed < 2.0
    # Runs that end in time are untouched, also after a terminated one.
    two = np.ones(2, np.float32)
    for _ in range(3):
        assert fast.run([two, two])[0].tolist() == [2, 2]


def test_onnx_closed_session(onnx_add: ModelSession) -> None:
    session = load_model(builders.onnx_add(), spec("ONNX"))
    session.close()
    two = np.ones(2, np.float32)
    assert run_error(session, [two, two]) == "ERR ONNXRuntime session was not allocated"


def test_onnx_memory_limit() -> None:
    # The capped arena is process-wide and registered once, so this runs in a child.
    code = """
import numpy as np
import model_builders as builders
from redisai_py.backends import ModelSpec, load_model, BackendError

def error(fn):
    try:
        fn()
    except BackendError as exc:
        return str(exc)
    raise AssertionError("no error")

capped = ModelSpec("ONNX", "CPU", memory_limit_mb=1)
session = load_model(builders.onnx_add(), capped)
assert session.run([np.ones(2, np.float32)] * 2)[0].tolist() == [2, 2]
mlp = load_model(builders.onnx_mlp(), capped)
big = builders.mlp_inputs(batch=4096)
assert error(lambda: mlp.run(list(big))) == (
    "Onnxruntime memory limit exceeded, memory allocation failed.")
assert mlp.run(list(builders.mlp_inputs(batch=2)))[0].shape == (2, 2)
wide = builders.onnx_mlp(hidden=1024)  # about 1.2 MB of weights
assert error(lambda: load_model(wide, capped)) == (
    "Exception during initialization: Onnxruntime memory limit exceeded, memory allocation failed.")
load_model(wide, ModelSpec("ONNX", "CPU"))  # uncapped sessions are not limited
print("ok")
"""
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{REPO_ROOT / 'tests'}"}
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


# ---- TF --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tf_graph_def() -> bytes:
    return builders.tf_graph_def_mul()


@pytest.fixture(scope="module")
def tf_mul(tf_graph_def: bytes) -> ModelSession:
    return load_model(tf_graph_def, spec("TF", inputs=("a", "b"), outputs=("mul",)))


def test_tf_graph_def_names_and_results(tf_mul: ModelSession) -> None:
    assert tf_mul.input_names == ["a", "b"] and tf_mul.output_names == ["mul"]
    a = np.array([[1, 2], [3, 4]], np.float32)
    (product,) = tf_mul.run([read_only(a), read_only(a)])
    np.testing.assert_array_equal(product, a * a)


def test_tf_run_error_texts(tf_mul: ModelSession) -> None:
    message = run_error(tf_mul, [np.ones(2, np.float32), np.ones((2, 2, 3), np.float32)])
    assert "Incompatible shapes: [2] vs. [2,2,3] \t [[{{node mul}}]]" in message
    assert "Type mismatch" in run_error(tf_mul, [np.ones(2, np.int32), np.ones(2, np.float32)])
    assert "Expected 2 feed tensors, but got 1" in run_error(tf_mul, [np.ones(2, np.float32)])


def test_tf_create_error_texts(tf_graph_def: bytes) -> None:
    names = {"inputs": ("a", "b"), "outputs": ("mul",)}
    assert load_error(b"not a graph", spec("TF", **names)) == "Invalid GraphDef"
    assert load_error(tf_graph_def[:-7], spec("TF", **names)) == "Invalid GraphDef"
    assert load_error(tf_graph_def, spec("TF", inputs=("a", "b", "bad_input"), outputs=("mul",))) == (
        'ERR Input node named "bad_input" not found in TF graph.'
    )
    assert load_error(tf_graph_def, spec("TF", inputs=("a", "b"), outputs=("mult",))) == (
        'ERR Output node named "mult" not found in TF graph'
    )


def test_tf_gpu_request_without_cuda(tf_graph_def: bytes) -> None:
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("TF sees a GPU: a GPU model would load")
    assert load_error(tf_graph_def, spec("TF", "GPU", inputs=("a", "b"), outputs=("mul",))) == (
        "ERR GPU requested but TF couldn't find CUDA"
    )


def test_tf_strings() -> None:
    session = load_model(builders.tf_graph_def_string_join(),
                         spec("TF", inputs=("text",), outputs=("joined",)))
    (joined,) = session.run([np.array([b"ab", b""], dtype=object)])
    assert joined.dtype == object and joined.tolist() == [b"abab", b""]


@pytest.fixture(scope="module", params=["tar", "tar.gz", "zip"])
def saved_model_archive(request: pytest.FixtureRequest) -> bytes:
    return builders.tf_saved_model_archive(request.param)


def test_tf_saved_model_archive(saved_model_archive: bytes) -> None:
    session = load_model(saved_model_archive, spec("TF"))
    assert session.input_names == ["x", "y"]
    assert session.output_names == ["scaled", "sum"]
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = np.ones((2, 3), np.float32)
    scaled, total = session.run([x, y])
    np.testing.assert_array_equal(scaled, x * 2)
    np.testing.assert_array_equal(total, x + y)


def test_tf_saved_model_names_given_at_store_pick_the_order() -> None:
    archive = builders.tf_saved_model_archive("tar")
    session = load_model(archive, spec("TF", inputs=("y", "x"), outputs=("sum",)))
    assert session.input_names == ["y", "x"] and session.output_names == ["sum"]
    x, y = np.ones((1, 3), np.float32), np.full((1, 3), 5, np.float32)
    (total,) = session.run([y, x])
    assert total.tolist() == [[6, 6, 6]]
    assert load_error(archive, spec("TF", inputs=("z",), outputs=("sum",))) == (
        'ERR Input node named "z" not found in TF graph.'
    )
    assert load_error(archive, spec("TF", inputs=("x", "y"), outputs=("product",))) == (
        'ERR Output node named "product" not found in TF graph'
    )


def test_tf_bad_archives() -> None:
    def tar_of(name: str, data: bytes) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
        return buffer.getvalue()

    assert load_error(tar_of("model/readme.txt", b"hi"), spec("TF")) == "Invalid GraphDef"
    assert "not allowed" in load_error(tar_of("../escape/saved_model.pb", b""), spec("TF"))
    assert load_error(b"PK\x03\x04 truncated zip", spec("TF")) == "Invalid GraphDef"


# ---- TFLITE ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tflite_blob() -> bytes:
    return builders.tflite_add_mul()


@pytest.fixture(scope="module")
def tflite_add_mul(tflite_blob: bytes) -> ModelSession:
    return load_model(tflite_blob, spec("TFLITE"))


def test_tflite_names_and_results(tflite_add_mul: ModelSession) -> None:
    assert tflite_add_mul.input_names == ["a", "b"]
    assert len(tflite_add_mul.output_names) == 2
    a, b = np.array([[1, 2, 3]], np.float32), np.full((1, 3), 2, np.float32)
    total, product = tflite_add_mul.run([read_only(a), read_only(b)])
    assert total.tolist() == [[3, 4, 5]] and product.tolist() == [[2, 4, 6]]


def test_tflite_resizes_inputs_when_the_shape_changes(tflite_add_mul: ModelSession) -> None:
    a = np.arange(12, dtype=np.float32).reshape(4, 3)
    total, _ = tflite_add_mul.run([a, a])
    np.testing.assert_array_equal(total, a + a)
    one = np.ones((1, 3), np.float32)
    assert tflite_add_mul.run([one, one])[0].tolist() == [[2, 2, 2]]


def test_tflite_error_texts(tflite_blob: bytes, tflite_add_mul: ModelSession) -> None:
    assert load_error(b"not a flatbuffer", spec("TFLITE")) == "Failed to load model from buffer"
    assert load_error(b"", spec("TFLITE")) == "Failed to load model from buffer"
    assert load_error(tflite_blob[: len(tflite_blob) // 2], spec("TFLITE")) == (
        "Failed to load model from buffer"
    )
    one = np.ones((1, 3), np.float32)
    assert run_error(tflite_add_mul, [one]) == "Inconsistent number of inputs"
    assert run_error(tflite_add_mul, [one.astype(np.float64), one]) == (
        "Input tensor type doesn't match the type expected by the model definition"
    )
    mismatch = run_error(tflite_add_mul, [one, np.ones((1, 4), np.float32)])
    assert mismatch in ("Failed to allocate tensors", "Failed to invoke TfLite")
    # The interpreter recovers once the shapes agree again.
    assert tflite_add_mul.run([one, one])[1].tolist() == [[1, 1, 1]]


def test_tflite_closed_session(tflite_blob: bytes) -> None:
    session = load_model(tflite_blob, spec("TFLITE"))
    session.close()
    one = np.ones((1, 3), np.float32)
    assert run_error(session, [one, one]) == "ERR The TFLITE model was freed"
