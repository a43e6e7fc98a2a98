"""The official RedisAI Python client (redisai 1.3.0) works against our
server unchanged. It needs redis<5, so it runs from its own venv
(`.venv-client`, made by `make install`) in a subprocess."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pytest

CLIENT_PYTHON = Path(__file__).resolve().parent.parent / ".venv-client" / "bin" / "python"
STORY = Path(__file__).resolve().parent / "clients" / "redisai_py_client_story.py"


def add_and_multiply_model() -> bytes:
    import torch

    class AddMul(torch.nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor):
            return a + b, a * b

    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(AddMul()), buf)
    return buf.getvalue()


@pytest.mark.skipif(not CLIENT_PYTHON.exists(), reason=".venv-client missing: run make install")
def test_official_client_session(server, tmp_path):
    model = tmp_path / "addmul.pt"
    model.write_bytes(add_and_multiply_model())
    out = subprocess.run([str(CLIENT_PYTHON), str(STORY), str(server.port), str(model)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["modelstore"] == "OK"
    assert seen["modelexecute"] == "OK"
    assert seen["sum"] == [[4.0, 6.0]]
    assert seen["product"] == [[3.0, 8.0]]
    assert seen["listed"] == [1, 2, 3]
    assert seen["modelget"] == {"backend": "TORCH", "device": "CPU", "tag": "v1",
                                "inputs": ["a", "b"]}
    assert seen["blob_roundtrip"] is True
    assert seen["info_calls"] == 1
    assert seen["inforeset"] == "OK"
    assert seen["info_calls_after_reset"] == 0
    assert seen["modelscan"] == [["m", "v1"]]
    assert seen["modeldel"] == "OK"
    assert seen["exists_after_del"] == 0
