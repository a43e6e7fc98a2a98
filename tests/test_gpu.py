"""Models and scripts on a GPU: AI.MODELSTORE / AI.SCRIPTSTORE with device GPU or GPU:<n>.

User stories:
- a data scientist stores a TorchScript model on the GPU and gets the same
  answers as from the same model on the CPU (float tolerance), and can see
  that it ran there: AI.INFO and AI.MODELGET show the device as stored, INFO
  MODULES shows the GPU's run queue, and a probe model reports the CUDA
  device its weights and inputs were on;
- `GPU:0` (any case) names the first device; a GPU the machine does not have
  (`GPU:7`) is refused at store with a clear error, the key's old value kept;
- a TorchScript script stored on the GPU moves its (CPU) inputs to the device
  itself, as in RedisAI, and can run a GPU model through redisAI.model_execute;
- an ONNX model on the GPU, where onnxruntime has its CUDA provider;
- a GPU model deleted frees its device memory: storing and deleting it again
  and again does not grow what the device holds, and running it after the
  delete is refused;
- a GPU run that fails (a shape the model cannot take, more memory than the
  device has) gets an error and the GPU keeps serving;
- a GPU model survives DEBUG RELOAD and a BGSAVE (a fork of a process that
  holds a CUDA context) + restart, many clients (batched, several worker
  threads) share one GPU model, and a DAG moves tensors between a GPU and a
  CPU model.

Every story needs a CUDA device that torch sees; on a machine without one the
whole file is skipped with that reason (tests/test_models.py and
test_bad_input_* check that GPU requests are refused there). ONNX stories
also need onnxruntime's CUDAExecutionProvider.

Most stories share one server (FLUSHALL before each), with 4 worker threads
per queue so that the GPU queue runs requests side by side.
"""

from __future__ import annotations

import functools
import threading

import numpy as np
import pytest
import redis

import model_builders as mb
from conftest import RedisServer, ServerFactory, wait_until


@functools.cache
def cuda_device_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@functools.cache
def onnx_cuda_missing() -> str | None:
    """Why ONNX cannot run on the GPU here, or None when it can."""
    try:
        import onnxruntime
    except ImportError:
        return "onnxruntime is not installed"
    providers = onnxruntime.get_available_providers()
    if "CUDAExecutionProvider" not in providers:
        return (f"onnxruntime {onnxruntime.__version__} has no CUDAExecutionProvider "
                f"(a CPU build: {', '.join(providers)})")
    return None


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif("cuda_device_count() == 0",
                       reason="no CUDA on this machine (torch.cuda.is_available() is False)"),
]

SHARED_SERVER_MODULE_ARGS = ["THREADS_PER_QUEUE", "4"]
MODEL_EMPTY = "model key is empty"
# TorchScript's answer for a device it does not have (torch.py, script_runtime.py).
NO_SUCH_GPU = "GPU:{index} requested but Torch sees {count} CUDA device(s)"

_NUMPY_OF = {"FLOAT": np.float32, "DOUBLE": np.float64, "INT32": np.int32, "INT64": np.int64}
_NAME_OF = {np.dtype(v): k for k, v in _NUMPY_OF.items()}

# Entry points of the GPU script: inputs arrive on the CPU (as in RedisAI) and
# the script moves them; `where` is [device of the work, device of the input].
GPU_SCRIPT = '''
def matmul_on_gpu(tensors: List[Tensor], keys: List[str], args: List[str]):
    a = tensors[0].to(torch.device("cuda"))
    b = tensors[1].to(torch.device("cuda"))
    where = torch.tensor([a.get_device(), tensors[0].get_device()])
    return torch.mm(a, b) + 1, where

def run_model(tensors: List[Tensor], keys: List[str], args: List[str]):
    outputs = redisAI.model_execute(keys[0], [tensors[0].to(torch.device("cuda"))], 2)
    return outputs[0], outputs[1]
'''
GPU_SCRIPT_ENTRY_POINTS = ["matmul_on_gpu", "run_model"]


# ---------------------------------------------------------------------------
# helpers


def tensorset(r: redis.Redis, key: str, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array)
    assert r.execute_command("AI.TENSORSET", key, _NAME_OF[array.dtype], *array.shape,
                             "BLOB", array.tobytes()) == b"OK"


def tensorget(r: redis.Redis, key: str) -> np.ndarray:
    reply = r.execute_command("AI.TENSORGET", key, "META", "BLOB")
    assert reply[0] == b"dtype" and reply[2] == b"shape" and reply[4] == b"blob", reply
    return np.frombuffer(reply[5], dtype=_NUMPY_OF[reply[1].decode()]).reshape(reply[3])


def modelexecute(r: redis.Redis, key: str, inputs: list[str], outputs: list[str]) -> object:
    return r.execute_command("AI.MODELEXECUTE", key, "INPUTS", len(inputs), *inputs,
                             "OUTPUTS", len(outputs), *outputs)


def run_info(r: redis.Redis, key: str) -> dict[str, object]:
    reply = r.execute_command("AI.INFO", key)
    return {reply[i].decode(): reply[i + 1] for i in range(0, len(reply), 2)}


def queue_names(r: redis.Redis) -> set[str]:
    """The run queues INFO MODULES reports (ai_queue_<DEVICE>_bthread_n<i>_used_cpu_total)."""
    raw = redis.Redis(connection_pool=r.connection_pool)
    raw.set_response_callback("INFO", lambda response, **_: response)
    text = raw.execute_command("INFO", "MODULES").decode()
    return {line.split("_bthread_")[0].removeprefix("ai_queue_")
            for line in text.splitlines() if line.startswith("ai_queue_")}


def store(r: redis.Redis, key: str, backend: str, device: str, blob: bytes, *extra: object) -> object:
    return r.execute_command("AI.MODELSTORE", key, backend, device, *extra, "BLOB", blob)


def probe(r: redis.Redis, model: str, a: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Runs a torch_device_probe model on `a`: (its product, [device of w, device of a])."""
    tensorset(r, "probe_in", a)
    assert modelexecute(r, model, ["probe_in"], ["probe_out", "probe_where"]) == b"OK"
    return tensorget(r, "probe_out"), tensorget(r, "probe_where").tolist()


def device_memory_used() -> int:
    """Bytes in use on CUDA device 0, by every process (this one's context included)."""
    import torch

    free, total = torch.cuda.mem_get_info(0)
    return total - free


@functools.cache
def torch_mlp() -> bytes:
    return mb.torch_mlp()


@functools.cache
def device_probe() -> bytes:
    return mb.torch_device_probe()


@pytest.fixture
def r(shared_server: RedisServer, request: pytest.FixtureRequest) -> redis.Redis:
    request.node.redis_servers = [shared_server]  # conftest attaches its log on failure
    client = shared_server.client(socket_timeout=120)
    client.flushall()
    return client


# ---------------------------------------------------------------------------
# a TorchScript model on the GPU


def test_torch_model_on_gpu_gives_the_cpu_answers(r: redis.Redis) -> None:
    weights = mb.mlp_weights()
    transaction, reference = mb.mlp_inputs(batch=512)
    store(r, "mlp_cpu", "TORCH", "CPU", torch_mlp())
    assert store(r, "mlp_gpu", "TORCH", "GPU", torch_mlp()) == b"OK"
    tensorset(r, "transaction", transaction)
    tensorset(r, "reference", reference)

    for model, output in (("mlp_cpu", "on_cpu"), ("mlp_gpu", "on_gpu")):
        assert modelexecute(r, model, ["transaction", "reference"], [output]) == b"OK"
    on_cpu, on_gpu = tensorget(r, "on_cpu"), tensorget(r, "on_gpu")
    assert on_gpu.shape == (512, 2) and on_gpu.dtype == np.float32
    np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(on_gpu, mb.mlp_reference(weights, transaction, reference), atol=1e-5)

    # It ran on the device the model was stored on, and the server says so.
    store(r, "probe_cpu", "TORCH", "CPU", device_probe())
    store(r, "probe_gpu", "TORCH", "GPU", device_probe())
    a = np.random.default_rng(2).standard_normal((64, 4)).astype(np.float32)
    product_cpu, where_cpu = probe(r, "probe_cpu", a)
    product_gpu, where_gpu = probe(r, "probe_gpu", a)
    assert where_cpu == [-1, -1]
    assert where_gpu == [0, 0]  # "GPU" without an index: the current device, cuda:0
    np.testing.assert_allclose(product_gpu, product_cpu, rtol=1e-5, atol=1e-6)
    info = run_info(r, "mlp_gpu")
    assert (info["backend"], info["device"], info["calls"], info["errors"]) == (b"TORCH", b"GPU", 1, 0)
    assert r.execute_command("AI.MODELGET", "mlp_gpu", "META")[2:4] == [b"device", b"GPU"]
    assert {"CPU", "GPU"} <= queue_names(r)


def test_gpu_0_runs_and_a_gpu_the_machine_lacks_is_refused(r: redis.Redis) -> None:
    a = np.ones((3, 4), dtype=np.float32)
    for device in ("GPU:0", "gpu:0"):
        assert store(r, f"probe_{device}", "TORCH", device, device_probe()) == b"OK"
        assert probe(r, f"probe_{device}", a)[1] == [0, 0]
        assert run_info(r, f"probe_{device}")["device"] == device.encode()  # as stored
    assert "GPU:0" in queue_names(r)  # one queue for both spellings

    count = cuda_device_count()
    store(r, "kept", "TORCH", "CPU", device_probe(), "TAG", "before")
    for index in sorted({count, 7} - set(range(count))):
        expected = NO_SUCH_GPU.format(index=index, count=count)
        for key in ("kept", "new"):
            with pytest.raises(redis.ResponseError) as err:
                store(r, key, "TORCH", f"GPU:{index}", device_probe())
            assert str(err.value) == expected
        assert r.exists("new") == 0
        assert f"GPU:{index}" not in queue_names(r)
    # The model already under the key is kept, and still runs.
    assert r.execute_command("AI.MODELGET", "kept", "META")[2:6] == [b"device", b"CPU", b"tag", b"before"]
    assert probe(r, "kept", a)[1] == [-1, -1]
    assert r.ping()


# ---------------------------------------------------------------------------
# a TorchScript script on the GPU


def test_script_on_gpu_moves_its_inputs_to_the_device(r: redis.Redis) -> None:
    rng = np.random.default_rng(3)
    a = rng.standard_normal((32, 16)).astype(np.float32)
    b = rng.standard_normal((16, 8)).astype(np.float32)
    assert r.execute_command("AI.SCRIPTSTORE", "s", "GPU", "ENTRY_POINTS", len(GPU_SCRIPT_ENTRY_POINTS),
                             *GPU_SCRIPT_ENTRY_POINTS, "SOURCE", GPU_SCRIPT) == b"OK"
    tensorset(r, "a", a)
    tensorset(r, "b", b)
    assert r.execute_command("AI.SCRIPTEXECUTE", "s", "matmul_on_gpu", "INPUTS", 2, "a", "b",
                             "OUTPUTS", 2, "c", "where") == b"OK"
    np.testing.assert_allclose(tensorget(r, "c"), a.astype(np.float64) @ b + 1, rtol=1e-4, atol=1e-4)
    # The work ran on cuda:0; the inputs came in on the CPU, as RedisAI hands them.
    assert tensorget(r, "where").tolist() == [0, -1]
    assert run_info(r, "s")["device"] == b"GPU"
    assert "GPU" in queue_names(r)

    # A GPU model run from the script runs on the GPU too.
    store(r, "probe_gpu", "TORCH", "GPU:0", device_probe())
    store(r, "probe_cpu", "TORCH", "CPU", device_probe())
    x = rng.standard_normal((5, 4)).astype(np.float32)
    tensorset(r, "x", x)
    assert r.execute_command("AI.SCRIPTEXECUTE", "s", "run_model", "KEYS", 1, "probe_gpu", "INPUTS", 1, "x",
                             "OUTPUTS", 2, "y", "y_where") == b"OK"
    assert tensorget(r, "y_where").tolist() == [0, 0]
    np.testing.assert_allclose(tensorget(r, "y"), probe(r, "probe_cpu", x)[0], rtol=1e-5, atol=1e-6)


def test_script_on_a_gpu_the_machine_lacks_is_refused(r: redis.Redis) -> None:
    count = cuda_device_count()
    index = max(count, 7)
    with pytest.raises(redis.ResponseError) as err:
        r.execute_command("AI.SCRIPTSTORE", "s", f"GPU:{index}", "ENTRY_POINTS", 1, "matmul_on_gpu",
                          "SOURCE", GPU_SCRIPT)
    assert str(err.value) == NO_SUCH_GPU.format(index=index, count=count)
    assert r.exists("s") == 0
    assert r.execute_command("AI.SCRIPTSTORE", "s", "GPU:0", "ENTRY_POINTS", 1, "matmul_on_gpu",
                             "SOURCE", GPU_SCRIPT) == b"OK"


# ---------------------------------------------------------------------------
# ONNX on the GPU


def test_onnx_model_on_gpu_gives_the_cpu_answers(r: redis.Redis) -> None:
    if onnx_cuda_missing():
        pytest.skip(onnx_cuda_missing())
    transaction, reference = mb.mlp_inputs(batch=256)
    store(r, "onnx_cpu", "ONNX", "CPU", mb.onnx_mlp())
    assert store(r, "onnx_gpu", "ONNX", "GPU:0", mb.onnx_mlp()) == b"OK"
    tensorset(r, "transaction", transaction)
    tensorset(r, "reference", reference)
    for model, output in (("onnx_cpu", "on_cpu"), ("onnx_gpu", "on_gpu")):
        assert modelexecute(r, model, ["transaction", "reference"], [output]) == b"OK"
    np.testing.assert_allclose(tensorget(r, "on_gpu"), tensorget(r, "on_cpu"), rtol=1e-5, atol=1e-6)
    assert run_info(r, "onnx_gpu")["device"] == b"GPU:0"


# ---------------------------------------------------------------------------
# freeing, reloading, sharing


def test_a_deleted_gpu_model_frees_its_device_memory(r: redis.Redis) -> None:
    megabytes, rounds = 128, 12
    blob = mb.torch_large(megabytes)
    tensorset(r, "a", np.ones((1, 1024), dtype=np.float32))
    device_memory_used()  # this process's own CUDA context, before the baseline

    def store_run_delete() -> None:
        assert store(r, "big", "TORCH", "GPU", blob) == b"OK"
        assert modelexecute(r, "big", ["a"], ["out"]) == b"OK"
        assert r.execute_command("AI.MODELDEL", "big") == b"OK"

    store_run_delete()
    baseline = device_memory_used()
    for _ in range(rounds):
        store_run_delete()
    grown = device_memory_used() - baseline
    # Kept models would hold rounds x 128 MB more; a freed one's memory is
    # reused (torch's caching allocator keeps it for the process). Two models
    # of slack: a session is dropped just after its key goes.
    assert grown < 2 * megabytes * 2**20, f"device memory grew {grown / 2**20:.0f} MB"
    np.testing.assert_allclose(tensorget(r, "out"), np.full((1, megabytes * 256), 512.0))
    with pytest.raises(redis.ResponseError, match=f"^{MODEL_EMPTY}$"):
        modelexecute(r, "big", ["a"], ["out"])
    assert r.exists("big") == 0


def test_a_failed_gpu_run_leaves_the_gpu_serving(r: redis.Redis) -> None:
    store(r, "probe_gpu", "TORCH", "GPU", device_probe())
    store(r, "probe_cpu", "TORCH", "CPU", device_probe())
    store(r, "alloc", "TORCH", "GPU", mb.torch_allocating())
    # A shape the model cannot take: the same error as on the CPU.
    errors = []
    for model in ("probe_gpu", "probe_cpu"):
        tensorset(r, "bad", np.ones((3, 5), dtype=np.float32))
        with pytest.raises(redis.ResponseError) as err:
            modelexecute(r, model, ["bad"], ["out", "where"])
        errors.append(str(err.value))
    assert "mat1 and mat2 shapes cannot be multiplied (3x5 and 4x4)" in errors[0]
    assert errors[0] == errors[1]
    # More memory than the device has (2^40 floats, 4 TiB): CUDA's out-of-memory error.
    tensorset(r, "n", np.array([2**40], dtype=np.int64))
    with pytest.raises(redis.ResponseError, match="CUDA out of memory"):
        modelexecute(r, "alloc", ["n"], ["total"])
    assert r.exists("total") == 0
    # The GPU still serves both models.
    tensorset(r, "n", np.array([1000], dtype=np.int64))
    assert modelexecute(r, "alloc", ["n"], ["total"]) == b"OK"
    assert tensorget(r, "total").tolist() == [1000.0]
    assert probe(r, "probe_gpu", np.ones((2, 4), dtype=np.float32))[1] == [0, 0]
    assert (run_info(r, "alloc")["calls"], run_info(r, "alloc")["errors"]) == (2, 1)


def test_gpu_model_saved_by_bgsave_runs_after_a_restart(server_factory: ServerFactory) -> None:
    server = server_factory()
    r = server.client(socket_timeout=120)
    a = np.random.default_rng(6).standard_normal((8, 4)).astype(np.float32)
    store(r, "probe_gpu", "TORCH", "GPU:0", device_probe(), "TAG", "saved")
    before, where = probe(r, "probe_gpu", a)  # the server now holds a CUDA context
    assert where == [0, 0]
    assert r.bgsave()
    wait_until(lambda: r.info("persistence")["rdb_bgsave_in_progress"] == 0, what="BGSAVE to end")
    assert r.info("persistence")["rdb_last_bgsave_status"] == "ok"
    server.restart()
    r = server.client(socket_timeout=120)
    assert r.execute_command("AI.MODELGET", "probe_gpu", "META")[2:6] == [b"device", b"GPU:0", b"tag", b"saved"]
    after, where = probe(r, "probe_gpu", a)
    assert where == [0, 0]
    np.testing.assert_array_equal(after, before)


def test_gpu_model_survives_debug_reload(r: redis.Redis) -> None:
    a = np.random.default_rng(4).standard_normal((8, 4)).astype(np.float32)
    store(r, "probe_gpu", "TORCH", "gpu:0", device_probe(), "TAG", "v1")
    before = probe(r, "probe_gpu", a)[0]
    assert r.execute_command("DEBUG", "RELOAD") == b"OK"
    assert r.execute_command("AI.MODELGET", "probe_gpu", "META")[2:6] == [b"device", b"gpu:0", b"tag", b"v1"]
    after, where = probe(r, "probe_gpu", a)  # the session is made again by this first run
    assert where == [0, 0]
    np.testing.assert_array_equal(after, before)


def test_many_clients_share_one_batched_gpu_model(shared_server: RedisServer, r: redis.Redis) -> None:
    weights = mb.mlp_weights()
    store(r, "mlp", "TORCH", "GPU", torch_mlp(), "BATCHSIZE", 16)
    clients, runs = 8, 25
    failures: list[str] = []

    def client_runs(n: int) -> None:
        c = shared_server.client(socket_timeout=120)
        for k in range(runs):
            transaction, reference = mb.mlp_inputs(batch=1 + (n + k) % 3, seed=100 * n + k)
            tensorset(c, f"t{n}", transaction)
            tensorset(c, f"r{n}", reference)
            if modelexecute(c, "mlp", [f"t{n}", f"r{n}"], [f"o{n}"]) != b"OK":
                failures.append(f"client {n} run {k}: not OK")
                continue
            got = tensorget(c, f"o{n}")
            if not np.allclose(got, mb.mlp_reference(weights, transaction, reference), atol=1e-5):
                failures.append(f"client {n} run {k}: {got.tolist()}")

    threads = [threading.Thread(target=client_runs, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    info = run_info(r, "mlp")
    assert (info["calls"], info["errors"]) == (clients * runs, 0)


def test_dag_moves_tensors_between_a_gpu_and_a_cpu_model(r: redis.Redis) -> None:
    a = np.random.default_rng(5).standard_normal((6, 4)).astype(np.float32)
    store(r, "probe_gpu", "TORCH", "GPU", device_probe())
    store(r, "probe_cpu", "TORCH", "CPU", device_probe())
    tensorset(r, "a", a)
    reply = r.execute_command(
        "AI.DAGEXECUTE", "LOAD", 1, "a", "PERSIST", 2, "out", "cpu_where", "|>",
        "AI.MODELEXECUTE", "probe_gpu", "INPUTS", 1, "a", "OUTPUTS", 2, "mid", "gpu_where", "|>",
        "AI.MODELEXECUTE", "probe_cpu", "INPUTS", 1, "mid", "OUTPUTS", 2, "out", "cpu_where", "|>",
        "AI.TENSORGET", "gpu_where", "VALUES")
    assert reply[:2] == [b"OK", b"OK"]
    assert [int(v) for v in reply[2]] == [0, 0]
    assert tensorget(r, "cpu_where").tolist() == [-1, -1]
    once = probe(r, "probe_cpu", a)[0]
    np.testing.assert_allclose(tensorget(r, "out"), probe(r, "probe_cpu", once)[0], rtol=1e-5, atol=1e-5)

