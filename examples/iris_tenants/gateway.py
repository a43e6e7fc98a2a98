"""A small HTTP gateway in front of the tenants' iris models (FastAPI + redis-py's asyncio client).

    REDIS_URL=redis://127.0.0.1:6379 uvicorn gateway:app --app-dir examples/iris_tenants

POST /tenants/{tenant}/predict with {"features": [[5.1, 3.5, 1.4, 0.2], ...]} answers
{"labels": [0, ...], "probabilities": [[0.97, 0.03, 0.0], ...]}. One request is one pipeline:
AI.TENSORSET of the features, AI.MODELEXECUTE of the tenant's model, AI.TENSORGET of both outputs,
DEL of the request's tensors; all its keys carry the tenant's hash tag, so on a cluster they are
on the model's shard. A tenant whose model is evicted (a session budget on the server) is loaded
again by its request; the request just takes longer.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import numpy as np
import redis.asyncio as aioredis
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from train import FEATURES, model_key


class PredictRequest(BaseModel):
    features: list[list[float]] = Field(min_length=1, max_length=1024)


class Prediction(BaseModel):
    labels: list[int]
    probabilities: list[list[float]]


def create_app(redis_url: str | None = None) -> FastAPI:
    url = redis_url or os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.redis = aioredis.Redis.from_url(url)
        try:
            yield
        finally:
            await app.state.redis.aclose()

    app = FastAPI(title="iris tenants", lifespan=lifespan)

    @app.post("/tenants/{tenant}/predict", response_model=Prediction)
    async def predict(tenant: str, request: PredictRequest) -> Prediction:
        try:
            model = model_key(tenant)
        except ValueError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        rows = np.asarray(request.features, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != FEATURES:
            raise HTTPException(status_code=422, detail=f"each row needs {FEATURES} features")
        request_id = uuid.uuid4().hex
        x, label, proba = (f"{name}:{request_id}{{{tenant}}}" for name in ("x", "label", "proba"))
        pipe = app.state.redis.pipeline(transaction=False)
        pipe.execute_command("AI.TENSORSET", x, "FLOAT", *rows.shape, "BLOB", rows.tobytes())
        pipe.execute_command("AI.MODELEXECUTE", model, "INPUTS", 1, x, "OUTPUTS", 2, label, proba)
        pipe.execute_command("AI.TENSORGET", label, "VALUES")
        pipe.execute_command("AI.TENSORGET", proba, "BLOB")
        pipe.delete(x, label, proba)
        replies = await pipe.execute(raise_on_error=False)
        failure = next((r for r in replies[:4] if isinstance(r, Exception)), None)
        if failure is not None:
            if "model key is empty" in str(failure):
                raise HTTPException(status_code=404, detail=f"no model for tenant {tenant}")
            raise HTTPException(status_code=502, detail=str(failure))
        probabilities = np.frombuffer(replies[3], dtype=np.float32).reshape(len(rows), -1)
        return Prediction(labels=[int(v) for v in replies[2]], probabilities=probabilities.tolist())

    return app


app = create_app()
