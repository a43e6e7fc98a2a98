"""AI data survives crashes, background saves and restarts.

User stories:
- An operator runs with `appendonly yes` + `appendfsync always`. Clients
  store tensors, run a model, store scripts and run them (each run INCRs a
  counter through redis.execute) and store new models as fast as they can;
  the server is killed with SIGKILL in the middle. After the restart every
  write the server acknowledged (tensors, model and script outputs, models,
  scripts) is back, exactly, every model and script executes, and each
  client's run counter holds its acknowledged script runs, plus one when its
  last run had done its INCR but was never answered: a script killed in the
  middle of a run keeps the Redis writes it made, not its outputs.
- BGSAVE and BGREWRITEAOF are asked for while every worker is busy running a
  model for many clients: both finish, nothing hangs, and a server started
  from the RDB file and one started from the rewritten AOF hold the data.
- A model larger than MODEL_CHUNK_SIZE (1 KiB here) goes through the AOF as
  sent, a rewritten AOF and an RDB file in chunks, and MODELGET answers in
  chunks; the RDB loads under another chunk size as well.
- 200 small models come back from an RDB file; the reload time and the time
  to run each once afterwards are measured and printed (MEASURED lines).
- A replica saves an RDB before the background sessions of freshly
  replicated models exist; a server loading that file still gets the models'
  input/output names back.
"""

from __future__ import annotations

import functools
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import model_builders as mb
from conftest import SERVER_KIND, RedisServer, ServerFactory, wait_until
from keyspace import snapshot

AOF_ALWAYS = ["--appendonly", "yes", "--appendfsync", "always"]
CHUNK = 1024


@functools.cache
def onnx_add() -> bytes:
    return mb.onnx_add()


@functools.cache
def onnx_mlp() -> bytes:
    return mb.onnx_mlp()


@functools.cache
def onnx_busy(size: int = 256, steps: int = 40) -> bytes:
    """ONNX x [size, size] -> tanh(... tanh(x @ w) @ w ...): ~20 ms of one core per run."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, previous = [], "x"
    for i in range(steps):
        out = "y" if i == steps - 1 else f"t{i}"
        nodes += [helper.make_node("MatMul", [previous, "w"], [f"m{i}"]),
                  helper.make_node("Tanh", [f"m{i}"], [out])]
        previous = out
    w = (np.random.default_rng(0).standard_normal((size, size)) / np.sqrt(size)).astype(np.float32)
    graph = helper.make_graph(
        nodes, "busy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size, size])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", mb.ONNX_OPSET)],
                              ir_version=mb.ONNX_IR_VERSION)
    return model.SerializeToString()


def tensor(client: redis.Redis, key: str) -> np.ndarray:
    _, _, _, shape, _, blob = client.execute_command("AI.TENSORGET", key, "META", "BLOB")
    return np.frombuffer(blob, dtype=np.float32).reshape(shape)


def run_info_calls(client: redis.Redis, key: str) -> int:
    reply = client.execute_command("AI.INFO", key)
    return dict(zip(reply[::2], reply[1::2]))[b"calls"]


def background_done(client: redis.Redis) -> bool:
    info = client.info("persistence")
    return not (info["rdb_bgsave_in_progress"] or info["aof_rewrite_in_progress"]
                or info["aof_rewrite_scheduled"])


def run_mlp(client: redis.Redis, model: str, seed: int) -> None:
    """Runs the fraud MLP on fresh inputs and checks it against numpy."""
    transaction, reference = mb.mlp_inputs(batch=2, seed=seed)
    client.execute_command("AI.TENSORSET", "mlp:tx", "FLOAT", 2, 30, "BLOB", transaction.tobytes())
    client.execute_command("AI.TENSORSET", "mlp:ref", "FLOAT", 2, 256, "BLOB", reference.tobytes())
    assert client.execute_command("AI.MODELEXECUTE", model, "INPUTS", 2, "mlp:tx", "mlp:ref",
                                  "OUTPUTS", 1, "mlp:out") == b"OK"
    np.testing.assert_allclose(tensor(client, "mlp:out"),
                               mb.mlp_reference(mb.mlp_weights(), transaction, reference),
                               rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------
# kill -9 under load


# `bump` counts its runs in keys[0] through redis.execute and scales its input.
SCRIPT = '''
def bump(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("INCR", keys[0])
    return tensors[0] * float(args[0])
'''


def test_kill_9_under_load_loses_nothing_that_was_acknowledged(server_factory: ServerFactory):
    server = server_factory(server_args=AOF_ALWAYS)
    # Long timeouts: redis-py would send a slow first script store or run again.
    admin = server.client(socket_timeout=60)
    assert admin.execute_command("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", onnx_add()) == b"OK"
    admin.execute_command("AI.TENSORSET", "b", "FLOAT", 2, "VALUES", 3, 5)
    # The first script imports TorchScript; done here, not under the load.
    started = time.monotonic()
    assert admin.execute_command("AI.SCRIPTSTORE", "script", "CPU", "TAG", "script", "ENTRY_POINTS", 1,
                                 "bump", "SOURCE", SCRIPT) == b"OK"
    first_script = time.monotonic() - started

    workers = 4
    tensors: dict[str, list[float]] = {}  # acknowledged key -> values
    models: list[str] = []  # acknowledged model keys
    scripts: list[str] = []  # acknowledged script keys
    runs = [0] * workers  # acknowledged script runs per worker
    unanswered = [False] * workers  # a SCRIPTEXECUTE was sent and never answered
    errors: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load(w: int) -> None:
        # No retries: each command is sent once, so what was acknowledged is exact.
        client = server.client(socket_timeout=10, retry=Retry(NoBackoff(), 0))
        script = "script"
        try:
            for n in range(1_000_000):
                if stop.is_set():
                    return
                a, s, p, x = f"a:{w}:{n}", f"s:{w}:{n}", f"p:{w}:{n}", f"x:{w}:{n}"
                client.execute_command("AI.TENSORSET", a, "FLOAT", 2, "VALUES", n, w)
                with lock:
                    tensors[a] = [n, w]
                client.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 2, a, "b", "OUTPUTS", 2, s, p)
                with lock:
                    tensors[s], tensors[p] = [n + 3, w + 5], [3 * n, 5 * w]
                unanswered[w] = True
                client.execute_command("AI.SCRIPTEXECUTE", script, "bump", "KEYS", 1, f"runs:{w}",
                                       "INPUTS", 1, a, "ARGS", 1, w + 2, "OUTPUTS", 1, x)
                with lock:
                    unanswered[w] = False
                    runs[w] += 1
                    tensors[x] = [n * (w + 2), w * (w + 2)]
                if n % 10 == 0:
                    key = f"m:{w}:{n}"
                    client.execute_command("AI.MODELSTORE", key, "ONNX", "CPU", "TAG", key,
                                           "BLOB", onnx_add())
                    with lock:
                        models.append(key)
                    key = f"script:{w}:{n}"
                    client.execute_command("AI.SCRIPTSTORE", key, "CPU", "TAG", key, "ENTRY_POINTS", 1,
                                           "bump", "SOURCE", SCRIPT)
                    with lock:
                        scripts.append(key)
                    script = key  # the next runs use the script just stored
        except (redis.ConnectionError, redis.TimeoutError):
            return  # the server was killed: what was not acknowledged may be lost
        except Exception as exc:  # reported by the test
            errors.append(repr(exc))

    threads = [threading.Thread(target=load, args=(w,), daemon=True) for w in range(workers)]
    for t in threads:
        t.start()
    wait_until(lambda: len(models) >= 8, 30, "the load to get going")
    time.sleep(0.5)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    stop.set()
    for t in threads:
        t.join(20)
        assert not t.is_alive()
    assert not errors, errors[:3]
    with lock:
        acknowledged, stored, stored_scripts = dict(tensors), list(models), list(scripts)
        acknowledged_runs, in_flight = list(runs), list(unanswered)

    started = time.monotonic()
    server.start()
    restart = time.monotonic() - started
    assert "DB loaded from append only file" in server.log().rsplit(" is starting ", 1)[-1]
    client = server.client(socket_timeout=60)
    keys = list(acknowledged)
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.execute_command("AI.TENSORGET", key, "VALUES")
    replies = pipe.execute(raise_on_error=False)
    lost = [k for k, reply in zip(keys, replies) if isinstance(reply, Exception)]
    assert not lost, f"{len(lost)} acknowledged tensors lost, e.g. {lost[:5]}"
    wrong = [k for k, reply in zip(keys, replies) if [float(v) for v in reply] != acknowledged[k]]
    assert not wrong, f"{len(wrong)} tensors differ, e.g. {wrong[:5]}"

    for key in ["m", *stored]:
        assert client.execute_command("AI.MODELGET", key, "BLOB") == onnx_add(), key
        assert client.execute_command("AI.MODELEXECUTE", key, "INPUTS", 2, "b", "b",
                                      "OUTPUTS", 2, "check:s", "check:p") == b"OK", key
        assert client.execute_command("AI.TENSORGET", "check:p", "VALUES") == [b"9", b"25"]
    assert [client.execute_command("AI.MODELGET", key, "META")[5] for key in stored] == \
        [key.encode() for key in stored]

    # The AOF holds what the scripts did (INCR, AI.TENSORSET of the outputs),
    # never the runs themselves: the replay ran no script.
    assert all(run_info_calls(client, key) == 0 for key in ["script", *stored_scripts])
    # Each run's INCR is written and fsynced before its reply is sent, so no
    # acknowledged run is missing from a counter. A run whose INCR was
    # already fsynced when the server died, but whose reply never left,
    # counts too, without being acknowledged: at most one such run per
    # client, the one it was waiting for.
    counters = [int(client.get(f"runs:{w}") or 0) for w in range(workers)]
    for w in range(workers):
        assert acknowledged_runs[w] <= counters[w] <= acknowledged_runs[w] + in_flight[w], \
            (w, acknowledged_runs[w], counters[w], in_flight[w])
    print(f"\nMEASURED kill -9: {len(acknowledged)} acknowledged tensor writes, {len(stored)} model "
          f"stores, {len(stored_scripts)} script stores and {sum(acknowledged_runs)} script runs "
          f"before SIGKILL; {sum(in_flight)} runs were waiting for a reply, of which "
          f"{sum(counters) - sum(acknowledged_runs)} had their INCR in the AOF. First SCRIPTSTORE "
          f"on the fresh server (imports TorchScript) {first_script:.2f} s; restart replaying the "
          f"AOF (compiles every script, makes every model session) {restart:.2f} s")

    # Every acknowledged script is back, as stored, and runs.
    for key in ["script", *stored_scripts]:
        assert client.execute_command("AI.SCRIPTGET", key) == [
            b"device", b"CPU", b"tag", key.encode(), b"Entry Points", [b"bump"],
            b"source", SCRIPT.encode()], key
        assert client.execute_command("AI.SCRIPTEXECUTE", key, "bump", "KEYS", 1, "check:runs",
                                      "INPUTS", 1, "b", "ARGS", 1, 2, "OUTPUTS", 1, "check:x") == b"OK", key
        assert client.execute_command("AI.TENSORGET", "check:x", "VALUES") == [b"6", b"10"]
    assert client.get("check:runs") == str(1 + len(stored_scripts)).encode()


# `bump_then_wait` INCRs keys[0], then polls keys[1] until it reads "go".
SLOW_SCRIPT = '''
def bump_then_wait(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("INCR", keys[0])
    i = 0
    while i < 100000000:
        if str(redis.execute("GET", keys[1])) == "go":
            break
        i += 1
    return tensors[0] * 2
'''


def test_a_script_killed_mid_run_keeps_its_redis_writes_but_not_its_outputs(server_factory: ServerFactory):
    """Why a run counter can be one ahead of the acknowledged runs: a
    script's redis.execute writes are logged (and fsynced) as they happen,
    its outputs when it returns. A run killed in between leaves the former."""
    server = server_factory(server_args=AOF_ALWAYS)
    client = server.client(socket_timeout=30)
    assert client.execute_command("AI.SCRIPTSTORE", "slow", "CPU", "ENTRY_POINTS", 1, "bump_then_wait",
                                  "SOURCE", SLOW_SCRIPT) == b"OK"
    client.execute_command("AI.TENSORSET", "a", "FLOAT", 2, "VALUES", 1, 2)
    run = ("AI.SCRIPTEXECUTE", "slow", "bump_then_wait", "KEYS", 2, "runs", "go", "INPUTS", 1, "a",
           "OUTPUTS", 1, "out")
    outcome: dict[str, object] = {}

    def run_script() -> None:
        try:
            # No retries: redis-py would send the run again once the server is back.
            caller = server.client(socket_timeout=30, retry=Retry(NoBackoff(), 0))
            outcome["reply"] = caller.execute_command(*run)
        except redis.ConnectionError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run_script, daemon=True)
    thread.start()
    # Another client sees the INCR: its reply left after the AOF was fsynced.
    wait_until(lambda: client.get("runs") == b"1", 30, "the script's INCR")
    assert server.proc is not None
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    thread.join(10)
    assert "reply" not in outcome and "error" in outcome

    server.start()
    assert client.get("runs") == b"1"  # never acknowledged to the script's caller, yet kept
    assert client.exists("out") == 0  # the run never finished
    assert run_info_calls(client, "slow") == 0
    client.set("go", "go")
    assert client.execute_command(*run) == b"OK"
    assert client.get("runs") == b"2"
    assert client.execute_command("AI.TENSORGET", "out", "VALUES") == [b"2", b"4"]


def test_a_client_that_gives_up_and_sends_the_run_again_runs_the_script_again(server_factory: ServerFactory):
    """redis-py 8.1, by default, waits 5 s for a reply and then sends the
    command again (up to 10 times). Each copy of a script run that is sent is
    run: its redis.execute writes happen once per copy, while its outputs are
    written for none of them (their clients are gone)."""
    server = server_factory()
    client = server.client(socket_timeout=30)
    assert client.execute_command("AI.SCRIPTSTORE", "slow", "CPU", "ENTRY_POINTS", 1, "bump_then_wait",
                                  "SOURCE", SLOW_SCRIPT) == b"OK"
    client.execute_command("AI.TENSORSET", "a", "FLOAT", 2, "VALUES", 1, 2)
    impatient = server.client(socket_timeout=0.5, retry=Retry(NoBackoff(), 2))  # 3 tries
    with pytest.raises(redis.TimeoutError):
        impatient.execute_command("AI.SCRIPTEXECUTE", "slow", "bump_then_wait", "KEYS", 2, "runs", "go",
                                  "INPUTS", 1, "a", "OUTPUTS", 1, "out")
    # Redis 7.0 counts a call when it starts (these three block); Valkey when
    # it replies, which these never do (their clients are gone).
    calls = client.info("commandstats").get("cmdstat_ai.scriptexecute", {}).get("calls", 0)
    assert calls == (3 if SERVER_KIND == "redis" else 0)
    client.set("go", "go")  # lets the runs finish, one after the other
    wait_until(lambda: client.get("runs") == b"3", 30, "the three runs")
    time.sleep(0.2)
    assert client.get("runs") == b"3" and client.exists("out") == 0


# --------------------------------------------------------------------------
# forks while the workers are saturated


def test_bgsave_and_bgrewriteaof_finish_under_saturated_workers_and_load(
        server_factory: ServerFactory, tmp_path: Path):
    server = server_factory(server_args=["--appendonly", "yes"])
    client = server.client()
    assert client.execute_command("AI.MODELSTORE", "busy", "ONNX", "CPU", "BLOB", onnx_busy()) == b"OK"
    x = np.random.default_rng(1).standard_normal((256, 256)).astype(np.float32)
    client.execute_command("AI.TENSORSET", "x", "FLOAT", 256, 256, "BLOB", x.tobytes())
    assert client.execute_command("AI.MODELEXECUTE", "busy", "INPUTS", 1, "x", "OUTPUTS", 1, "warm") == b"OK"
    expected = tensor(client, "warm")

    stop, errors = threading.Event(), []

    def saturate(i: int) -> None:
        c = server.client(socket_timeout=60)
        try:
            while not stop.is_set():
                assert c.execute_command("AI.MODELEXECUTE", "busy", "INPUTS", 1, "x",
                                         "OUTPUTS", 1, f"y{i}") == b"OK"
        except Exception as exc:  # reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=saturate, args=(i,), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        calls_before = client.execute_command("AI.INFO", "busy")[15]
        for _ in range(2):
            assert client.bgsave()
            wait_until(lambda: background_done(client), 60, "BGSAVE")
            assert client.execute_command("BGREWRITEAOF")
            wait_until(lambda: background_done(client), 60, "BGREWRITEAOF")
        # Both at once: the rewrite is scheduled behind the save.
        client.bgsave()
        client.execute_command("BGREWRITEAOF")
        wait_until(lambda: background_done(client), 60, "BGSAVE + BGREWRITEAOF")
        persistence = client.info("persistence")
        assert persistence["rdb_last_bgsave_status"] == "ok"
        assert persistence["aof_last_bgrewrite_status"] == "ok"
        calls_during = client.execute_command("AI.INFO", "busy")[15] - calls_before
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not errors, errors[:3]
    assert calls_during > 5, "the workers were not busy while the server forked"
    for i in range(8):
        np.testing.assert_array_equal(tensor(client, f"y{i}"), expected)
    before = snapshot(client)
    server.stop()

    # The RDB file, loaded by a server of its own...
    rdb_dir = tmp_path / "from-rdb"
    rdb_dir.mkdir()
    shutil.copy(server.workdir / "dump.rdb", rdb_dir / "dump.rdb")
    from_rdb = server_factory(workdir=rdb_dir).client()
    assert from_rdb.execute_command("AI.MODELGET", "busy", "BLOB") == onnx_busy()
    assert from_rdb.execute_command("AI.MODELEXECUTE", "busy", "INPUTS", 1, "x", "OUTPUTS", 1, "z") == b"OK"
    np.testing.assert_array_equal(tensor(from_rdb, "z"), expected)
    # ...and the rewritten AOF (RDB preamble + increments) gives back everything.
    server.start()
    assert snapshot(client) == before


# --------------------------------------------------------------------------
# chunked models


def count_chunks(aof_text: bytes) -> int:
    return aof_text.count(b"$%d\r\n" % CHUNK)


def test_models_larger_than_the_chunk_size_survive_aof_and_rdb_in_chunks(
        server_factory: ServerFactory, tmp_path: Path):
    module_args = ["MODEL_CHUNK_SIZE", str(CHUNK)]
    server = server_factory(module_args=module_args, server_args=[
        "--appendonly", "yes", "--aof-use-rdb-preamble", "no"])
    client = server.client()
    big = onnx_mlp()
    nchunks = len(big) // CHUNK + 1
    assert nchunks > 50
    pieces = [big[:3000], big[3000:3001], big[3001:]]
    assert client.execute_command("AI.MODELSTORE", "mlp", "ONNX", "CPU", "TAG", "fraud:v3",
                                  "BATCHSIZE", 8, "BLOB", *pieces) == b"OK"
    assert client.execute_command("AI.MODELSTORE", "small", "ONNX", "CPU", "BLOB", onnx_add()) == b"OK"
    meta = client.execute_command("AI.MODELGET", "mlp", "META")

    def check(c: redis.Redis, chunk: int, seed: int) -> None:
        blob = c.execute_command("AI.MODELGET", "mlp", "BLOB")
        assert isinstance(blob, list) and len(blob) == len(big) // chunk + 1
        assert {len(piece) for piece in blob[:-1]} == {chunk}
        assert b"".join(blob) == big
        # After an AOF load the input/output names come from the session,
        # made in the background: wait (bounded) for them.
        wait_until(lambda: c.execute_command("AI.MODELGET", "mlp", "META") == meta, 10, "META")
        assert c.execute_command("AI.MODELGET", "small", "BLOB") == onnx_add()  # one piece
        run_mlp(c, "mlp", seed)

    check(client, CHUNK, 0)

    # 1. The AOF as written: the MODELSTORE as the client sent it.
    server.restart()
    check(client, CHUNK, 1)

    # 2. A rewritten AOF: MODELSTORE ... BLOB with the blob in CHUNK pieces.
    assert client.execute_command("BGREWRITEAOF")
    wait_until(lambda: background_done(client), 30, "BGREWRITEAOF")
    base = next((server.workdir / "appendonlydir").glob("*.base.aof")).read_bytes()
    assert base.startswith(b"*") and b"AI.MODELSTORE" in base
    assert count_chunks(base) == nchunks - 1
    server.restart()
    check(client, CHUNK, 2)

    # 3. An RDB file (chunked the same way): saved and loaded in place, and
    # loaded by servers of their own, one with another chunk size (the chunk
    # size is not part of the format).
    assert client.execute_command("DEBUG", "RELOAD") == b"OK"
    check(client, CHUNK, 3)
    assert client.save()
    for seed, chunk in [(4, CHUNK), (5, 4 * CHUNK)]:
        workdir = tmp_path / f"rdb-{chunk}"
        workdir.mkdir()
        shutil.copy(server.workdir / "dump.rdb", workdir / "dump.rdb")
        from_rdb = server_factory(module_args=["MODEL_CHUNK_SIZE", str(chunk)], workdir=workdir)
        assert "DB loaded from disk" in from_rdb.log()
        check(from_rdb.client(), chunk, seed)


# --------------------------------------------------------------------------
# reload time of many models


N_MODELS = 200
RELOAD_MODELS = {"add": (onnx_add, ["a", "a"], ["s", "p"]),
                 "mlp": (onnx_mlp, ["mlp:tx", "mlp:ref"], ["out"])}


def start_timed(server: RedisServer) -> float:
    started = time.monotonic()
    server.start()
    client = server.client()
    wait_until(lambda: client.info("persistence")["loading"] == 0, 60, "loading")
    return time.monotonic() - started


@pytest.mark.parametrize("kind", sorted(RELOAD_MODELS))
def test_reload_time_of_200_models_from_rdb(server_factory: ServerFactory, kind: str):
    build, inputs, outputs = RELOAD_MODELS[kind]
    blob = build()
    server = server_factory(start=False)
    empty_start = start_timed(server)
    client = server.client()

    started = time.monotonic()
    pipe = client.pipeline(transaction=False)
    for i in range(N_MODELS):
        pipe.execute_command("AI.MODELSTORE", f"model:{i}", "ONNX", "CPU", "TAG", f"t{i}",
                             "BLOB", blob)
    assert pipe.execute() == [b"OK"] * N_MODELS
    store_time = time.monotonic() - started
    transaction, reference = mb.mlp_inputs(batch=1)
    client.execute_command("AI.TENSORSET", "a", "FLOAT", 2, "VALUES", 1, 2)
    client.execute_command("AI.TENSORSET", "mlp:tx", "FLOAT", 1, 30, "BLOB", transaction.tobytes())
    client.execute_command("AI.TENSORSET", "mlp:ref", "FLOAT", 1, 256, "BLOB", reference.tobytes())
    assert client.save()
    rdb_bytes = (server.workdir / "dump.rdb").stat().st_size
    server.stop()

    reload_time = start_timed(server)
    loaded = re.findall(r"DB loaded from disk: ([0-9.]+) seconds", server.log())
    assert loaded, server.log()
    assert client.dbsize() == N_MODELS + 3
    assert [client.execute_command("AI.MODELGET", f"model:{i}", "META")[5] for i in (0, N_MODELS - 1)] == \
        [b"t0", f"t{N_MODELS - 1}".encode()]

    def run_all(first: int = 0) -> float:
        started = time.monotonic()
        pipe = client.pipeline(transaction=False)
        for i in range(first, N_MODELS):
            pipe.execute_command("AI.MODELEXECUTE", f"model:{i}", "INPUTS", len(inputs), *inputs,
                                 "OUTPUTS", len(outputs), *(f"{o}:{i}" for o in outputs))
        assert pipe.execute() == [b"OK"] * (N_MODELS - first)
        return time.monotonic() - started

    started = time.monotonic()
    assert client.execute_command("AI.MODELEXECUTE", "model:0", "INPUTS", len(inputs), *inputs,
                                  "OUTPUTS", len(outputs), *outputs) == b"OK"
    first_model = time.monotonic() - started
    first_runs = run_all(first=1)
    warm_runs = run_all()
    if kind == "add":
        assert client.execute_command("AI.TENSORGET", f"s:{N_MODELS - 1}", "VALUES") == [b"2", b"4"]
    else:
        np.testing.assert_allclose(tensor(client, f"out:{N_MODELS - 1}"),
                                   mb.mlp_reference(mb.mlp_weights(), transaction, reference),
                                   rtol=1e-5, atol=1e-6)
    print(f"\nMEASURED {N_MODELS} ONNX {kind} models of {len(blob)} B ({rdb_bytes} B RDB): "
          f"stored in {store_time:.2f} s; server start empty {empty_start:.2f} s, with the models "
          f"{reload_time:.2f} s (RDB load itself {float(loaded[-1]):.3f} s); sessions are made "
          f"lazily: first run of the first model {first_model:.2f} s (imports the backend), of the "
          f"other {N_MODELS - 1} {first_runs:.2f} s; then all {N_MODELS} again {warm_runs:.2f} s")
    assert reload_time < empty_start + 10

    # The same data from an AOF of commands: the replay makes every session.
    client.config_set("aof-use-rdb-preamble", "no")
    client.config_set("appendonly", "yes")
    wait_until(lambda: client.info("persistence")["aof_enabled"] == 1 and background_done(client)
               and client.info("persistence")["aof_rewrite_in_progress"] == 0, 60, "the first AOF")
    server.stop()
    server.server_args += ["--appendonly", "yes", "--aof-use-rdb-preamble", "no"]
    aof_reload_time = start_timed(server)
    aof_loaded = re.findall(r"DB loaded from append only file: ([0-9.]+) seconds", server.log())
    assert aof_loaded, server.log()
    assert client.dbsize() > N_MODELS
    aof_first_runs = run_all()
    print(f"MEASURED the same from an AOF without RDB preamble: server start {aof_reload_time:.2f} s "
          f"(AOF load itself {float(aof_loaded[-1]):.3f} s, sessions included); first run of all "
          f"{N_MODELS} {aof_first_runs:.2f} s")
    assert aof_reload_time < empty_start + 30


# --------------------------------------------------------------------------
# model names across an RDB saved by a replica right after replication


def test_model_names_come_back_after_a_replica_saves_before_its_sessions_exist(
        server_factory: ServerFactory, tmp_path: Path):
    """A replica stores a replicated model at once and makes its session (and
    so learns its input/output names) in the background. An RDB it saves
    before that holds the model without names; a server loading that file
    must still get them back, at the latest from the session its first run
    makes."""
    primary = server_factory(server_args=["--repl-diskless-sync-delay", "0"])
    replica = server_factory(server_args=["--replicaof", "127.0.0.1", str(primary.port)])
    p, r = primary.client(), replica.client()
    wait_until(lambda: r.info("replication")["master_link_status"] == "up", 30, "the replica")
    # Models queued ahead keep the replica's loader busy, so the last one's
    # session is still to come when the replica saves.
    pipe = p.pipeline(transaction=False)
    for i in range(60):
        pipe.execute_command("AI.MODELSTORE", f"filler:{i}", "ONNX", "CPU", "BLOB", onnx_mlp())
    pipe.execute_command("AI.MODELSTORE", "mlp", "ONNX", "CPU", "BLOB", onnx_mlp())
    assert pipe.execute() == [b"OK"] * 61
    meta = p.execute_command("AI.MODELGET", "mlp", "META")
    assert meta[10:14] == [b"inputs", [b"transaction", b"reference"], b"outputs", [b"output"]]
    assert p.execute_command("WAIT", 1, 10000) == 1

    # One pipeline: the replica answers META and saves with no background
    # session finishing in between.
    pipe = r.pipeline(transaction=False)
    pipe.execute_command("AI.MODELGET", "mlp", "META")
    pipe.save()
    meta_on_replica, saved = pipe.execute()
    assert saved is True
    if meta_on_replica == meta:
        pytest.skip("the replica already knew the names when it saved: nothing to check")

    workdir = tmp_path / "saved-by-the-replica"
    workdir.mkdir()
    shutil.copy(replica.workdir / "dump.rdb", workdir / "dump.rdb")
    from_rdb = server_factory(workdir=workdir).client()
    run_mlp(from_rdb, "mlp", 0)
    wait_until(lambda: from_rdb.execute_command("AI.MODELGET", "mlp", "META") == meta, 5,
               "the model's input and output names")
