"""Runs under the official `redisai` 1.3.0 client (its own venv, redis<5):
a user's session against our server, printed as JSON for the test to check.

Usage: python redisai_py_client_story.py PORT MODEL_FILE
"""

from __future__ import annotations

import json
import sys

import numpy as np
import redisai


def main(port: int, model_path: str) -> dict[str, object]:
    con = redisai.Client(host="127.0.0.1", port=port)
    blob = open(model_path, "rb").read()
    seen: dict[str, object] = {}
    seen["modelstore"] = con.modelstore("m", "TORCH", "CPU", blob, tag="v1")
    con.tensorset("a", np.array([[1.0, 2.0]], dtype=np.float32))
    con.tensorset("b", np.array([[3.0, 4.0]], dtype=np.float32))
    con.tensorset("listed", [1, 2, 3], dtype="int32", shape=(3,))
    seen["modelexecute"] = con.modelexecute("m", inputs=["a", "b"], outputs=["sum", "product"])
    seen["sum"] = con.tensorget("sum").tolist()
    seen["product"] = con.tensorget("product").tolist()
    seen["listed"] = con.tensorget("listed", as_numpy=False)["values"]
    meta = con.modelget("m", meta_only=True)
    seen["modelget"] = {k: meta[k] for k in ("backend", "device", "tag", "inputs")}
    seen["blob_roundtrip"] = con.modelget("m")["blob"] == blob
    info = con.infoget("m")
    seen["info_calls"] = info["calls"]
    seen["inforeset"] = con.inforeset("m")
    seen["info_calls_after_reset"] = con.infoget("m")["calls"]
    seen["modelscan"] = con.modelscan()
    seen["modeldel"] = con.modeldel("m")
    seen["exists_after_del"] = con.exists("m")
    return seen


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), sys.argv[2]), default=str))
