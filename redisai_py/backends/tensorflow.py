"""TF backend adapter (tensorflow): frozen GraphDefs, and SavedModels sent as archives.

A frozen GraphDef is what RedisAI takes: the blob is a serialized GraphDef and
AI.MODELSTORE names its input and output nodes (output 0 of each node is fed or
fetched; "node:k" picks output k).

A SavedModel is a directory, so it travels as one blob: a tar (optionally
gzip-compressed) or zip archive of the directory (found by its saved_model.pb,
at any depth). It runs through its "serving_default" signature (or its only
signature). Its input and output names are the signature's keys: the names given
to AI.MODELSTORE pick and order them; with no names given, all keys in sorted
order, which is the order TF flattens a signature's keyword arguments in.

Every other blob is parsed as a GraphDef, as RedisAI parses every TF blob: random
bytes, and any archive that names no saved_model.pb (a TorchScript file sent as
TF by mistake), get RedisAI's "Invalid GraphDef". Only an archive that holds a
saved_model.pb and then fails to load gets an error that speaks of a SavedModel.

Both kinds run in a TF1-style Session through a callable made once at load
(Session._make_callable_from_options): a run is one C call that takes the numpy
inputs and returns numpy outputs, on the worker's own thread. On a small graph
that is about 11 µs, against 50 µs and more for calling a concrete function
(tf.function / wrap_function, with the numpy -> EagerTensor conversions) and
about 60 µs for Session.run with a feed dict. A Session also keeps TF's error texts as RedisAI's
clients know them ("{{node mul}}"; a function renames nodes), and takes the
INTRA_/INTER_OP_PARALLELISM thread counts per model.
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

# TF's C++ logging writes every failed run to stderr, i.e. the Redis log;
# the client gets the error anyway. Must be set before tensorflow is imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as _framework  # noqa: E402
from google.protobuf.message import DecodeError  # noqa: E402
from tensorflow.core.protobuf import config_pb2  # noqa: E402
from tensorflow.python.util import deprecation  # noqa: E402

from redisai_py._errors import BackendError  # noqa: E402
from redisai_py.backends.base import ModelSession, ModelSpec  # noqa: E402

__all__ = ["version", "load", "TFSession"]

GPU_NOT_FOUND = "ERR GPU requested but TF couldn't find CUDA"
INVALID_GRAPHDEF = "Invalid GraphDef"
SESSION_CLOSED = "ERR The TF model was freed"
SERVING_SIGNATURE = "serving_default"
SERVING_TAG = "serve"
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
ZIP_MAGIC = b"PK\x03\x04"
GZIP_MAGIC = b"\x1f\x8b"
TAR_MAGIC = b"ustar"  # at offset 257 of a POSIX or GNU tar

_v1 = _framework.compat.v1


def version() -> str:
    """The version of tensorflow this backend runs on."""
    return str(_framework.__version__)


def load(blob: bytes, spec: ModelSpec) -> TFSession:
    """A session for the frozen GraphDef or SavedModel archive in `blob`."""
    if spec.on_gpu and not _framework.config.list_physical_devices("GPU"):
        raise BackendError(GPU_NOT_FOUND)
    if _holds_saved_model(blob):
        return _load_saved_model(blob, spec)
    return _load_graph_def(blob, spec)


def _session_config(spec: ModelSpec) -> config_pb2.ConfigProto:
    config = config_pb2.ConfigProto(
        intra_op_parallelism_threads=max(spec.intra_op_threads, 0),
        # Unless INTER_OP_PARALLELISM asks for several ops at once, ops run one
        # after the other on the calling worker thread (TF's negative setting)
        # instead of being handed to an inter-op pool thread: that hand-off and
        # wake-up costs 5 to 50 µs a run, more than a small model's whole run.
        # RedisAI's TF backend executes synchronously too.
        inter_op_parallelism_threads=spec.inter_op_threads if spec.inter_op_threads > 1 else -1,
        # Ops without a GPU kernel fall back to the CPU instead of failing the load.
        allow_soft_placement=True,
    )
    if spec.on_gpu:
        config.gpu_options.allow_growth = True
    else:
        config.device_count["GPU"] = 0
    return config


def _device_scope(spec: ModelSpec) -> str:
    if not spec.on_gpu:
        return "/device:CPU:0"
    return f"/device:GPU:{max(spec.device_id, 0)}"


# ---- frozen GraphDef -------------------------------------------------------------------

def _load_graph_def(blob: bytes, spec: ModelSpec) -> TFSession:
    graph_def = _v1.GraphDef()
    try:
        graph_def.ParseFromString(blob)
    except (DecodeError, RuntimeWarning) as exc:
        raise BackendError(INVALID_GRAPHDEF) from exc
    node_names = {node.name for node in graph_def.node}
    for name in spec.inputs:
        if _node_of(name) not in node_names:
            raise BackendError(f'ERR Input node named "{name}" not found in TF graph.')
    for name in spec.outputs:
        if _node_of(name) not in node_names:
            raise BackendError(f'ERR Output node named "{name}" not found in TF graph')
    graph = _framework.Graph()
    try:
        with graph.as_default(), _framework.device(_device_scope(spec)):
            _framework.graph_util.import_graph_def(graph_def, name="")
        session = _v1.Session(graph=graph, config=_session_config(spec))
    except Exception as exc:
        raise BackendError(str(exc)) from exc
    feeds = [_tensor_of(name) for name in spec.inputs]
    fetches = [_tensor_of(name) for name in spec.outputs]
    return TFSession(session, spec, feeds, fetches, list(spec.inputs), list(spec.outputs))


def _node_of(name: str) -> str:
    """The node of a node or tensor name: "mul" and "mul:0" are node "mul"."""
    node, _, _ = name.partition(":")
    return node


def _tensor_of(name: str) -> str:
    """The tensor a node name stands for: its output 0, as in RedisAI."""
    return name if ":" in name else f"{name}:0"


# ---- SavedModel archive ----------------------------------------------------------------

def _holds_saved_model(blob: bytes) -> bool:
    """Whether `blob` is a zip or tar(.gz) archive naming a saved_model.pb (or .pbtxt).

    Only the member names are read. A damaged archive counts by the members
    that can be read before the damage: with a saved_model.pb among them it
    is a broken SavedModel, without one it is just not a GraphDef.
    """
    return any(PurePosixPath(name).name in SAVED_MODEL_FILES for name in _member_names(blob))


def _member_names(blob: bytes) -> list[str]:
    """The member names that can be read from a zip or tar(.gz) blob; [] for any other blob."""
    names: list[str] = []
    try:
        if blob[:4] == ZIP_MAGIC:
            with zipfile.ZipFile(io.BytesIO(blob)) as archive:
                names.extend(archive.namelist())
        elif blob[:2] == GZIP_MAGIC or blob[257:262] == TAR_MAGIC:
            with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as archive:
                for member in archive:
                    names.append(member.name)
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, zlib.error):
        pass  # the names read so far are all there is
    return names


def _load_saved_model(blob: bytes, spec: ModelSpec) -> TFSession:
    graph = _framework.Graph()
    session = _v1.Session(graph=graph, config=_session_config(spec))
    # Variables and lookup tables are restored into the session during load,
    # so the extracted files are not needed afterwards.
    with tempfile.TemporaryDirectory(prefix="redisai-savedmodel-") as workdir:
        export_dir = _extract_saved_model(blob, Path(workdir))
        try:
            # The TF1 loader is marked deprecated (for tf.saved_model.load, which
            # gives eager functions, slower to call); keep its notice out of the log.
            with graph.as_default(), _framework.device(_device_scope(spec)), deprecation.silence():
                meta_graph = _v1.saved_model.loader.load(session, [SERVING_TAG], str(export_dir))
        except Exception as exc:
            session.close()
            # The client sees the loader's words, not this server's file system.
            raise BackendError("ERR " + str(exc).replace(workdir, "<SavedModel>")) from exc
    signatures = meta_graph.signature_def
    if SERVING_SIGNATURE in signatures:
        signature = signatures[SERVING_SIGNATURE]
    elif len(signatures) == 1:
        (signature,) = signatures.values()
    else:
        session.close()
        raise BackendError(f"ERR The SavedModel has no {SERVING_SIGNATURE} signature")
    try:
        input_names = _signature_keys(signature.inputs, spec.inputs, "Input", ".")
        output_names = _signature_keys(signature.outputs, spec.outputs, "Output", "")
    except BackendError:
        session.close()
        raise
    feeds = [signature.inputs[key].name for key in input_names]
    fetches = [signature.outputs[key].name for key in output_names]
    return TFSession(session, spec, feeds, fetches, input_names, output_names)


def _signature_keys(tensors: object, requested: tuple[str, ...], kind: str,
                    period: str) -> list[str]:
    if not requested:
        return sorted(tensors)
    for name in requested:
        if name not in tensors:
            raise BackendError(f'ERR {kind} node named "{name}" not found in TF graph{period}')
    return list(requested)


def _extract_saved_model(blob: bytes, workdir: Path) -> Path:
    """Unpack the archive under `workdir`; the directory that holds saved_model.pb."""
    try:
        if blob[:4] == ZIP_MAGIC:
            # ZipFile.extractall drops ".." and leading "/" from member names.
            with zipfile.ZipFile(io.BytesIO(blob)) as archive:
                archive.extractall(workdir)
        else:
            with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as archive:
                archive.extractall(workdir, members=_plain_members(archive))
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise BackendError(f"ERR Invalid SavedModel archive: {exc}") from exc
    found = sorted(
        (p.parent for name in SAVED_MODEL_FILES for p in workdir.rglob(name)),
        key=lambda directory: len(directory.parts),
    )
    if not found:  # named in the archive, yet nothing was extracted under that name
        raise BackendError("ERR Invalid SavedModel archive: saved_model.pb could not be extracted")
    return found[0]


def _plain_members(archive: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """Regular files and directories that stay inside the target directory.

    Python 3.11.2 has no extraction filters, so links, devices, absolute paths
    and ".." are refused here: an archive is user input.
    """
    members = []
    for member in archive.getmembers():
        path = Path(member.name)
        if path.is_absolute() or ".." in path.parts or not (member.isfile() or member.isdir()):
            raise BackendError(f"ERR Invalid SavedModel archive: member {member.name!r} is not allowed")
        members.append(member)
    return members


# ---- session ---------------------------------------------------------------------------

class TFSession(ModelSession):
    """A TF1-style Session and one callable feeding and fetching the model's tensors."""

    def __init__(self, session: _v1.Session, spec: ModelSpec, feeds: list[str],
                 fetches: list[str], input_names: list[str], output_names: list[str]) -> None:
        self.spec = spec
        self.input_names = input_names
        self.output_names = output_names
        self._session: _v1.Session | None = session
        try:
            self._callable = session._make_callable_from_options(
                config_pb2.CallableOptions(feed=feeds, fetch=fetches)
            )
        except Exception as exc:
            session.close()
            raise BackendError(str(exc)) from exc

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        try:
            return self._callable(*inputs)
        except Exception as exc:
            if self._session is None:
                raise BackendError(SESSION_CLOSED) from exc
            raise BackendError(str(exc)) from exc

    def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            self._callable = _closed_callable
            session.close()


def _closed_callable(*_: object) -> None:
    raise RuntimeError(SESSION_CLOSED)
