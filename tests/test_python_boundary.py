"""The boundary between the C shim and Python, declared once and held to it.

User stories (an engineer changing either side of the bridge):
- every GIL hand-over in csrc/ goes through python/py_gil.c, and the Redis main thread
  never takes the GIL while it serves: start-up with backends, stores, model,
  script and DAG runs, scripts calling Redis, LOADBACKEND and releases leave
  no "main thread took the GIL" line in the log;
- the `_runtime` functions the C side calls are one list, the same in
  csrc/python/py_runtime.c and `_runtime.ENTRY_POINTS`, and each exists;
- the built-in `_redisai_shim` module's stub names exactly what py_bridge.c
  exports: functions, types, their attributes and DTYPES;
- the tensor types are one table (csrc/types/tensor.c): every type goes through a
  model run and comes back with its name, shape and bytes;
- a released model's session is dropped at once, also on a server that then
  sits idle.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest
import redis

from conftest import RedisServer, ServerFactory, wait_until
from redisai_py import _runtime

import model_builders as mb

REPO = Path(__file__).resolve().parent.parent
CSRC = REPO / "csrc"
STUB = REPO / "redisai_py" / "stubs" / "_redisai_shim.pyi"
MAIN_THREAD_GIL = "the Redis main thread took the GIL"


def c_source(name: str) -> str:
    """A C file (path under csrc/) with its comments removed (so prose naming an API is not a use)."""
    text = (CSRC / name).read_text()
    return re.sub(r"/\*.*?\*/|//[^\n]*", "", text, flags=re.S)


# ---- the GIL ---------------------------------------------------------------------------

GIL_APIS = re.compile(r"\b(PyEval_\w+|PyGILState_\w+|Py_BEGIN_ALLOW_THREADS|Py_END_ALLOW_THREADS|"
                      r"Py_BLOCK_THREADS|Py_UNBLOCK_THREADS|PyThreadState_Swap)\b")


def test_only_py_gil_c_takes_or_drops_the_gil() -> None:
    """An engineer greps for a GIL hand-over and finds them all in one file."""
    uses = {str(path.relative_to(CSRC)): sorted(set(GIL_APIS.findall(c_source(str(path.relative_to(CSRC))))))
            for path in sorted(CSRC.rglob("*.[ch]"))}
    elsewhere = {name: found for name, found in uses.items() if found and name != "python/py_gil.c"}
    assert elsewhere == {}
    assert {"PyEval_SaveThread", "PyEval_RestoreThread", "PyGILState_Ensure"} <= set(uses["python/py_gil.c"])


SCRIPT = '''
def count(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("INCR", keys[0])
    return tensors[0] + tensors[0]
'''


def serve_every_kind_of_request(client: redis.Redis) -> None:
    """Stores, runs (model, script calling Redis, DAG), a backend load and releases."""
    assert client.execute_command("AI.MODELSTORE", "m", "TORCH", "CPU", "BLOB", mb.torch_add()) == b"OK"
    assert client.execute_command("AI.MODELSTORE", "o", "ONNX", "CPU", "BLOB", mb.onnx_add()) == b"OK"
    assert client.execute_command("AI.SCRIPTSTORE", "s", "CPU", "ENTRY_POINTS", 1, "count",
                                  "SOURCE", SCRIPT) == b"OK"
    for key in ("a", "b"):
        assert client.execute_command("AI.TENSORSET", key, "FLOAT", 2, "VALUES", 1, 2) == b"OK"
    assert client.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "b", "OUTPUTS", 2, "c", "e") == b"OK"
    assert client.execute_command("AI.MODELEXECUTE", "o", "INPUTS", 2, "a", "b",
                                  "OUTPUTS", 2, "s1", "p1") == b"OK"
    assert client.execute_command("AI.SCRIPTEXECUTE", "s", "count", "KEYS", 1, "n",
                                  "INPUTS", 1, "a", "OUTPUTS", 1, "d") == b"OK"
    assert client.execute_command("AI.DAGEXECUTE", "LOAD", 2, "a", "b", "|>",
                                  "AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "b", "OUTPUTS", 2, "x", "y",
                                  "|>", "AI.TENSORGET", "x", "VALUES") == [b"OK", [b"2", b"4"]]
    assert client.execute_command("AI.CONFIG", "LOADBACKEND", "TFLITE", "redisai_tflite.so") == b"OK"
    assert client.delete("m", "s") == 2
    assert client.execute_command("AI.MODELSTORE", "o", "ONNX", "CPU", "BLOB", mb.onnx_add()) == b"OK"
    assert client.get("n") == b"1"


def test_main_thread_never_takes_the_gil_while_serving(server_factory: ServerFactory) -> None:
    """A server that loads a backend at start-up, then serves every kind of
    request, never has its main thread wait for Python."""
    server = server_factory(module_args=["TORCH", "redisai_torch.so"])
    client = server.client()
    serve_every_kind_of_request(client)
    assert client.ping()
    log = server.log()
    assert "backend TORCH loaded" in log
    assert MAIN_THREAD_GIL not in log


def test_a_store_inside_multi_leaves_the_main_thread_out_of_python(server: RedisServer) -> None:
    """MULTI: MODELSTORE cannot block, so the session is made before EXEC
    replies; the main thread should wait for a worker, not take the GIL.
    (Until then this shows the check sees a main-thread take.)"""
    client = server.client()
    pipe = client.pipeline(transaction=True)
    pipe.execute_command("AI.MODELSTORE", "m", "TORCH", "CPU", "BLOB", mb.torch_add())
    assert pipe.execute() == [b"OK"]
    wait_until(lambda: client.ping(), what="the server to answer")
    assert MAIN_THREAD_GIL not in server.log()


# ---- the _runtime entry points ----------------------------------------------------------

def c_entry_points() -> dict[str, str]:
    """py_runtime.c's ENTRY_POINT_NAMES table: enum name -> Python function name."""
    source = c_source("python/py_runtime.c")
    table = re.search(r"ENTRY_POINT_NAMES\[RAI_PY_ENTRY_COUNT\]\s*=\s*\{(.*?)\};", source, re.S)
    assert table is not None, "py_runtime.c has no ENTRY_POINT_NAMES table"
    return dict(re.findall(r"\[(RAI_PY_\w+)\]\s*=\s*\"(\w+)\"", table.group(1)))


def test_the_c_side_calls_exactly_the_declared_runtime_functions() -> None:
    """One list on each side, the same names, every one a function of _runtime."""
    table = c_entry_points()
    enum = re.search(r"typedef enum \{(.*?)\} RAI_PyEntry;", c_source("python/py_runtime.h"), re.S)
    assert enum is not None
    members = [m for m in re.findall(r"RAI_PY_\w+", enum.group(1)) if m != "RAI_PY_ENTRY_COUNT"]
    assert sorted(table) == sorted(members)
    assert sorted(table.values()) == sorted(_runtime.ENTRY_POINTS)
    assert len(set(_runtime.ENTRY_POINTS)) == len(_runtime.ENTRY_POINTS)
    for name in _runtime.ENTRY_POINTS:
        assert callable(getattr(_runtime, name)), name


def test_the_c_side_reaches_runtime_only_through_the_table() -> None:
    """No call by a name spelled elsewhere: no PyObject_CallMethod in the
    bridge, and only py_runtime.c reads attributes of the _runtime module."""
    for path in sorted(CSRC.glob("py_*.c")):
        source = c_source(path.name)
        assert "PyObject_CallMethod" not in source, path.name
        if path.name != "py_runtime.c":
            assert "GetAttrString(runtime" not in source, path.name


# ---- the shim module's stub -------------------------------------------------------------

def c_shim_exports() -> dict[str, set[str]]:
    """What py_bridge.c exports: module functions and objects, and each type's attributes."""
    source = c_source("python/py_bridge.c")
    methods = re.search(r"PyMethodDef ShimMethods\[\]\s*=\s*\{(.*?)\};", source, re.S)
    assert methods is not None
    exports = {"": set(re.findall(r"\{\"(\w+)\",", methods.group(1)))}
    # The function runs' methods (py_fn_runs.c), added to the same module at its creation.
    fn_runs = re.search(r"PyMethodDef FnRunMethods\[\]\s*=\s*\{(.*?)\};", c_source("python/py_fn_runs.c"), re.S)
    assert fn_runs is not None
    exports[""] |= set(re.findall(r"\{\"(\w+)\",", fn_runs.group(1)))
    exports[""] |= set(re.findall(r"PyModule_AddObject\(module, \"(\w+)\"", source))
    for type_name in ("Tensor", "Model", "Script"):
        getset = re.search(rf"PyGetSetDef {type_name}GetSet\[\]\s*=\s*\{{(.*?)\}};", source, re.S)
        assert getset is not None, type_name
        exports[type_name] = set(re.findall(r"\{\"(\w+)\",", getset.group(1)))
    return exports


def stub_exports() -> dict[str, set[str]]:
    tree = ast.parse(STUB.read_text())
    exports: dict[str, set[str]] = {"": set()}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            exports[""].add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            exports[""].add(node.target.id)
        if isinstance(node, ast.ClassDef):
            exports[node.name] = {item.name for item in node.body if isinstance(item, ast.FunctionDef)}
    return exports


def test_the_shim_stub_declares_exactly_what_py_bridge_exports() -> None:
    assert stub_exports() == c_shim_exports()


# ---- one dtype table --------------------------------------------------------------------

def c_dtypes() -> list[tuple[str, str | None, int]]:
    """tensor.c's RAI_DTYPES rows as the shim exports them: (name, format, size)."""
    rows = re.findall(r"\[RAI_DTYPE_\w+\]\s*=\s*\{\"(\w+)\",\s*\w+,\s*\d+,\s*(\d+),\s*(\"[^\"]*\"|NULL)\}",
                      c_source("types/tensor.c"))
    return [(name, None if fmt == "NULL" else fmt.strip('"'), int(size)) for name, size, fmt in rows]


NUMPY_OF = {"FLOAT": np.float32, "DOUBLE": np.float64, "INT8": np.int8, "INT16": np.int16,
            "INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8, "UINT16": np.uint16,
            "BOOL": np.bool_}


def test_python_derives_numpy_types_from_the_shim_table() -> None:
    """What _runtime makes of tensor.c's table is what a RedisAI client expects."""
    table = c_dtypes()
    assert [name for name, _, _ in table] == [*NUMPY_OF, "STRING"]
    assert _runtime.numeric_dtypes(table) == {name: np.dtype(t) for name, t in NUMPY_OF.items()}
    with pytest.raises(RuntimeError, match="is 4 bytes, not 8"):
        _runtime.numeric_dtypes([("FLOAT", "f", 8)])


def onnx_identity(onnx_type: int) -> bytes:
    from onnx import helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "identity",
        [helper.make_tensor_value_info("x", onnx_type, None)],
        [helper.make_tensor_value_info("y", onnx_type, None)],
    )
    return mb._onnx_bytes(graph)


def test_every_tensor_type_comes_back_from_a_model_run_unchanged(server: RedisServer) -> None:
    """A user stores a tensor of each type, runs it through an ONNX Identity
    model, and reads back the same type, shape and bytes."""
    from onnx import TensorProto

    client = server.client()
    onnx_types = {"FLOAT": TensorProto.FLOAT, "DOUBLE": TensorProto.DOUBLE, "INT8": TensorProto.INT8,
                  "INT16": TensorProto.INT16, "INT32": TensorProto.INT32, "INT64": TensorProto.INT64,
                  "UINT8": TensorProto.UINT8, "UINT16": TensorProto.UINT16, "BOOL": TensorProto.BOOL}
    rng = np.random.default_rng(7)
    for name, numpy_type in NUMPY_OF.items():
        values = (rng.integers(0, 2, (2, 3)) if name == "BOOL" else rng.integers(-100, 100, (2, 3)))
        array = values.astype(numpy_type)
        assert client.execute_command("AI.MODELSTORE", f"id:{name}", "ONNX", "CPU",
                                      "BLOB", onnx_identity(onnx_types[name])) == b"OK"
        assert client.execute_command("AI.TENSORSET", f"in:{name}", name, 2, 3,
                                      "BLOB", array.tobytes()) == b"OK"
        assert client.execute_command("AI.MODELEXECUTE", f"id:{name}", "INPUTS", 1, f"in:{name}",
                                      "OUTPUTS", 1, f"out:{name}") == b"OK"
        reply = client.execute_command("AI.TENSORGET", f"out:{name}", "META", "BLOB")
        assert reply[:4] == [b"dtype", name.encode(), b"shape", [2, 3]], name
        assert reply[5] == array.tobytes(), name

    assert client.execute_command("AI.MODELSTORE", "id:STRING", "ONNX", "CPU",
                                  "BLOB", mb.onnx_string_identity()) == b"OK"
    assert client.execute_command("AI.TENSORSET", "in:STRING", "STRING", 2,
                                  "VALUES", "ab", "c") == b"OK"
    assert client.execute_command("AI.MODELEXECUTE", "id:STRING", "INPUTS", 1, "in:STRING",
                                  "OUTPUTS", 1, "out:STRING") == b"OK"
    assert client.execute_command("AI.TENSORGET", "out:STRING", "META", "VALUES") == \
        [b"dtype", b"STRING", b"shape", [2], b"values", [b"ab", b"c"]]


def test_an_output_of_a_type_redis_has_not_is_a_clear_error(server: RedisServer) -> None:
    """A TorchScript model returning float16 answers an error naming the type;
    its input and the server are intact."""
    import io

    import torch

    class Half(torch.nn.Module):
        def forward(self, a: torch.Tensor) -> torch.Tensor:
            return a.half()

    blob = io.BytesIO()
    torch.jit.save(torch.jit.script(Half()), blob)
    client = server.client()
    assert client.execute_command("AI.MODELSTORE", "half", "TORCH", "CPU", "BLOB", blob.getvalue()) == b"OK"
    assert client.execute_command("AI.TENSORSET", "a", "FLOAT", 2, "VALUES", 1, 2) == b"OK"
    with pytest.raises(redis.ResponseError, match="^unsupported output tensor type float16$"):
        client.execute_command("AI.MODELEXECUTE", "half", "INPUTS", 1, "a", "OUTPUTS", 1, "b")
    assert client.exists("b") == 0
    assert client.execute_command("AI.TENSORGET", "a", "VALUES") == [b"1", b"2"]


# ---- released sessions ------------------------------------------------------------------

def dropped_count(server: RedisServer) -> int:
    return sum(int(n) for n in re.findall(r"dropped the sessions of (\d+) released", server.log()))


def test_an_idle_server_drops_the_session_of_a_deleted_or_replaced_model(
        server_factory: ServerFactory) -> None:
    """An operator deletes a model (and replaces another) and sends nothing
    else: the sessions go at once, not at some later run."""
    server = server_factory(server_args=["--loglevel", "verbose"])
    # A long timeout: the first store imports torch, and a client that timed out
    # and sent it again would replace the model (a drop this story does not count).
    client = server.client(socket_timeout=120)
    for key in ("gone", "replaced"):
        assert client.execute_command("AI.MODELSTORE", key, "TORCH", "CPU", "BLOB", mb.torch_add()) == b"OK"
    assert client.execute_command("AI.TENSORSET", "a", "FLOAT", 2, "VALUES", 1, 2) == b"OK"
    assert client.execute_command("AI.MODELEXECUTE", "gone", "INPUTS", 2, "a", "a",
                                  "OUTPUTS", 2, "s", "p") == b"OK"
    assert dropped_count(server) == 0

    assert client.delete("gone") == 1
    wait_until(lambda: dropped_count(server) == 1, timeout=10, what="the deleted model's session to go")
    assert client.execute_command("AI.MODELSTORE", "replaced", "ONNX", "CPU", "BLOB", mb.onnx_add()) == b"OK"
    wait_until(lambda: dropped_count(server) == 2, timeout=10, what="the replaced model's session to go")
    assert client.execute_command("AI.MODELEXECUTE", "replaced", "INPUTS", 2, "a", "a",
                                  "OUTPUTS", 2, "s", "p") == b"OK"
    assert client.execute_command("AI.TENSORGET", "s", "VALUES") == [b"2", b"4"]
