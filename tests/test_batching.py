"""Auto-batching: BATCHSIZE, MINBATCHSIZE and MINBATCHTIMEOUT with RedisAI's semantics.

Many clients run the same model at once. The worker that pops one request looks further
down the queue for requests of the same model whose inputs agree beyond dim 0, joins them
along dim 0 up to BATCHSIZE, runs the model once and hands every client its own slice.
These stories check, against a real server:

- 64 concurrent clients, each with its own inputs (and its own dim 0), each get exactly the
  result the model gives for their inputs alone (the same model bytes run in this process);
- requests whose inputs disagree beyond dim 0 are never put in one batch;
- a request whose own dim 0 reaches BATCHSIZE runs alone;
- below MINBATCHSIZE the queue waits up to MINBATCHTIMEOUT, and without a timeout it waits
  until enough requests have arrived;
- a model whose outputs do not keep the batch dimension gets RedisAI's error, in every
  participant of the batch;
- batching is visible in AI.INFO: RedisAI charges the whole batch's duration to every
  participant, so with batching the summed `duration` exceeds the time the single worker
  could have spent, and without BATCHSIZE it cannot.

The "probe" model used by most stories returns, next to its real output, a column holding
the batch size it was run with, so each client sees the batch it was part of.
"""

from __future__ import annotations

import functools
import io
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pytest
import redis
import torch

import model_builders as mb
from conftest import ServerFactory

BATCH_SIZE_ERROR = "Model did not generate the expected batch size"
CLIENTS = 64


# ---------------------------------------------------------------------------
# models (TorchScript, defined here so that torch.jit.script can read their source)


class Probe(torch.nn.Module):
    """forward(x) -> (2 * x, [N, 1] filled with N): N is the batch the model ran with.

    With `work` > 0 it also does `work` fixed-size 128x128 matrix products per run (a few
    ms that do not depend on N), so a batch costs about what a single request costs.
    """

    def __init__(self, work: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.w = torch.nn.Parameter(torch.randn(128, 128, generator=generator) / 11.0,
                                    requires_grad=False)
        self.work = work

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.w
        for _ in range(self.work):
            w = torch.tanh(w @ self.w)
        n = x.shape[0]
        return x * 2.0 + 0.0 * w.mean(), torch.full([n, 1], float(n))


class SumOverBatch(torch.nn.Module):
    """forward(x [N, ...]) -> x.sum(0, keepdim=True): always dim 0 == 1, whatever N is."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(0, keepdim=True)


def torchscript(module: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(module.eval()), buffer)
    return buffer.getvalue()


@functools.cache
def probe_blob(work: int = 0) -> bytes:
    return torchscript(Probe(work))


@functools.cache
def fraud_blob(backend: str) -> bytes:
    return mb.torch_mlp() if backend == "TORCH" else mb.onnx_mlp()


# ---------------------------------------------------------------------------
# helpers


def store(r: redis.Redis, key: str, backend: str, blob: bytes, *batching: object) -> None:
    assert r.execute_command("AI.MODELSTORE", key, backend, "CPU", *batching, "BLOB", blob) == b"OK"


def run(r: redis.Redis, model: str, tag: str, inputs: Sequence[np.ndarray],
        n_outputs: int) -> list[np.ndarray]:
    """TENSORSET the inputs under keys of `tag`, MODELEXECUTE, TENSORGET the outputs (one
    round trip, not a transaction)."""
    in_keys = [f"{tag}:in{i}" for i in range(len(inputs))]
    out_keys = [f"{tag}:out{i}" for i in range(n_outputs)]
    pipe = r.pipeline(transaction=False)
    for key, array in zip(in_keys, inputs):
        pipe.execute_command("AI.TENSORSET", key, "FLOAT", *array.shape, "BLOB",
                             np.ascontiguousarray(array, dtype=np.float32).tobytes())
    pipe.execute_command("AI.MODELEXECUTE", model, "INPUTS", len(in_keys), *in_keys,
                         "OUTPUTS", len(out_keys), *out_keys)
    for key in out_keys:
        pipe.execute_command("AI.TENSORGET", key, "META", "BLOB")
    replies = pipe.execute()
    assert all(reply == b"OK" for reply in replies[:len(inputs) + 1]), replies[:len(inputs) + 1]
    outputs = []
    for reply in replies[len(inputs) + 1:]:
        assert reply[1] == b"FLOAT", reply[:4]
        outputs.append(np.frombuffer(reply[5], dtype=np.float32).reshape(reply[3]))
    return outputs


def run_probe(r: redis.Redis, model: str, tag: str, x: np.ndarray) -> tuple[np.ndarray, int]:
    """The probe's 2 * x, and the batch size it ran with (checked uniform over the rows)."""
    doubled, sizes = run(r, model, tag, [x], 2)
    assert sizes.shape == (x.shape[0], 1)
    assert np.all(sizes == sizes[0, 0]), sizes
    return doubled, int(sizes[0, 0])


def info(r: redis.Redis, key: str) -> dict[str, int]:
    reply = r.execute_command("AI.INFO", key)
    fields = {reply[i].decode(): reply[i + 1] for i in range(0, len(reply), 2)}
    return {k: int(fields[k]) for k in ("duration", "samples", "calls", "errors")}


@dataclass
class Concurrent:
    """Runs fn(client_index, connection) in `n` threads that start together; collects results
    and exceptions, and the wall time from the start signal to the last finish."""

    server_port: int
    n: int
    timeout_s: float = 60.0

    def __call__(self, fn: Callable[[int, redis.Redis], object]) -> tuple[list[object], float]:
        conns = [redis.Redis(host="127.0.0.1", port=self.server_port, socket_timeout=self.timeout_s)
                 for _ in range(self.n)]
        for conn in conns:
            conn.ping()  # connect now, not inside the timed part
        results: list[object] = [None] * self.n
        errors: list[BaseException | None] = [None] * self.n
        barrier = threading.Barrier(self.n + 1)

        def worker(i: int) -> None:
            barrier.wait()
            try:
                results[i] = fn(i, conns[i])
            except BaseException as exc:  # reported below, with the client's index
                errors[i] = exc

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(self.n)]
        for t in threads:
            t.start()
        start = time.monotonic()  # before any request can leave
        barrier.wait()
        for t in threads:
            t.join(self.timeout_s)
        elapsed = time.monotonic() - start
        for conn in conns:
            conn.close()
        assert not any(t.is_alive() for t in threads), "clients still blocked at the time limit"
        failed = [(i, e) for i, e in enumerate(errors) if e is not None]
        if failed:
            i, exc = failed[0]
            raise AssertionError(f"{len(failed)} client(s) failed; client {i}: {exc!r}") from exc
        return results, elapsed


class Background:
    """One request on its own connection and thread, to see whether it is still blocked."""

    def __init__(self, port: int, fn: Callable[[redis.Redis], object]) -> None:
        self.conn = redis.Redis(host="127.0.0.1", port=port, socket_timeout=30)
        self.conn.ping()
        self.result: object = None
        self.error: BaseException | None = None
        self.done_at: float | None = None
        self.started_at = time.monotonic()
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn: Callable[[redis.Redis], object]) -> None:
        try:
            self.result = fn(self.conn)
        except BaseException as exc:
            self.error = exc
        self.done_at = time.monotonic()

    def join(self, timeout: float = 30.0) -> object:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "request still blocked"
        self.conn.close()
        if self.error is not None:
            raise self.error
        return self.result

    @property
    def seconds(self) -> float:
        assert self.done_at is not None
        return self.done_at - self.started_at


def wait_blocked(r: redis.Redis, n: int, timeout: float = 10.0) -> None:
    """Until `n` clients are blocked on the module (queued, waiting for their batch)."""
    deadline = time.monotonic() + timeout
    while int(r.info("clients")["blocked_clients"]) < n:
        assert time.monotonic() < deadline, f"fewer than {n} blocked clients after {timeout}s"
        time.sleep(0.005)


# ---------------------------------------------------------------------------
# stories


@pytest.mark.parametrize("backend", ["TORCH", "ONNX"])
def test_64_concurrent_clients_each_get_their_own_result(server_factory: ServerFactory,
                                                          backend: str) -> None:
    """The fraud MLP with BATCHSIZE 16 (MINBATCHSIZE 4, so batches surely form): 64 clients
    send 4 requests each with their own transaction and reference rows, 1 to 3 rows per
    request; every reply equals the model run on that request alone, in this process."""
    server = server_factory()
    r = server.client()
    store(r, "fraud", backend, fraud_blob(backend), "BATCHSIZE", 16, "MINBATCHSIZE", 4,
          "MINBATCHTIMEOUT", 50)
    rounds = 4
    rng = np.random.default_rng(5)
    requests = [[mb.mlp_inputs(batch=int(rng.integers(1, 4)), seed=1000 * c + k)
                 for k in range(rounds)] for c in range(CLIENTS)]

    def client(c: int, conn: redis.Redis) -> list[np.ndarray]:
        return [run(conn, "fraud", f"c{c}", list(requests[c][k]), 1)[0] for k in range(rounds)]

    results, _ = Concurrent(server.port, CLIENTS)(client)

    # Each request's answer as the MLP alone gives it (numpy, float64): no framework in
    # this process, whose state (onnxruntime's process-wide pools once an adapter test
    # ran here) could differ from the server's.
    weights = mb.mlp_weights()
    expect = [[mb.mlp_reference(weights, tx, ref) for tx, ref in requests[c]] for c in range(CLIENTS)]
    for c in range(CLIENTS):
        for k in range(rounds):
            got = results[c][k]
            assert got.shape == expect[c][k].shape, (c, k)
            # Joined inputs can change the kernels' summation order: float32 rounding only.
            np.testing.assert_allclose(got, expect[c][k], rtol=1e-5, atol=1e-5,
                                       err_msg=f"client {c}, request {k}")
    # A mix-up between clients would be far beyond rounding: rows of different clients differ.
    assert not np.allclose(results[0][0][:1], results[1][0][:1], atol=1e-3)

    stats = info(r, "fraud")
    rows = sum(tx.shape[0] for per_client in requests for tx, _ in per_client)
    assert stats["calls"] == CLIENTS * rounds and stats["errors"] == 0
    assert stats["samples"] == rows  # each request counts its own dim 0


def test_batches_form_under_load_and_show_in_ai_info(server_factory: ServerFactory) -> None:
    """A model that takes a few ms per run whatever N is, stored twice: with BATCHSIZE 16 and
    without. 64 clients send 3 one-row requests each to one, then to the other."""
    server = server_factory()
    r = server.client()
    store(r, "batched", "TORCH", probe_blob(24), "BATCHSIZE", 16)
    store(r, "alone", "TORCH", probe_blob(24))
    rounds = 3

    def load(model: str) -> tuple[list[list[int]], float]:
        def client(c: int, conn: redis.Redis) -> list[int]:
            sizes = []
            for k in range(rounds):
                x = np.full((1, 4), c * 10 + k, dtype=np.float32)
                doubled, size = run_probe(conn, model, f"c{c}", x)
                np.testing.assert_array_equal(doubled, 2 * x)
                sizes.append(size)
            return sizes
        results, elapsed = Concurrent(server.port, CLIENTS)(client)
        return results, elapsed  # type: ignore[return-value]

    for model in ("batched", "alone"):  # warm both sessions, then count from zero
        run_probe(r, model, "warm", np.zeros((1, 4), np.float32))
        assert r.execute_command("AI.INFO", model, "RESETSTAT") == b"OK"

    sizes, wall_batched = load("batched")
    flat = [s for per_client in sizes for s in per_client]
    assert max(flat) <= 16  # one-row requests: a batch stops when it reaches BATCHSIZE
    assert sum(1 for s in flat if s > 1) >= len(flat) // 2, f"batch sizes seen: {flat}"
    batched = info(r, "batched")
    assert batched["calls"] == CLIENTS * rounds and batched["samples"] == CLIENTS * rounds
    assert batched["errors"] == 0
    # Every participant is charged the whole batch: more worker time than the wall clock had.
    assert batched["duration"] > 1.5 * wall_batched * 1e6, (batched, wall_batched)

    sizes, wall_alone = load("alone")
    assert {s for per_client in sizes for s in per_client} == {1}
    alone = info(r, "alone")
    assert alone["calls"] == CLIENTS * rounds and alone["errors"] == 0
    # One worker (THREADS_PER_QUEUE 1), one request at a time: never more than the wall clock.
    assert alone["duration"] <= wall_alone * 1e6, (alone, wall_alone)


def test_inputs_that_disagree_beyond_dim0_are_not_mixed(server_factory: ServerFactory) -> None:
    """MINBATCHSIZE 2, MINBATCHTIMEOUT 400: a [1, 4] and a [1, 8] request queued together do not
    make a batch of 2 (each waits for the timeout and runs alone); two of each make two
    batches of 2, one per shape, without waiting."""
    server = server_factory()
    r = server.client()
    store(r, "probe", "TORCH", probe_blob(), "BATCHSIZE", 8, "MINBATCHSIZE", 2,
          "MINBATCHTIMEOUT", 400)
    run_probe(r, "probe", "warm", np.zeros((1, 4), np.float32))  # the session exists now

    def shapes(widths: list[int]) -> list[tuple[int, float]]:
        def client(c: int, conn: redis.Redis) -> tuple[int, float]:
            x = np.arange(widths[c], dtype=np.float32).reshape(1, -1) + 100 * c
            start = time.monotonic()
            doubled, size = run_probe(conn, "probe", f"c{c}", x)
            np.testing.assert_array_equal(doubled, 2 * x)
            return size, time.monotonic() - start
        results, _ = Concurrent(server.port, len(widths))(client)
        return results  # type: ignore[return-value]

    apart = shapes([4, 8])
    assert [size for size, _ in apart] == [1, 1]
    assert all(seconds >= 0.38 for _, seconds in apart), apart

    paired = shapes([4, 8, 4, 8])
    assert [size for size, _ in paired] == [2, 2, 2, 2]
    assert all(seconds < 0.38 for _, seconds in paired), paired


def test_request_at_or_above_batchsize_runs_alone(server_factory: ServerFactory) -> None:
    """BATCHSIZE 4, MINBATCHSIZE 2, MINBATCHTIMEOUT 3000: requests of 4 or 6 rows run at once
    on their own; queued next to two 1-row requests they still run alone while the two small
    ones share a batch."""
    server = server_factory()
    r = server.client()
    store(r, "probe", "TORCH", probe_blob(), "BATCHSIZE", 4, "MINBATCHSIZE", 2,
          "MINBATCHTIMEOUT", 3000)
    for rows in (4, 6):
        x = np.arange(rows * 3, dtype=np.float32).reshape(rows, 3)
        start = time.monotonic()
        doubled, size = run_probe(r, "probe", "big", x)
        assert time.monotonic() - start < 2.0  # did not wait for company
        assert size == rows
        np.testing.assert_array_equal(doubled, 2 * x)

    rows_of = [4, 1, 1]

    def client(c: int, conn: redis.Redis) -> int:
        x = np.full((rows_of[c], 3), c, dtype=np.float32)
        doubled, size = run_probe(conn, "probe", f"c{c}", x)
        np.testing.assert_array_equal(doubled, 2 * x)
        return size

    sizes, elapsed = Concurrent(server.port, len(rows_of))(client)
    assert sizes == [4, 2, 2]
    assert elapsed < 2.0


def test_minbatchtimeout_bounds_the_wait_for_minbatchsize(server_factory: ServerFactory) -> None:
    """MINBATCHSIZE 2 with MINBATCHTIMEOUT 300: a lone request waits about 0.3 s, then runs
    alone. Without MINBATCHTIMEOUT a lone request waits until a second one arrives."""
    server = server_factory()
    r = server.client()
    store(r, "timed", "TORCH", probe_blob(), "BATCHSIZE", 4, "MINBATCHSIZE", 2,
          "MINBATCHTIMEOUT", 300)
    store(r, "patient", "TORCH", probe_blob(), "BATCHSIZE", 4, "MINBATCHSIZE", 2)
    x = np.ones((1, 3), np.float32)
    run_probe(r, "timed", "warm", x)  # makes the session (and the first wait) before timing

    for _ in range(2):
        start = time.monotonic()
        doubled, size = run_probe(r, "timed", "lone", x)
        elapsed = time.monotonic() - start
        assert size == 1
        np.testing.assert_array_equal(doubled, 2 * x)
        assert 0.29 <= elapsed < 2.0, elapsed

    first = Background(server.port, lambda conn: run_probe(conn, "patient", "first", x))
    wait_blocked(r, 1)
    time.sleep(1.0)
    assert first.thread.is_alive(), "a lone request ran although MINBATCHSIZE is 2"
    second_start = time.monotonic()
    doubled, size = run_probe(r, "patient", "second", 3 * x)
    assert time.monotonic() - second_start < 1.0
    np.testing.assert_array_equal(doubled, 6 * x)
    assert size == 2
    doubled, size = first.join()  # type: ignore[misc]
    np.testing.assert_array_equal(doubled, 2 * x)
    assert size == 2
    assert first.seconds >= 1.0


def test_model_that_changes_the_batch_dim_fails_every_participant(
        server_factory: ServerFactory) -> None:
    """x.sum(0, keepdim=True) always returns one row: two 1-row requests batched together
    (MINBATCHSIZE 2 makes sure) both get RedisAI's error and nothing is written; a request
    that runs alone is not checked (RedisAI checks only batches of more than one)."""
    server = server_factory()
    r = server.client()
    store(r, "summer", "TORCH", torchscript(SumOverBatch()), "BATCHSIZE", 4, "MINBATCHSIZE", 2)

    def client(c: int, conn: redis.Redis) -> str:
        assert conn.execute_command("AI.TENSORSET", f"x{c}", "FLOAT", 1, 3, "VALUES", 1, 2, 3) == b"OK"
        with pytest.raises(redis.ResponseError) as err:
            conn.execute_command("AI.MODELEXECUTE", "summer", "INPUTS", 1, f"x{c}",
                                 "OUTPUTS", 1, f"y{c}")
        return str(err.value)

    messages, _ = Concurrent(server.port, 2)(client)
    assert messages == [BATCH_SIZE_ERROR, BATCH_SIZE_ERROR]
    assert r.exists("y0", "y1") == 0
    stats = info(r, "summer")
    assert stats["calls"] == 2 and stats["errors"] == 2 and stats["duration"] == 0

    x = np.arange(12, dtype=np.float32).reshape(4, 3)  # dim 0 == BATCHSIZE: runs alone
    (out,) = run(r, "summer", "big", [x], 1)
    np.testing.assert_array_equal(out, x.sum(0, keepdims=True))


def test_model_ops_inside_dags_batch_too(server_factory: ServerFactory) -> None:
    """Two clients each send a DAG (TENSORSET, MODELEXECUTE, TENSORGET) for a model with
    MINBATCHSIZE 2: their model ops run as one batch of 2, as single-op commands do."""
    server = server_factory()
    r = server.client()
    store(r, "probe", "TORCH", probe_blob(), "BATCHSIZE", 4, "MINBATCHSIZE", 2,
          "MINBATCHTIMEOUT", 2000)
    run_probe(r, "probe", "warm", np.zeros((1, 3), np.float32))

    def client(c: int, conn: redis.Redis) -> tuple[list[float], list[float]]:
        x = np.full((1, 3), c + 1, np.float32)
        reply = conn.execute_command(
            "AI.DAGEXECUTE", "ROUTING", f"c{c}",
            "|>", "AI.TENSORSET", "x", "FLOAT", 1, 3, "BLOB", x.tobytes(),
            "|>", "AI.MODELEXECUTE", "probe", "INPUTS", 1, "x", "OUTPUTS", 2, "y", "n",
            "|>", "AI.TENSORGET", "y", "VALUES", "|>", "AI.TENSORGET", "n", "VALUES")
        assert reply[:2] == [b"OK", b"OK"], reply
        return [float(v) for v in reply[2]], [float(v) for v in reply[3]]

    results, _ = Concurrent(server.port, 2)(client)
    assert results == [([2.0] * 3, [2.0]), ([4.0] * 3, [2.0])]
