"""A small HTTP gateway in front of the tenants' models: FastAPI + redis-py's asyncio client.

    POST /tenants/{tenant}/predict   {"features": [[5.1, 3.5, 1.4, 0.2], ...]}
    -> {"labels": [0, ...], "probabilities": [[0.97, 0.03, 0.0], ...]}

Each request is one round trip to Redis: an AI.DAGEXECUTE that sets the input tensor,
runs AI.MODELEXECUTE on the tenant's model and returns both outputs, with nothing
left in the keyspace (a DAG's tensors are its own). ROUTING names the model's key,
so a cluster-aware client sends it to the tenant's shard.

    REDIS_URL=redis://127.0.0.1:6379 uvicorn gateway:app --port 8000
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import numpy as np
import redis.asyncio as redis
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

FEATURES = 4
MAX_ROWS = 1024


class PredictRequest(BaseModel):
    features: list[list[float]] = Field(min_length=1, max_length=MAX_ROWS)


class Prediction(BaseModel):
    labels: list[int]
    probabilities: list[list[float]]


def model_key(tenant: str) -> str:
    return f"model:{{{tenant}}}"


def predict_command(tenant: str, rows: np.ndarray) -> list[object]:
    return ["AI.DAGEXECUTE", "ROUTING", model_key(tenant),
            "|>", "AI.TENSORSET", "x", "FLOAT", rows.shape[0], FEATURES, "BLOB", rows.tobytes(),
            "|>", "AI.MODELEXECUTE", model_key(tenant), "INPUTS", 1, "x", "OUTPUTS", 2, "label", "prob",
            "|>", "AI.TENSORGET", "label", "VALUES",
            "|>", "AI.TENSORGET", "prob", "VALUES"]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.redis = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
    yield
    await app.state.redis.aclose()


app = FastAPI(title="iris per tenant", lifespan=lifespan)


@app.post("/tenants/{tenant}/predict")
async def predict(tenant: str, request: PredictRequest) -> Prediction:
    rows = np.asarray(request.features, dtype=np.float32)
    if rows.ndim != 2 or rows.shape[1] != FEATURES:
        raise HTTPException(422, f"each row needs {FEATURES} features")
    try:
        reply = await app.state.redis.execute_command(*predict_command(tenant, rows))
    except redis.ResponseError as exc:
        if "model key is empty" in str(exc):
            raise HTTPException(404, f"no model for tenant {tenant!r}") from exc
        raise HTTPException(502, str(exc)) from exc
    _ok, _ran, labels, probabilities = reply
    return Prediction(labels=[int(v) for v in labels],
                      probabilities=np.asarray([float(v) for v in probabilities])
                      .reshape(len(rows), -1).round(6).tolist())
