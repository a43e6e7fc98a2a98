"""Models survive every way Redis persists, copies or replicates a value.

User stories: an operator stores one model of every backend (TORCH with
batching options, ONNX on device CPU:1, a TF frozen graph, a TF SavedModel
archive, TFLITE), runs each once, and then saves and restarts from RDB,
restarts from an AOF, rewrites the AOF and restarts, reloads with DEBUG
RELOAD, moves models with DUMP/RESTORE and copies them with COPY. After each,
AI.MODELGET META and the blob are what they were, AI.INFO knows the model
(with fresh counters) and AI.MODELEXECUTE gives byte-identical outputs.

With a small MODEL_CHUNK_SIZE (module argument) the blob goes through the RDB
and the AOF rewrite in chunks: the DUMP payload and the rewritten AOF are
decoded here and the chunks checked (RedisAI's encoding version 4, with its
trailing empty chunk when the length is an exact multiple).

A replica receives AI.MODELSTORE and, for AI.MODELEXECUTE, only the outputs,
as AI.TENSORSET: it never runs a model, so its AI.INFO counters stay 0.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import redis

import model_builders as mb
from conftest import RedisServer, ServerFactory, wait_until

AOF_ARGS = ["--appendonly", "yes", "--aof-use-rdb-preamble", "no"]
MODEL_TYPE_ID = 0x8FFF30E0C42C00  # "AI__MODEL" at encver 0 (reference section 1)
ENCVER = 4

# ---------------------------------------------------------------------------
# the models every story stores


@dataclass(frozen=True)
class StoredModel:
    key: str
    args: tuple[object, ...]  # AI.MODELSTORE key <args...> BLOB <blob>
    blob: Callable[[], bytes]
    inputs: dict[str, np.ndarray]
    noutputs: int


def _floats(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@functools.cache
def _blob(name: str) -> bytes:
    return {
        "torch": mb.torch_add,
        "onnx": mb.onnx_add,
        "tf": mb.tf_graph_def_mul,
        "savedmodel": lambda: mb.tf_saved_model_archive("tar.gz"),
        "tflite": mb.tflite_add_mul,
    }[name]()


MODELS = [
    StoredModel("model:torch",
                ("TORCH", "CPU", "TAG", "torch v1", "BATCHSIZE", 4, "MINBATCHSIZE", 2,
                 "MINBATCHTIMEOUT", 7),
                lambda: _blob("torch"),
                {"in:torch:a": _floats((2, 3), 1), "in:torch:b": _floats((2, 3), 2)}, 2),
    StoredModel("model:onnx", ("ONNX", "CPU:1", "TAG", "onnx"), lambda: _blob("onnx"),
                {"in:onnx:a": _floats((2,), 3), "in:onnx:b": _floats((2,), 4)}, 2),
    StoredModel("model:tf",
                ("TF", "CPU", "BATCHSIZE", 8, "INPUTS", 2, "a", "b", "OUTPUTS", 1, "mul"),
                lambda: _blob("tf"),
                {"in:tf:a": _floats((3, 2), 5), "in:tf:b": _floats((3, 2), 6)}, 1),
    StoredModel("model:savedmodel",
                ("TF", "cpu", "TAG", "saved", "INPUTS", 2, "x", "y", "OUTPUTS", 2, "sum", "scaled"),
                lambda: _blob("savedmodel"),
                {"in:sm:x": _floats((2, 3), 7), "in:sm:y": _floats((2, 3), 8)}, 2),
    StoredModel("model:tflite", ("TFLITE", "CPU", "TAG", "lite"), lambda: _blob("tflite"),
                {"in:lite:a": _floats((1, 3), 9), "in:lite:b": _floats((1, 3), 10)}, 2),
]


def store_models(r: redis.Redis, models: list[StoredModel]) -> None:
    for model in models:
        assert r.execute_command("AI.MODELSTORE", model.key, *model.args, "BLOB", model.blob()) == b"OK"
        for key, array in model.inputs.items():
            assert r.execute_command("AI.TENSORSET", key, "FLOAT", *array.shape,
                                     "BLOB", array.tobytes()) == b"OK"


def whole_blob(reply: object) -> bytes:
    """MODELGET BLOB's reply: one bulk string, or chunks to join."""
    return b"".join(reply) if isinstance(reply, list) else reply  # type: ignore[arg-type]


def run_models(r: redis.Redis, models: list[StoredModel], tag: str,
               key_of: Callable[[str], str] = lambda k: k) -> list[list[object]]:
    """Runs every model once; the outputs as AI.TENSORGET META BLOB replies, in order."""
    results = []
    for model in models:
        outputs = [f"out:{model.key}:{i}:{tag}" for i in range(model.noutputs)]
        assert r.execute_command("AI.MODELEXECUTE", key_of(model.key), "INPUTS", len(model.inputs),
                                 *model.inputs, "OUTPUTS", len(outputs), *outputs) == b"OK"
        results.append([r.execute_command("AI.TENSORGET", o, "META", "BLOB") for o in outputs])
    return results


@dataclass
class Recorded:
    metas: dict[str, list[object]]
    outputs: list[list[object]]


def record(r: redis.Redis, models: list[StoredModel]) -> Recorded:
    metas = {m.key: r.execute_command("AI.MODELGET", m.key, "META") for m in models}
    for model in models:
        assert whole_blob(r.execute_command("AI.MODELGET", model.key, "BLOB")) == model.blob()
        # Every model knows its I/O names before anything is persisted.
        assert metas[model.key][11] and metas[model.key][13], metas[model.key]
    return Recorded(metas, run_models(r, models, "before"))


def assert_models_back(r: redis.Redis, models: list[StoredModel], recorded: Recorded,
                       key_of: Callable[[str], str] = lambda k: k, meta_at_once: bool = True,
                       tag: str = "after") -> None:
    """Blob, META, AI.INFO and outputs of every model are what was recorded."""
    for model in models:
        key = key_of(model.key)
        assert whole_blob(r.execute_command("AI.MODELGET", key, "BLOB")) == model.blob(), key
        info = r.execute_command("AI.INFO", key)
        assert info[:2] == [b"key", key.encode()] and info[3] == b"MODEL"
        assert info[8:10] == recorded.metas[model.key][4:6]  # the tag
        assert info[10:18] == [b"duration", 0, b"samples", 0, b"calls", 0, b"errors", 0]
    assert run_models(r, models, tag, key_of) == recorded.outputs
    for model in models:
        key = key_of(model.key)
        if meta_at_once:
            assert r.execute_command("AI.MODELGET", key, "META") == recorded.metas[model.key], key
        else:
            # Models replayed from an AOF (or a replication stream) learn their
            # I/O names when their session is made in the background.
            wait_until(lambda: r.execute_command("AI.MODELGET", key, "META") == recorded.metas[model.key],
                       what=f"META of {key} to match")


# ---------------------------------------------------------------------------
# RDB, AOF, AOF rewrite


def test_save_and_restart_from_rdb(server_factory: ServerFactory) -> None:
    server = server_factory()
    r = server.client(socket_timeout=60)
    store_models(r, MODELS)
    recorded = record(r, MODELS)
    assert r.save() is True
    server.restart()

    r = server.client(socket_timeout=60)
    assert sorted(r.execute_command("AI._MODELSCAN")) == sorted(
        [[m.key.encode(), recorded.metas[m.key][5]] for m in MODELS])
    assert_models_back(r, MODELS, recorded)


def test_restart_from_aof(server_factory: ServerFactory) -> None:
    server = server_factory(server_args=AOF_ARGS)
    r = server.client(socket_timeout=60)
    store_models(r, MODELS)
    recorded = record(r, MODELS)
    server.restart()
    assert not (server.workdir / "dump.rdb").exists()

    r = server.client(socket_timeout=60)
    assert_models_back(r, MODELS, recorded, meta_at_once=False)


def read_resp_commands(path: Path) -> list[list[bytes]]:
    """The commands of an AOF file written in RESP (no RDB preamble)."""
    data = path.read_bytes()
    commands, pos = [], 0
    while pos < len(data):
        assert data[pos:pos + 1] == b"*", f"not RESP at byte {pos} of {path}"
        end = data.index(b"\r\n", pos)
        argc, pos = int(data[pos + 1:end]), end + 2
        args = []
        for _ in range(argc):
            assert data[pos:pos + 1] == b"$"
            end = data.index(b"\r\n", pos)
            length, pos = int(data[pos + 1:end]), end + 2
            args.append(data[pos:pos + length])
            pos += length + 2
        commands.append(args)
    return commands


def rewrite_aof(r: redis.Redis, server: RedisServer) -> list[list[bytes]]:
    """BGREWRITEAOF, waited for; the commands of the new base file."""
    r.bgrewriteaof()
    wait_until(lambda: (lambda p: p["aof_rewrite_in_progress"] == 0 and p["aof_rewrite_scheduled"] == 0
                        and p["aof_last_bgrewrite_status"] == "ok")(r.info("persistence")),
               what="the AOF rewrite")
    manifest = (server.workdir / "appendonlydir" / "appendonly.aof.manifest").read_text()
    (base,) = [line.split()[1] for line in manifest.splitlines() if line.split()[-1] == "b"]
    return read_resp_commands(server.workdir / "appendonlydir" / base)


def expected_rewrite(model: StoredModel, meta: list[object], chunk_size: int) -> list[bytes]:
    """AI.MODELSTORE as RedisAI's AOF rewrite emits it (reference section 9)."""
    fields = {meta[i].decode(): meta[i + 1] for i in range(0, 16, 2)}  # type: ignore[union-attr]
    command = [b"AI.MODELSTORE", model.key.encode(), fields["backend"], fields["device"],
               b"TAG", fields["tag"], b"BATCHSIZE", str(fields["batchsize"]).encode(),
               b"MINBATCHSIZE", str(fields["minbatchsize"]).encode(),
               b"MINBATCHTIMEOUT", str(fields["minbatchtimeout"]).encode()]
    if fields["backend"] == b"TF":
        command += [b"INPUTS", str(len(fields["inputs"])).encode(), *fields["inputs"],
                    b"OUTPUTS", str(len(fields["outputs"])).encode(), *fields["outputs"]]
    blob = model.blob()
    chunks = [blob[i:i + chunk_size] for i in range(0, len(blob) // chunk_size * chunk_size, chunk_size)]
    chunks.append(blob[len(blob) // chunk_size * chunk_size:])  # empty on an exact multiple
    return command + [b"BLOB", *chunks]


def test_bgrewriteaof_and_restart(server_factory: ServerFactory) -> None:
    server = server_factory(server_args=AOF_ARGS)
    r = server.client(socket_timeout=60)
    store_models(r, MODELS)
    recorded = record(r, MODELS)
    commands = rewrite_aof(r, server)

    stores = {c[1].decode(): c for c in commands if c[0].upper() == b"AI.MODELSTORE"}
    assert sorted(stores) == sorted(m.key for m in MODELS)
    for model in MODELS:
        assert stores[model.key] == expected_rewrite(model, recorded.metas[model.key], 511 * 1024 * 1024)
    # The run outputs are in the rewrite as tensors; no command runs a model.
    assert not any(c[0].upper() in (b"AI.MODELEXECUTE", b"AI.MODELRUN") for c in commands)
    assert sum(c[0].upper() == b"AI.TENSORSET" for c in commands) == sum(
        len(m.inputs) + m.noutputs for m in MODELS)

    server.restart()
    r = server.client(socket_timeout=60)
    assert_models_back(r, MODELS, recorded, meta_at_once=False)


# ---------------------------------------------------------------------------
# DEBUG RELOAD, DUMP/RESTORE, COPY: one server for the three stories


@pytest.fixture
def r(shared_server: RedisServer, request: pytest.FixtureRequest) -> redis.Redis:
    request.node.redis_servers = [shared_server]
    client = shared_server.client(socket_timeout=60)
    client.flushall()
    return client


def test_debug_reload(r: redis.Redis) -> None:
    store_models(r, MODELS)
    recorded = record(r, MODELS)
    assert r.execute_command("DEBUG", "RELOAD") == b"OK"
    assert_models_back(r, MODELS, recorded)


def test_dump_and_restore(r: redis.Redis) -> None:
    store_models(r, MODELS)
    recorded = record(r, MODELS)
    payloads = {m.key: r.dump(m.key) for m in MODELS}
    for model in MODELS:
        assert r.restore(f"{model.key}:restored", 0, payloads[model.key]) == b"OK"
    # The originals go away; the restored models stand on their own.
    assert r.delete(*(m.key for m in MODELS)) == len(MODELS)
    assert_models_back(r, MODELS, recorded, key_of=lambda k: f"{k}:restored")

    # RESTORE REPLACE over another model: the key now holds the restored one.
    r.execute_command("AI.MODELSTORE", "model:target", "ONNX", "CPU", "TAG", "old", "BLOB", _blob("onnx"))
    assert r.restore("model:target", 0, payloads["model:tflite"], replace=True) == b"OK"
    assert r.execute_command("AI.MODELGET", "model:target", "META") == recorded.metas["model:tflite"]
    with pytest.raises(redis.ResponseError, match="BUSYKEY"):
        r.restore("model:target", 0, payloads["model:torch"])


def test_copy(r: redis.Redis) -> None:
    store_models(r, MODELS)
    recorded = record(r, MODELS)
    for model in MODELS:
        assert r.copy(model.key, f"{model.key}:copy") is True
    assert_models_back(r, MODELS, recorded, key_of=lambda k: f"{k}:copy")
    # The copies count their own runs: the originals ran once, before the copy.
    for model in MODELS:
        assert r.execute_command("AI.INFO", model.key)[14:16] == [b"calls", 1]
        assert r.execute_command("AI.INFO", f"{model.key}:copy")[14:16] == [b"calls", 1]
    # A copy outlives its original, and COPY without REPLACE keeps an existing key.
    r.delete("model:onnx")
    assert run_models(r, MODELS[1:2], "again", lambda k: f"{k}:copy") == recorded.outputs[1:2]
    assert r.copy("model:tf", "model:tflite:copy") is False
    assert whole_blob(r.execute_command("AI.MODELGET", "model:tflite:copy", "BLOB")) == _blob("tflite")
    assert r.copy("model:tf", "model:tflite:copy", replace=True) is True
    assert r.execute_command("AI.MODELGET", "model:tflite:copy", "META") == recorded.metas["model:tf"]


# ---------------------------------------------------------------------------
# chunks through RDB and AOF


CHUNK = 64


@functools.cache
def onnx_add_exact_multiple() -> bytes:
    """onnx_add padded with a doc string to a length that is a multiple of CHUNK."""
    import onnx

    model = onnx.load_from_string(mb.onnx_add())
    for pad in range(4 * CHUNK):
        model.doc_string = "x" * pad
        blob = model.SerializeToString()
        if len(blob) % CHUNK == 0:
            return blob
    raise AssertionError("no padding gives an exact multiple")


CHUNKED_MODELS = [
    StoredModel("chunked:torch", ("TORCH", "CPU", "TAG", "t"), lambda: _blob("torch"),
                {"in:torch:a": _floats((2, 3), 1), "in:torch:b": _floats((2, 3), 2)}, 2),
    StoredModel("chunked:onnx", ("ONNX", "CPU", "TAG", "o"), lambda: _blob("onnx"),
                {"in:onnx:a": _floats((2,), 3), "in:onnx:b": _floats((2,), 4)}, 2),
    StoredModel("chunked:exact", ("ONNX", "CPU"), onnx_add_exact_multiple,
                {"in:onnx:a": _floats((2,), 3), "in:onnx:b": _floats((2,), 4)}, 2),
]


def _rdb_length(buf: bytes, pos: int) -> tuple[int, int]:
    first = buf[pos]
    kind = first >> 6
    if kind == 0:
        return first & 0x3F, pos + 1
    if kind == 1:
        return ((first & 0x3F) << 8) | buf[pos + 1], pos + 2
    if first == 0x80:
        return int.from_bytes(buf[pos + 1:pos + 5], "big"), pos + 5
    if first == 0x81:
        return int.from_bytes(buf[pos + 1:pos + 9], "big"), pos + 9
    raise AssertionError(f"unexpected length byte {first:#x} at {pos}")


def _rdb_string(buf: bytes, pos: int) -> tuple[bytes, int]:
    first = buf[pos]
    if first >> 6 == 3:  # an integer-encoded string (LZF is off: rdbcompression no)
        size = {0: 1, 1: 2, 2: 4}[first & 0x3F]
        value = int.from_bytes(buf[pos + 1:pos + 1 + size], "little", signed=True)
        return str(value).encode(), pos + 1 + size
    length, pos = _rdb_length(buf, pos)
    return buf[pos:pos + length], pos + length


def dump_fields(payload: bytes) -> tuple[int, list[int | bytes]]:
    """A model's DUMP payload: (module type id, the fields it saved, in order)."""
    assert payload[0] == 7  # RDB_TYPE_MODULE_2
    type_id, pos = _rdb_length(payload, 1)
    fields: list[int | bytes] = []
    while True:
        opcode, pos = _rdb_length(payload, pos)
        if opcode == 0:  # EOF
            break
        if opcode == 2:  # unsigned (and signed)
            value, pos = _rdb_length(payload, pos)
            fields.append(value)
        elif opcode == 5:  # string
            data, pos = _rdb_string(payload, pos)
            fields.append(data)
        else:
            raise AssertionError(f"unexpected module opcode {opcode}")
    assert len(payload) == pos + 2 + 8  # RDB version and CRC64 follow
    return type_id, fields


def expected_dump_fields(meta: list[object], blob: bytes, chunk_size: int) -> list[int | bytes]:
    """Encoding version 4 of a model (reference section 9)."""
    fields = {meta[i].decode(): meta[i + 1] for i in range(0, 16, 2)}  # type: ignore[union-attr]
    backend = {b"TF": 0, b"TFLITE": 1, b"TORCH": 2, b"ONNX": 3}[fields["backend"]]
    out: list[int | bytes] = [backend, fields["device"] + b"\0", fields["tag"], fields["batchsize"],
                              fields["minbatchsize"], fields["minbatchtimeout"]]
    for names in (fields["inputs"], fields["outputs"]):
        out += [len(names), *(name + b"\0" for name in names)]
    n_chunks = len(blob) // chunk_size + 1
    chunks = [blob[i * chunk_size:(i + 1) * chunk_size] for i in range(n_chunks)]
    return out + [len(blob), n_chunks, *chunks]


def test_small_model_chunk_size_chunks_rdb_and_aof(server_factory: ServerFactory) -> None:
    server = server_factory(module_args=["MODEL_CHUNK_SIZE", str(CHUNK)],
                            server_args=[*AOF_ARGS, "--rdbcompression", "no"])
    r = server.client(socket_timeout=60)
    assert r.execute_command("AI.CONFIG", "GET", "MODEL_CHUNK_SIZE") == CHUNK
    store_models(r, CHUNKED_MODELS)
    recorded = record(r, CHUNKED_MODELS)
    exact = onnx_add_exact_multiple()
    assert len(exact) % CHUNK == 0
    assert r.execute_command("AI.MODELGET", "chunked:exact", "BLOB")[-1] == b""

    # RDB: the DUMP payload is encoding 4 with the blob in CHUNK-byte pieces.
    for model in CHUNKED_MODELS:
        type_id, fields = dump_fields(r.dump(model.key))
        assert type_id == MODEL_TYPE_ID | ENCVER
        assert fields == expected_dump_fields(recorded.metas[model.key], model.blob(), CHUNK), model.key
    # AOF rewrite: AI.MODELSTORE ... BLOB <chunk> <chunk> ...
    stores = {c[1].decode(): c for c in rewrite_aof(r, server) if c[0].upper() == b"AI.MODELSTORE"}
    for model in CHUNKED_MODELS:
        assert stores[model.key] == expected_rewrite(model, recorded.metas[model.key], CHUNK)
    assert stores["chunked:exact"][-1] == b""

    server.restart()  # from the rewritten AOF
    r = server.client(socket_timeout=60)
    assert_models_back(r, CHUNKED_MODELS, recorded, meta_at_once=False)

    assert r.config_set("appendonly", "no") is True
    assert r.save() is True
    server.server_args = [arg if arg != "yes" else "no" for arg in server.server_args]
    server.restart()  # from the RDB
    r = server.client(socket_timeout=60)
    assert r.info("persistence")["aof_enabled"] == 0
    assert_models_back(r, CHUNKED_MODELS, recorded, tag="after_rdb")


# ---------------------------------------------------------------------------
# the replica


def test_replica_gets_models_and_outputs_but_never_runs_them(server_factory: ServerFactory) -> None:
    primary = server_factory()
    replica = server_factory(server_args=["--replicaof", "127.0.0.1", str(primary.port)])
    p = primary.client(socket_timeout=60)
    rep = replica.client(socket_timeout=60)
    wait_until(lambda: rep.info("replication")["master_link_status"] == "up", what="the replica link")

    models = MODELS[:2]  # TORCH and ONNX (on CPU:1): the replica must load their backends too
    store_models(p, models)
    recorded = record(p, models)
    assert p.execute_command("WAIT", 1, 20000) == 1

    for model in models:
        assert whole_blob(rep.execute_command("AI.MODELGET", model.key, "BLOB")) == model.blob()
        # The outputs arrived as tensors, byte for byte.
        for i in range(model.noutputs):
            out = f"out:{model.key}:{i}:before"
            assert rep.execute_command("AI.TENSORGET", out, "META", "BLOB") == \
                p.execute_command("AI.TENSORGET", out, "META", "BLOB")
        # ... and the replica never ran the model.
        assert rep.execute_command("AI.INFO", model.key)[10:18] == [
            b"duration", 0, b"samples", 0, b"calls", 0, b"errors", 0]
        assert p.execute_command("AI.INFO", model.key)[14:16] == [b"calls", 1]
        wait_until(lambda: rep.execute_command("AI.MODELGET", model.key, "META") == recorded.metas[model.key],
                   what=f"META of {model.key} on the replica")
    stats = rep.info("commandstats")
    assert stats["cmdstat_ai.tensorset"]["calls"] == sum(len(m.inputs) + m.noutputs for m in models)
    assert stats["cmdstat_ai.modelstore"]["calls"] == len(models)
    assert "cmdstat_ai.modelexecute" not in stats

    # Deleting and replacing models replicates too.
    p.execute_command("AI.MODELDEL", "model:onnx")
    p.execute_command("AI.MODELSTORE", "model:torch", "ONNX", "CPU", "TAG", "swapped", "BLOB", _blob("onnx"))
    assert p.execute_command("WAIT", 1, 20000) == 1
    assert rep.exists("model:onnx") == 0
    assert rep.execute_command("AI.MODELGET", "model:torch", "BLOB") == _blob("onnx")
    assert rep.execute_command("AI._MODELSCAN") == [[b"model:torch", b"swapped"]]


# ---------------------------------------------------------------------------
# known server bugs


@pytest.fixture
def aof_server_restarted(server_factory: ServerFactory) -> tuple[RedisServer, Recorded]:
    """An AOF server that held a TORCH and an ONNX model, just restarted:
    replaying the AOF makes each model's session, so its names are known
    from the first request on."""
    server = server_factory(server_args=AOF_ARGS)
    r = server.client(socket_timeout=60)
    models = MODELS[:2]
    store_models(r, models)
    recorded = record(r, models)
    server.restart()
    return server, recorded


def test_meta_right_after_aof_restart(aof_server_restarted: tuple[RedisServer, Recorded]) -> None:
    server, recorded = aof_server_restarted
    r = server.client(socket_timeout=60)
    for key in ("model:torch", "model:onnx"):
        assert r.execute_command("AI.MODELGET", key, "META") == recorded.metas[key]


def test_copy_made_right_after_aof_restart_keeps_io_names(
        aof_server_restarted: tuple[RedisServer, Recorded]) -> None:
    server, recorded = aof_server_restarted
    r = server.client(socket_timeout=60)
    assert r.copy("model:torch", "model:torch:copy") is True
    expected = recorded.metas["model:torch"]
    wait_until(lambda: r.execute_command("AI.MODELGET", "model:torch", "META") == expected,
               what="the original's names")
    with pytest.raises(redis.ResponseError) as err:
        r.execute_command("AI.MODELEXECUTE", "model:torch:copy", "INPUTS", 1, "in:torch:a",
                          "OUTPUTS", 2, "x", "y")
    assert str(err.value) == "Number of keys given as INPUTS here does not match model definition"
    assert r.execute_command("AI.MODELGET", "model:torch:copy", "META") == expected
