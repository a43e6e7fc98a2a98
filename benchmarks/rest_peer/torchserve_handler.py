"""TorchServe handler for benchmarks/peers.py: the fraud-detection loop on TorchServe.

The archive holds the TorchScript fraud MLP (fraud.pt) and settings.json
({"redis_port": N, "ref_key": "..."}).
Each request's body is JSON {"transaction": [30 floats]}; the handler fetches the 1 KB reference
(1x256 float32, a plain Redis string) with GET from the same Redis as the REST peer and
answers [[p0, p1]] per request. One torch thread per worker, as for the REST peer.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import redis
import torch

TX_FEATURES, REF_FEATURES = 30, 256


class FraudHandler:
    def __init__(self) -> None:
        self.initialized = False

    def initialize(self, context: Any) -> None:
        torch.set_num_threads(1)
        model_dir = context.system_properties["model_dir"]
        with open(os.path.join(model_dir, "settings.json")) as f:
            settings = json.load(f)
        self.module = torch.jit.load(os.path.join(model_dir, "fraud.pt")).eval()
        self.redis = redis.Redis(host="127.0.0.1", port=int(settings["redis_port"]),
                                 socket_timeout=10)
        self.ref_key = settings.get("ref_key", "ref")
        self.initialized = True

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[Any]:
        replies = []
        for row in data:
            body = row.get("body") if row.get("body") is not None else row.get("data")
            if isinstance(body, (bytes, bytearray)):
                body = json.loads(body)
            tx = np.asarray(body["transaction"], dtype=np.float32).reshape(1, TX_FEATURES)
            ref = np.frombuffer(self.redis.get(self.ref_key), dtype=np.float32).reshape(1, REF_FEATURES)
            with torch.inference_mode():
                score = self.module(torch.from_numpy(tx), torch.from_numpy(ref))
            replies.append(score.tolist())
        return replies


_service = FraudHandler()


def handle(data: list[dict[str, Any]] | None, context: Any) -> list[Any] | None:
    """TorchServe's module-level entry point."""
    if not _service.initialized:
        _service.initialize(context)
    if data is None:
        return None
    return _service.handle(data, context)
