"""The runtime's lifecycle: honest readiness, a model that cannot load, shutdown, start-up imports."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from tests.support.serving import REPO_ROOT, parse_json

SLOW_MODEL = """
import os, time


class Model:
    def load(self, model_dir):
        deadline = time.time() + 30
        while not os.path.exists(os.environ["GATE_FILE"]) and time.time() < deadline:
            time.sleep(0.02)

    def predict(self, inputs):
        return inputs["x"] + 1
"""


def test_ready_is_503_until_the_model_has_loaded(tmp_path, start_server, model_config):
    (tmp_path / "model.py").write_text(SLOW_MODEL, encoding="utf-8")
    model_config(tmp_path, name="slow", framework="python", artifact=".")
    gate = tmp_path / "gate"
    server = start_server(tmp_path, GATE_FILE=str(gate))
    server.wait_listening()
    request = {"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [41]}]}

    assert server.get("/v2/health/live").status_code == 200
    not_ready = server.get("/v2/health/ready")
    assert not_ready.status_code == 503
    assert not_ready.json() == {"error": "model not loaded yet", "state": "loading"}
    assert server.get("/v2/models/slow/ready").status_code == 503
    assert server.post("/v2/models/slow/infer", request).status_code == 503
    assert server.metrics()["slipway_model_ready"] == 0
    assert run_healthcheck(server) == 1

    gate.touch()
    server.wait_ready(timeout=10)
    assert run_healthcheck(server) == 0

    answer = server.post("/v2/models/slow/infer", request)
    assert answer.status_code == 200
    assert answer.json()["outputs"][0]["data"] == [42]
    assert answer.json()["outputs"][0]["name"] == "output0"
    assert server.metrics()["slipway_model_ready"] == 1


def run_healthcheck(server) -> int:
    """The image's HEALTHCHECK command, against this server's port."""
    env = {**os.environ, "PORT": str(server.port)}
    command = [sys.executable, "-m", "serving", "--healthcheck"]
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, timeout=30, check=False).returncode


BROKEN_ARTIFACTS = {
    "sklearn": ("model.joblib", b"this is not a pickle", "model.joblib"),
    "python": ("model.py", b"import definitely_not_a_module_slipway\n", "."),
    "onnx": ("model.onnx", b"\x00\x01garbage", "model.onnx"),
}


@pytest.mark.parametrize("framework", list(BROKEN_ARTIFACTS))
def test_a_model_that_cannot_load_says_why_then_the_server_exits_3(tmp_path, start_server, model_config, framework):
    filename, content, artifact = BROKEN_ARTIFACTS[framework]
    (tmp_path / filename).write_bytes(content)
    model_config(tmp_path, name="broken", framework=framework, artifact=artifact)
    server = start_server(tmp_path, SLIPWAY_LOAD_FAILURE_GRACE="2")

    failure = server.wait_for_event("model_load_failed")

    assert failure["level"] == "error"
    ready = server.get("/v2/health/ready")
    assert ready.status_code == 503
    assert ready.json() == {"error": failure["error"], "state": "failed"}
    assert ready.json()["error"].startswith("model failed to load: ")
    assert server.get("/v2/health/live").status_code == 200
    assert server.get("/v2/models/broken/ready").status_code == 503
    infer = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}
    assert server.post("/v2/models/broken/infer", infer).status_code == 503
    assert server.metrics()["slipway_model_ready"] == 0

    # Readiness told it for the grace period; then the process ends, its last line naming the error.
    assert server.process.wait(timeout=15) == 3
    time.sleep(0.1)
    last = parse_json(server.lines[-1])
    assert last["event"] == "exiting" and last["exit_code"] == 3
    assert last["error"] == failure["error"]
    assert not server.worker_pids()


DYING_MODEL = """
import os, signal


class Model:
    def load(self, model_dir):
        os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's OOM killer would

    def predict(self, inputs):
        return inputs
"""


def test_a_worker_killed_while_loading_three_times_is_a_load_failure(tmp_path, start_server, model_config):
    (tmp_path / "model.py").write_text(DYING_MODEL, encoding="utf-8")
    model_config(tmp_path, name="dying", framework="python", artifact=".")
    server = start_server(tmp_path, SLIPWAY_WORKERS="1", SLIPWAY_LOAD_FAILURE_GRACE="0")

    assert server.process.wait(timeout=30) == 3
    time.sleep(0.1)
    assert len(server.events("worker_exited")) == 3
    last = parse_json(server.lines[-1])
    assert last["event"] == "exiting"
    assert last["error"] == "model failed to load: its worker was killed by SIGKILL while loading it, 3 times"


def test_sigterm_shuts_down_cleanly(python_model_dir, start_server):
    server = start_server(python_model_dir)
    server.wait_ready()

    assert server.stop() == 0  # by itself: stop() kills (and gets -9) only after 10 s

    assert server.events("stopped")


def test_serving_imports_neither_a_framework_nor_django_until_the_model_loads():
    code = (
        "import sys\n"
        "import serving.__main__, serving.http, serving.protocol, serving.loaders, serving.codec, serving.metrics\n"
        "heavy = {'sklearn', 'joblib', 'onnxruntime', 'scipy', 'django'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True
    )

    assert result.stdout.strip() == "[]"


def test_missing_config_exits_with_an_error(tmp_path, start_server):
    server = start_server(tmp_path)

    assert server.process.wait(timeout=10) == 2
    time.sleep(0.1)
    (event,) = server.events("invalid_config")
    assert re.search(r"slipway\.json", event["error"])
