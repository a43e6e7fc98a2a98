"""The examples a user copies still work: each runs here against a real server.

examples/iris_tenants: one scikit-learn classifier per tenant, converted to ONNX-ML
and stored as model:{tenant}; a FastAPI gateway (run by uvicorn, as a user would)
answers POST /tenants/{tenant}/predict through redis-py's asyncio client.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from sklearn.datasets import load_iris

from conftest import RedisServer, free_port

IRIS = Path(__file__).resolve().parents[1] / "examples" / "iris_tenants"
TENANTS = ("acme", "globex", "initech")


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"iris_{name}", IRIS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def post(port: int, path: str, body: object) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def gateway(server: RedisServer) -> Iterator[int]:
    """uvicorn serving examples/iris_tenants/gateway.py against `server`; stopped by its PID."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "gateway:app", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning"],
        cwd=IRIS, env={"REDIS_URL": f"redis://127.0.0.1:{server.port}", "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"the gateway did not start:\n{proc.communicate()[0].decode()}")
            time.sleep(0.1)
    yield port
    proc.terminate()
    proc.wait(timeout=10)


def test_each_tenant_gets_its_own_models_answers_over_http(server: RedisServer, gateway: int) -> None:
    train = load_example("train")
    r = server.client()
    classifiers = {tenant: train.tenant_classifier(tenant) for tenant in TENANTS}
    for tenant, classifier in classifiers.items():
        train.store_tenant_model(r, tenant, classifier)
    assert sorted(r.keys("model:*")) == sorted(f"model:{{{t}}}".encode() for t in TENANTS)

    rows = load_iris().data[::10].astype(np.float32)
    answers = {}
    for tenant, classifier in classifiers.items():
        status, answer = post(gateway, f"/tenants/{tenant}/predict", {"features": rows.tolist()})
        assert status == 200
        assert answer["labels"] == classifier.predict(rows).tolist()
        np.testing.assert_allclose(answer["probabilities"], classifier.predict_proba(rows), atol=1e-5)
        answers[tenant] = answer["probabilities"]
    assert answers["acme"] != answers["globex"]  # each tenant's own model answered

    # The DAG left nothing behind; each model counted its run.
    assert sorted(r.keys("*")) == sorted(f"model:{{{t}}}".encode() for t in TENANTS)
    for tenant in TENANTS:
        info = r.execute_command("AI.INFO", f"model:{{{tenant}}}")
        stats = dict(zip(info[::2], info[1::2]))
        assert stats[b"calls"] == 1 and stats[b"errors"] == 0 and stats[b"tag"] == f"iris:{tenant}".encode()


def test_the_gateway_says_what_is_wrong(server: RedisServer, gateway: int) -> None:
    train = load_example("train")
    train.store_tenant_model(server.client(), "acme", train.tenant_classifier("acme"))

    status, answer = post(gateway, "/tenants/nobody/predict", {"features": [[5.1, 3.5, 1.4, 0.2]]})
    assert (status, answer) == (404, {"detail": "no model for tenant 'nobody'"})
    status, answer = post(gateway, "/tenants/acme/predict", {"features": [[5.1, 3.5, 1.4]]})
    assert (status, answer) == (422, {"detail": "each row needs 4 features"})
    status, _ = post(gateway, "/tenants/acme/predict", {"features": []})
    assert status == 422
    assert post(gateway, "/tenants/acme/predict", {"features": [[5.1, 3.5, 1.4, 0.2]]})[0] == 200
