"""The iris-tenants example (examples/iris_tenants/) runs as its README says.

A SaaS team trains one scikit-learn classifier per customer, stores each as ONNX-ML under the
customer's hash tag, and serves them through a FastAPI gateway that calls AI.MODELEXECUTE with
redis-py's asyncio client. The server keeps two sessions loaded for three tenants, so requests
take turns loading their tenant's model again; every answer must still be what scikit-learn
itself predicts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ServerFactory

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "iris_tenants"
sys.path.insert(0, str(EXAMPLE))
import gateway  # noqa: E402
import train  # noqa: E402

TENANTS = ["acme", "globex", "initech"]
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3], [5.9, 3.0, 5.1, 1.8]]


def test_each_tenant_gets_its_own_models_answers_through_the_gateway(server_factory: ServerFactory) -> None:
    server = server_factory(module_args=["MODEL_SESSIONS_MAX", "2"])
    r = server.client()
    models = {t: train.train(t) for t in TENANTS}
    assert [train.store(r, m) for m in models.values()] == ["iris{acme}", "iris{globex}", "iris{initech}"]
    # The tenants' models differ (each saw its own sample).
    assert len({m.onnx for m in models.values()}) == 3

    with TestClient(gateway.create_app(f"redis://127.0.0.1:{server.port}")) as http:
        for _ in range(2):
            for tenant, model in models.items():
                reply = http.post(f"/tenants/{tenant}/predict", json={"features": ROWS})
                assert reply.status_code == 200, reply.text
                body = reply.json()
                features = np.asarray(ROWS, dtype=np.float32)
                assert body["labels"] == model.classifier.predict(features).tolist()
                np.testing.assert_allclose(body["probabilities"], model.classifier.predict_proba(features),
                                           atol=1e-5)
        assert http.post("/tenants/nobody/predict", json={"features": ROWS}).status_code == 404
        assert http.post("/tenants/acme/predict", json={"features": [[1.0, 2.0]]}).status_code == 422
        assert http.post("/tenants/acme/predict", json={"features": []}).status_code == 422
        assert http.post("/tenants/a{b/predict", json={"features": ROWS}).status_code == 400

    sessions = r.info("ai_sessions")
    assert sessions["ai_loaded"] <= 2 and sessions["ai_cold_loads"] >= 3
    # The gateway leaves no request tensors behind: only the three models remain.
    assert sorted(r.keys("*")) == [b"iris{acme}", b"iris{globex}", b"iris{initech}"]
