"""Train one iris classifier per tenant with scikit-learn, convert it to ONNX-ML with skl2onnx,
and store it under the tenant's hash tag (`iris{tenant}`), so that on a Redis Cluster the model
and the tenant's tensors live on one shard.

    python examples/iris_tenants/train.py --redis redis://127.0.0.1:6379 acme globex initech

Each tenant's model is trained on its own bootstrap sample of the iris data (a stand-in for each
customer's own data), so the tenants' models differ. ZipMap is turned off: the model's outputs are
plain tensors (label INT64 [N], probabilities FLOAT [N, 3]) that AI.TENSORGET returns as they are.
"""

from __future__ import annotations

import argparse
import zlib
from dataclasses import dataclass

import numpy as np
import redis
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

FEATURES = 4


def model_key(tenant: str) -> str:
    """The tenant's model key: `iris{tenant}` (redisai_py.cluster.tenant_key's naming)."""
    if not tenant or "{" in tenant or "}" in tenant:
        raise ValueError(f"{tenant!r} is not a usable tenant name")
    return f"iris{{{tenant}}}"


@dataclass(frozen=True)
class TenantModel:
    tenant: str
    classifier: LogisticRegression
    onnx: bytes


def train(tenant: str) -> TenantModel:
    """A classifier fitted on the tenant's own (bootstrap) sample, and its ONNX-ML form."""
    features, labels = load_iris(return_X_y=True)
    rng = np.random.default_rng(zlib.crc32(tenant.encode()))
    sample = rng.integers(0, len(labels), len(labels))
    classifier = LogisticRegression(max_iter=500).fit(features[sample], labels[sample])
    onnx_model = convert_sklearn(
        classifier,
        initial_types=[("features", FloatTensorType([None, FEATURES]))],
        options={id(classifier): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    return TenantModel(tenant, classifier, onnx_model.SerializeToString())


def store(client: redis.Redis, model: TenantModel, warmup: int = 1) -> str:
    """AI.MODELSTORE of the tenant's model, warmed up once at every load."""
    key = model_key(model.tenant)
    client.execute_command("AI.MODELSTORE", key, "ONNX", "CPU", "TAG", model.tenant,
                           "WARMUP", warmup, "BLOB", model.onnx)
    return key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    parser.add_argument("tenants", nargs="+")
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis)
    for tenant in args.tenants:
        print(store(client, train(tenant)))


if __name__ == "__main__":
    main()
