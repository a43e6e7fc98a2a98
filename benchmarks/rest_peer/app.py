"""The REST peer of benchmarks/peers.py: the fraud-detection loop as a common Flask service.

Run by gunicorn (sync workers), one model per process:

    FRAUD_BACKEND=onnx|torch FRAUD_MODEL=/path/model FRAUD_REDIS_PORT=6379 \
        gunicorn --workers 2 --bind 127.0.0.1:PORT app:app

POST /predict with a JSON body {"transaction": [30 floats]}: the handler fetches the 1 KB
reference (1x256 float32, a plain Redis string under key "ref") from Redis with GET, runs the
fraud MLP on (transaction, reference) and answers {"score": [[p0, p1]]}.

Each worker process loads the model once, after the fork, and keeps one Redis connection.
Framework thread pools are held to one thread per worker (the workers already use the cores),
the setting that gives this peer its best throughput on a small machine.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import redis
from flask import Flask, jsonify, request

BACKEND = os.environ.get("FRAUD_BACKEND", "onnx")
MODEL_PATH = os.environ["FRAUD_MODEL"]
REDIS_PORT = int(os.environ.get("FRAUD_REDIS_PORT", "6379"))
REF_KEY = os.environ.get("FRAUD_REF_KEY", "ref")
TX_FEATURES, REF_FEATURES = 30, 256


class _Model:
    def __init__(self) -> None:
        if BACKEND == "torch":
            import torch

            torch.set_num_threads(1)
            self._torch = torch
            self._module = torch.jit.load(MODEL_PATH).eval()
        elif BACKEND == "onnx":
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            self._session = ort.InferenceSession(MODEL_PATH, options,
                                                 providers=["CPUExecutionProvider"])
        else:
            raise ValueError(f"FRAUD_BACKEND must be onnx or torch, not {BACKEND!r}")

    def __call__(self, tx: np.ndarray, ref: np.ndarray) -> np.ndarray:
        if BACKEND == "torch":
            with self._torch.inference_mode():
                return self._module(self._torch.from_numpy(tx),
                                    self._torch.from_numpy(ref)).numpy()
        return self._session.run(None, {"transaction": tx, "reference": ref})[0]


app = Flask(__name__)
_state: dict[str, Any] = {}


def _worker_state() -> tuple[_Model, redis.Redis]:
    """Model and Redis client of this worker process, made on its first request."""
    if "pid" not in _state or _state["pid"] != os.getpid():
        _state.update(pid=os.getpid(), model=_Model(),
                      redis=redis.Redis(host="127.0.0.1", port=REDIS_PORT, socket_timeout=10))
    return _state["model"], _state["redis"]


@app.post("/predict")
def predict() -> Any:
    model, client = _worker_state()
    body = request.get_json(force=True)
    tx = np.asarray(body["transaction"], dtype=np.float32).reshape(1, TX_FEATURES)
    blob = client.get(REF_KEY)
    if blob is None or len(blob) != 4 * REF_FEATURES:
        return jsonify(error="reference data missing"), 500
    ref = np.frombuffer(blob, dtype=np.float32).reshape(1, REF_FEATURES)
    return jsonify(score=model(tx, ref).tolist())


@app.get("/health")
def health() -> Any:
    _worker_state()
    return jsonify(ok=True)
