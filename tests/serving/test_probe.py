"""`python -m serving.probe`, the smoke test a build runs inside its image, against servers of every kind."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from serving.config import ModelConfig, TensorSpec
from serving.probe import request_from_signature
from tests.support.serving import REPO_ROOT, ServerProcess


def run_probe(server: ServerProcess, model_dir, timeout: float = 30) -> tuple[int, dict, list[dict]]:
    env = {**os.environ, "PORT": str(server.port), "SLIPWAY_MODEL_DIR": str(model_dir)}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [sys.executable, "-m", "serving.probe", "--timeout", str(timeout)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout + 30,
        check=False,
    )
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events and events[-1]["event"] == "result", done.stdout + done.stderr
    return done.returncode, events[-1], events[:-1]


def test_a_model_with_a_signature_is_asked_once(sklearn_server, sklearn_model_dir):
    code, result, _ = run_probe(sklearn_server, sklearn_model_dir)

    assert code == 0
    assert result["ok"] is True and result["stage"] == "infer"
    assert result["outputs"] == ["species"]
    infer_logged = [e for e in sklearn_server.events("request") if e["path"] == "/v2/models/iris/infer"]
    assert infer_logged and infer_logged[-1]["status"] == 200


def test_without_a_signature_readiness_is_enough(tmp_path, start_server, model_config, sklearn_model_dir):
    (tmp_path / "model.joblib").write_bytes((sklearn_model_dir / "iris.joblib").read_bytes())
    model_config(tmp_path, name="bare", framework="sklearn", artifact="model.joblib")
    server = start_server(tmp_path)
    server.wait_listening()

    code, result, _ = run_probe(server, tmp_path)

    assert code == 0
    assert result == {
        "event": "result",
        "ok": True,
        "stage": "ready",
        "note": result["note"],
        "seconds": result["seconds"],
    }
    assert "readiness only" in result["note"]


def test_a_model_that_cannot_load_is_reported_with_the_runtime_error(tmp_path, start_server, model_config):
    (tmp_path / "model.joblib").write_bytes(b"this is a text file, not a pickle\n")
    model_config(tmp_path, name="text", framework="sklearn", artifact="model.joblib")
    server = start_server(tmp_path)
    server.wait_listening()

    code, result, _ = run_probe(server, tmp_path)

    assert code == 1
    assert result["stage"] == "load"
    assert result["error"].startswith("model failed to load: ")
    assert result["error"] == server.wait_for_event("model_load_failed")["error"]


FAILS_ON_ZEROS = """
class Model:
    def predict(self, inputs):
        if not inputs["x"].any():
            raise ZeroDivisionError("all-zero input")
        return inputs
"""


def test_a_model_that_fails_on_a_request_from_its_signature_is_reported(tmp_path, start_server, model_config):
    (tmp_path / "model.py").write_text(FAILS_ON_ZEROS, encoding="utf-8")
    signature = {"inputs": [{"name": "x", "datatype": "INT32", "shape": [-1, 3]}], "outputs": []}
    model_config(tmp_path, name="picky", framework="python", artifact=".", signature=signature)
    server = start_server(tmp_path)
    server.wait_listening()

    code, result, _ = run_probe(server, tmp_path)

    assert code == 1
    assert result["stage"] == "infer"
    assert result["error"] == "500: prediction failed: ZeroDivisionError: all-zero input"
    assert result["request"]["inputs"] == [{"name": "x", "datatype": "INT32", "shape": [1, 3], "data": [0, 0, 0]}]


def test_a_server_never_ready_times_out_and_reports_while_it_waits(tmp_path, start_server, model_config):
    (tmp_path / "model.py").write_text(
        "import time\nclass Model:\n    def load(self, d):\n        time.sleep(30)\n", encoding="utf-8"
    )
    model_config(tmp_path, name="slow", framework="python", artifact=".")
    server = start_server(tmp_path)
    server.wait_listening()

    code, result, waiting = run_probe(server, tmp_path, timeout=1.5)

    assert code == 1
    assert result["stage"] == "ready"
    assert result["error"] == "not ready after 1.5 s: model not loaded yet"
    assert waiting and all(e["event"] == "waiting" for e in waiting)


def test_requests_from_signatures_are_zeros_of_each_datatype():
    config = ModelConfig(
        name="m",
        version="1",
        framework="python",
        artifact=".",
        inputs=(
            TensorSpec("flags", "BOOL", (-1,)),
            TensorSpec("text", "BYTES", (2,)),
            TensorSpec("pixels", "UINT8", (-1, 2, 2)),
            TensorSpec("scalar", "FP16", ()),
        ),
        outputs=(),
    )

    request = request_from_signature(config)

    assert request is not None
    assert request["inputs"] == [
        {"name": "flags", "datatype": "BOOL", "shape": [1], "data": [False]},
        {"name": "text", "datatype": "BYTES", "shape": [2], "data": ["", ""]},
        {"name": "pixels", "datatype": "UINT8", "shape": [1, 2, 2], "data": [0, 0, 0, 0]},
        {"name": "scalar", "datatype": "FP16", "shape": [], "data": [0.0]},
    ]
    untyped = ModelConfig("m", "1", "python", ".", (TensorSpec("x", "", (-1,)),), ())
    assert request_from_signature(untyped) is None
