"""Tiny models built in memory, as the bytes AI.MODELSTORE takes, for tests and benchmarks.

Each builder imports its framework when called, so importing this module is cheap.
The fraud-detection MLP exists for TORCH and ONNX with the same weights, and
`mlp_reference` computes its output with numpy, so every backend can be checked
against one reference.

ONNX graphs are written with onnx.helper rather than torch.onnx.export: it is
fully offline and exact. (torch 2.13's default exporter needs onnxscript, which
is not installed; the legacy TorchScript exporter still works with
`dynamo=False` but warns that it is deprecated.)
"""

from __future__ import annotations

import io
import tarfile
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ONNX_OPSET = 17
ONNX_IR_VERSION = 8  # what onnxruntime 1.1x and later all read


# ---- the fraud-detection MLP -----------------------------------------------------------

@dataclass(frozen=True)
class MLPWeights:
    """Weights of softmax(relu(cat(transaction, reference) @ w1 + b1) @ w2 + b2)."""

    w1: np.ndarray  # [in_features + ref_features, hidden]
    b1: np.ndarray  # [hidden]
    w2: np.ndarray  # [hidden, classes]
    b2: np.ndarray  # [classes]


def mlp_weights(in_features: int = 30, ref_features: int = 256, hidden: int = 64,
                classes: int = 2, seed: int = 0) -> MLPWeights:
    rng = np.random.default_rng(seed)
    scale = 1.0 / np.sqrt(in_features + ref_features)
    return MLPWeights(
        w1=(rng.standard_normal((in_features + ref_features, hidden)) * scale).astype(np.float32),
        b1=(rng.standard_normal(hidden) * 0.1).astype(np.float32),
        w2=(rng.standard_normal((hidden, classes)) / np.sqrt(hidden)).astype(np.float32),
        b2=(rng.standard_normal(classes) * 0.1).astype(np.float32),
    )


def mlp_inputs(batch: int = 1, in_features: int = 30, ref_features: int = 256,
               seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A (transaction [batch, in_features], reference [batch, ref_features]) pair."""
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((batch, in_features)).astype(np.float32),
        rng.standard_normal((batch, ref_features)).astype(np.float32),
    )


def mlp_reference(weights: MLPWeights, transaction: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The MLP's output computed with numpy (float64, then float32)."""
    x = np.concatenate([transaction, reference], axis=1).astype(np.float64)
    hidden = np.maximum(x @ weights.w1 + weights.b1, 0.0)
    logits = hidden @ weights.w2 + weights.b2
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def torch_mlp(in_features: int = 30, ref_features: int = 256, hidden: int = 64,
              classes: int = 2, seed: int = 0) -> bytes:
    """TorchScript MLP: forward(transaction [N, 30], reference [N, 256]) -> [N, 2]."""
    import torch

    weights = mlp_weights(in_features, ref_features, hidden, classes, seed)

    class FraudMLP(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden = torch.nn.Linear(in_features + ref_features, hidden)
            self.out = torch.nn.Linear(hidden, classes)
            with torch.no_grad():
                # nn.Linear keeps weights as [out, in].
                self.hidden.weight.copy_(torch.from_numpy(weights.w1.T.copy()))
                self.hidden.bias.copy_(torch.from_numpy(weights.b1))
                self.out.weight.copy_(torch.from_numpy(weights.w2.T.copy()))
                self.out.bias.copy_(torch.from_numpy(weights.b2))

        def forward(self, transaction: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
            x = torch.cat([transaction, reference], dim=1)
            return torch.softmax(self.out(torch.relu(self.hidden(x))), dim=1)

    return _torchscript_bytes(FraudMLP().eval())


def torch_add() -> bytes:
    """TorchScript forward(a, b) -> (a + b, a * b)."""
    import torch

    class AddMul(torch.nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return a + b, a * b

    return _torchscript_bytes(AddMul())


def torch_list_outputs() -> bytes:
    """TorchScript forward(a) -> [a, a + 1, a + 2], a list literal: 3 outputs known at load."""
    import torch

    class ListOut(torch.nn.Module):
        def forward(self, a: torch.Tensor) -> list[torch.Tensor]:
            return [a, a + 1, a + 2]

    return _torchscript_bytes(ListOut())


def torch_list_built_in_loop() -> bytes:
    """TorchScript forward(a, n) -> [a + 0, ..., a + n-1]: the output count depends on the run."""
    import torch

    class LoopOut(torch.nn.Module):
        def forward(self, a: torch.Tensor, n: torch.Tensor) -> list[torch.Tensor]:
            out: list[torch.Tensor] = []
            for k in range(int(n.item())):
                out.append(a + k)
            return out

    return _torchscript_bytes(LoopOut())


def torch_busy() -> bytes:
    """TorchScript forward(a) -> 300 rounds of tanh(x @ a): keeps a worker busy for ~10 ms per
    run on a [n, n] input."""
    import torch

    class Busy(torch.nn.Module):
        def forward(self, a: torch.Tensor) -> torch.Tensor:
            x = a
            for _ in range(300):
                x = torch.tanh(torch.mm(x, a))
            return x

    return _torchscript_bytes(Busy())


def torch_device_probe(features: int = 4, seed: int = 0) -> bytes:
    """TorchScript forward(a [N, features]) -> (a @ w + 1, [device index of w, device index of a]).

    The second output says where the model ran: -1 for the CPU, n for cuda:n. The
    weights are a buffer, so they move with the module when it is put on a device.
    """
    import torch

    weights = np.random.default_rng(seed).standard_normal((features, features)).astype(np.float32)

    class DeviceProbe(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("w", torch.from_numpy(weights))

        def forward(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            where = torch.tensor([self.w.get_device(), a.get_device()], dtype=torch.int64)
            return torch.mm(a, self.w) + 1, where

    return _torchscript_bytes(DeviceProbe())


def torch_large(megabytes: int) -> bytes:
    """TorchScript forward(a [1, 1024]) -> a @ w, with a float32 w of about `megabytes` MB:
    a model whose size shows in the device's memory."""
    import torch

    rows = 1024
    columns = megabytes * 1024 * 1024 // (4 * rows)

    class Large(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("w", torch.full((rows, columns), 0.5))

        def forward(self, a: torch.Tensor) -> torch.Tensor:
            return torch.mm(a, self.w)

    return _torchscript_bytes(Large())


def torch_allocating() -> bytes:
    """TorchScript forward(n [1] int64) -> [n]: the sum of n float32 ones made on n's device,
    a run whose memory the caller picks."""
    import torch

    class Allocating(torch.nn.Module):
        def forward(self, n: torch.Tensor) -> torch.Tensor:
            return torch.ones(int(n.item()), device=n.device).sum().reshape(1)

    return _torchscript_bytes(Allocating())


def _torchscript_bytes(module: object) -> bytes:
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # torch 2.13 marks TorchScript deprecated; it is still what RedisAI clients send.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(module), buffer)
    return buffer.getvalue()


# ---- ONNX ------------------------------------------------------------------------------

def onnx_mlp(in_features: int = 30, ref_features: int = 256, hidden: int = 64,
             classes: int = 2, seed: int = 0) -> bytes:
    """The MLP of torch_mlp (same weights) as ONNX: inputs transaction, reference; output output."""
    from onnx import TensorProto, helper, numpy_helper

    weights = mlp_weights(in_features, ref_features, hidden, classes, seed)
    nodes = [
        helper.make_node("Concat", ["transaction", "reference"], ["x"], axis=1),
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]),
        helper.make_node("Relu", ["h"], ["h_relu"]),
        helper.make_node("Gemm", ["h_relu", "w2", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["output"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "fraud_mlp",
        [helper.make_tensor_value_info("transaction", TensorProto.FLOAT, ["N", in_features]),
         helper.make_tensor_value_info("reference", TensorProto.FLOAT, ["N", ref_features])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", classes])],
        [numpy_helper.from_array(getattr(weights, name), name) for name in ("w1", "b1", "w2", "b2")],
    )
    return _onnx_bytes(graph)


def onnx_add() -> bytes:
    """ONNX (a, b) float [2] -> (sum = a + b, product = a * b): fixed shapes, to test shape errors."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["sum"]), helper.make_node("Mul", ["a", "b"], ["product"])],
        "add_mul",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [2]) for name in ("a", "b")],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [2]) for name in ("sum", "product")],
    )
    return _onnx_bytes(graph)


def onnx_string_identity() -> bytes:
    """ONNX STRING [N] -> the same strings."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["text"], ["same"])], "strings",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["N"])],
        [helper.make_tensor_value_info("same", TensorProto.STRING, ["N"])],
    )
    return _onnx_bytes(graph)


def onnx_slow(size: int = 128) -> bytes:
    """ONNX x [size, size] -> x @ I repeated by a Loop of 10^9 steps: runs until terminated."""
    from onnx import TensorProto, helper, numpy_helper

    square = [size, size]
    body = helper.make_graph(
        [helper.make_node("MatMul", ["y_in", "identity"], ["y_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "step",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("y_in", TensorProto.FLOAT, square)],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("y_out", TensorProto.FLOAT, square)],
    )
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trip_count", "keep_going", "x"], ["y"], body=body)],
        "slow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, square)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, square)],
        [numpy_helper.from_array(np.array(10**9, dtype=np.int64), "trip_count"),
         numpy_helper.from_array(np.array(True), "keep_going"),
         numpy_helper.from_array(np.eye(size, dtype=np.float32), "identity")],
    )
    return _onnx_bytes(graph)


def onnx_with_external_data() -> bytes:
    """An ONNX model whose weights live in a separate file: a blob alone cannot carry them."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "external",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 16])],
        [numpy_helper.from_array(np.ones((16, 16), dtype=np.float32), "w")],
    )
    model = _onnx_model(graph)
    with tempfile.TemporaryDirectory() as workdir:
        path = Path(workdir) / "model.onnx"
        onnx.save_model(model, str(path), save_as_external_data=True,
                        all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
        return path.read_bytes()


def onnx_matmul(weights: np.ndarray, name: str = "matmul") -> bytes:
    """y = x @ weights for x FLOAT [1, rows]: a model whose blob is its weights.

    Many distinct small models (one set of weights each) for the session-budget
    stories and benchmarks, or one big one whose load takes a while."""
    from onnx import TensorProto, helper, numpy_helper

    rows, cols = weights.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, rows])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cols])],
        [numpy_helper.from_array(weights.astype(np.float32), "w")])
    return _onnx_model(graph).SerializeToString()


@dataclass(frozen=True)
class IrisModel:
    blob: bytes
    classifier: object  # the fitted sklearn LogisticRegression
    features: np.ndarray  # float32 [150, 4]


def onnx_iris() -> IrisModel:
    """scikit-learn LogisticRegression on iris, converted by skl2onnx (ZipMap output).

    Inputs float_input FLOAT [N, 4]; outputs output_label INT64 [N] and
    output_probability, a sequence of {label: probability} maps.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    classifier = LogisticRegression(max_iter=500).fit(features, labels)
    model = convert_sklearn(
        classifier,
        initial_types=[("float_input", FloatTensorType([None, 4]))],
        target_opset={"": ONNX_OPSET, "ai.onnx.ml": 3},
    )
    return IrisModel(model.SerializeToString(), classifier, features.astype(np.float32))


def _onnx_model(graph: object) -> object:
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
    model.ir_version = ONNX_IR_VERSION
    return model


def _onnx_bytes(graph: object) -> bytes:
    return _onnx_model(graph).SerializeToString()


# ---- TF --------------------------------------------------------------------------------

def tf_graph_def_mul() -> bytes:
    """Frozen GraphDef: placeholders a, b (float, any shape); mul = a * b (RedisAI's graph.pb)."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        a = tf.compat.v1.placeholder(tf.float32, name="a")
        b = tf.compat.v1.placeholder(tf.float32, name="b")
        tf.multiply(a, b, name="mul")
    return graph.as_graph_def().SerializeToString()


def tf_graph_def_mlp(in_features: int = 30, ref_features: int = 256, hidden: int = 64,
                     classes: int = 2, seed: int = 0) -> bytes:
    """The MLP of torch_mlp as a frozen GraphDef: placeholders transaction, reference; node output."""
    import tensorflow as tf

    weights = mlp_weights(in_features, ref_features, hidden, classes, seed)
    graph = tf.Graph()
    with graph.as_default():
        transaction = tf.compat.v1.placeholder(tf.float32, [None, in_features], name="transaction")
        reference = tf.compat.v1.placeholder(tf.float32, [None, ref_features], name="reference")
        x = tf.concat([transaction, reference], axis=1)
        h = tf.nn.relu(tf.matmul(x, tf.constant(weights.w1)) + tf.constant(weights.b1))
        logits = tf.matmul(h, tf.constant(weights.w2)) + tf.constant(weights.b2)
        tf.nn.softmax(logits, axis=1, name="output")
    return graph.as_graph_def().SerializeToString()


def tf_graph_def_string_join() -> bytes:
    """Frozen GraphDef: placeholder text (STRING); joined = text + text, element-wise."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        text = tf.compat.v1.placeholder(tf.string, name="text")
        tf.strings.join([text, text], name="joined")
    return graph.as_graph_def().SerializeToString()


def tf_saved_model_archive(archive_format: str = "tar") -> bytes:
    """A SavedModel directory packed as "tar", "tar.gz" or "zip".

    serving_default(x FLOAT [None, 3], y FLOAT [None, 3]) -> {"sum": x + y, "scaled": x * 2}
    (the 2 is a variable, restored at load).
    """
    import tensorflow as tf

    class Scaler(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = tf.Variable(2.0)

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x"),
                                      tf.TensorSpec([None, 3], tf.float32, name="y")])
        def serve(self, x: tf.Tensor, y: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"sum": x + y, "scaled": x * self.scale}

    module = Scaler()
    with tempfile.TemporaryDirectory() as workdir:
        export_dir = Path(workdir) / "scaler"
        tf.saved_model.save(module, str(export_dir), signatures={"serving_default": module.serve})
        return _archive(export_dir, archive_format)


def _archive(directory: Path, archive_format: str) -> bytes:
    """`directory` and everything under it, with paths relative to its parent."""
    buffer = io.BytesIO()
    if archive_format == "zip":
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(directory.rglob("*")):
                archive.write(path, path.relative_to(directory.parent))
    else:
        mode = "w:gz" if archive_format == "tar.gz" else "w"
        with tarfile.open(fileobj=buffer, mode=mode) as archive:
            archive.add(directory, arcname=directory.name)
    return buffer.getvalue()


# ---- TFLite ----------------------------------------------------------------------------

def tflite_mlp(in_features: int = 30, ref_features: int = 256, hidden: int = 64,
               classes: int = 2, seed: int = 0) -> bytes:
    """The MLP of torch_mlp as TFLite, for batch 1: inputs transaction [1, 30], reference [1, 256]."""
    import tensorflow as tf

    weights = mlp_weights(in_features, ref_features, hidden, classes, seed)

    @tf.function(input_signature=[tf.TensorSpec([1, in_features], tf.float32, name="transaction"),
                                  tf.TensorSpec([1, ref_features], tf.float32, name="reference")])
    def mlp(transaction: tf.Tensor, reference: tf.Tensor) -> tf.Tensor:
        x = tf.concat([transaction, reference], axis=1)
        h = tf.nn.relu(tf.matmul(x, weights.w1) + weights.b1)
        return tf.nn.softmax(tf.matmul(h, weights.w2) + weights.b2, axis=1)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([mlp.get_concrete_function()], mlp)
    return converter.convert()


def tflite_add_mul() -> bytes:
    """TFLite from a tf.function: inputs a, b FLOAT [1, 3]; outputs a + b and a * b."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 3], tf.float32, name="a"),
                                  tf.TensorSpec([1, 3], tf.float32, name="b")])
    def add_mul(a: tf.Tensor, b: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return a + b, a * b

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [add_mul.get_concrete_function()], add_mul
    )
    return converter.convert()
