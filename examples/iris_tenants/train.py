"""Train one iris classifier per tenant, convert each to ONNX-ML, store it as model:{tenant}.

Each tenant has its own data (here: the iris set with a tenant-specific shuffle and
share of the rows, standing in for a customer's own history), so each gets its own
model. scikit-learn's LogisticRegression converts to ONNX-ML with skl2onnx (the
`ai.onnx.ml` operators run in onnxruntime, our ONNX backend); `zipmap=False` makes
the probabilities a plain float tensor instead of a list of maps.

The key `model:{tenant}` carries the tenant in a hash tag, so on a Redis Cluster a
tenant's model and its tensors live on one shard.

    python train.py --redis redis://127.0.0.1:6379 acme globex initech
"""

from __future__ import annotations

import argparse

import numpy as np
import redis
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

FEATURES = 4


def model_key(tenant: str) -> str:
    return f"model:{{{tenant}}}"


def tenant_classifier(tenant: str) -> LogisticRegression:
    """A classifier fit on this tenant's share of the iris rows."""
    iris = load_iris()
    rng = np.random.default_rng(sum(tenant.encode()))
    rows = rng.permutation(len(iris.target))[: 60 + rng.integers(0, 80)]
    return LogisticRegression(max_iter=500).fit(iris.data[rows].astype(np.float32), iris.target[rows])


def onnx_blob(classifier: LogisticRegression) -> bytes:
    sample = np.zeros((1, FEATURES), dtype=np.float32)
    onnx_model = to_onnx(classifier, sample, options={id(classifier): {"zipmap": False}},
                         target_opset={"": 17, "ai.onnx.ml": 3})
    return onnx_model.SerializeToString()


def store_tenant_model(client: redis.Redis, tenant: str, classifier: LogisticRegression) -> None:
    client.execute_command("AI.MODELSTORE", model_key(tenant), "ONNX", "CPU",
                           "TAG", f"iris:{tenant}", "BLOB", onnx_blob(classifier))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    parser.add_argument("tenants", nargs="+")
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis)
    for tenant in args.tenants:
        store_tenant_model(client, tenant, tenant_classifier(tenant))
        print(f"stored {model_key(tenant)}")


if __name__ == "__main__":
    main()
