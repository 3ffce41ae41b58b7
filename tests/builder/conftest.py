"""Fixtures for the builder tests: a runtime server run as a subprocess, small models, the OIP schemas.

Nothing here imports Django. Models are trained in the test process; the runtime loads them only in its
own subprocess, as it would inside the image.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import requests
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

RUNTIME = REPO_ROOT / "deployments" / "builder" / "runtime" / "slipway_serve.py"
OIP_SPEC = Path(__file__).with_name("open_inference_rest.yaml")


class ServerProcess:
    """slipway_serve.py in a subprocess on 127.0.0.1 with a port the OS picked (PORT=0)."""

    def __init__(self, model_dir: Path, runtime: Path = RUNTIME, **env: str) -> None:
        self.started_at = time.monotonic()
        self.lines: list[str] = []
        self._listening = threading.Event()
        self.port = 0
        environment = {**os.environ, "SLIPWAY_MODEL_DIR": str(model_dir), "PORT": "0", "SLIPWAY_HOST": "127.0.0.1"}
        environment.update(env)
        self.process = subprocess.Popen(
            [sys.executable, str(runtime)],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        threading.Thread(target=self._read_output, daemon=True).start()
        self.http = requests.Session()
        self.http.trust_env = False  # never send loopback traffic through a proxy

    def _read_output(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            event = _parse_json(line)
            if event and event.get("event") == "listening":
                self.port = int(event["port"])
                self._listening.set()
        self._listening.set()

    def wait_listening(self, timeout: float = 10.0) -> None:
        if not self._listening.wait(timeout) or not self.port:
            raise AssertionError(f"runtime did not start listening; output:\n{self.output()}")

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        parsed = [_parse_json(line) for line in list(self.lines)]
        return [e for e in parsed if e is not None and (name is None or e.get("event") == name)]

    def wait_for_event(self, name: str, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(name)
            if found:
                return found[0]
            time.sleep(0.02)
        raise AssertionError(f"no {name!r} event within {timeout} s; output:\n{self.output()}")

    def wait_ready(self, timeout: float = 15.0) -> float:
        """Seconds from process start until /v2/health/ready answered 200."""
        self.wait_listening()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.get("/v2/health/ready").status_code == 200:
                return time.monotonic() - self.started_at
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"runtime not ready within {timeout} s; output:\n{self.output()}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> requests.Response:
        return self.http.get(self.url(path), timeout=10)

    def post(self, path: str, payload: Any = None, *, data: bytes | str | None = None) -> requests.Response:
        if data is None:
            data = json.dumps(payload)
        return self.http.post(self.url(path), data=data, headers={"Content-Type": "application/json"}, timeout=30)

    def output(self) -> str:
        return "\n".join(self.lines[-60:])

    def stop(self, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.http.close()
        return self.process.returncode


def _parse_json(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def write_config(
    model_dir: Path, *, name: str, framework: str, artifact: str, signature: dict | None = None, version: str = "1"
) -> None:
    config = {
        "name": name,
        "version": version,
        "framework": framework,
        "artifact": artifact,
        "signature": signature or {"inputs": [], "outputs": []},
    }
    (model_dir / "slipway.json").write_text(json.dumps(config), encoding="utf-8")


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerProcess]]:
    servers: list[ServerProcess] = []

    def start(model_dir: Path, runtime: Path = RUNTIME, **env: str) -> ServerProcess:
        server = ServerProcess(model_dir, runtime, **env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    features, labels = load_iris(return_X_y=True)
    return features, labels


@pytest.fixture(scope="session")
def iris_classifier(iris):
    from sklearn.linear_model import LogisticRegression

    features, labels = iris
    return LogisticRegression(max_iter=500).fit(features, labels)


IRIS_SIGNATURE = {
    "inputs": [{"name": "features", "datatype": "FP64", "shape": [-1, 4]}],
    "outputs": [{"name": "species", "datatype": "INT64", "shape": [-1]}],
}


@pytest.fixture(scope="session")
def sklearn_model_dir(tmp_path_factory, iris_classifier) -> Path:
    import joblib

    model_dir = tmp_path_factory.mktemp("sklearn-model")
    joblib.dump(iris_classifier, model_dir / "iris.joblib")
    write_config(
        model_dir, name="iris", framework="sklearn", artifact="iris.joblib", signature=IRIS_SIGNATURE, version="3"
    )
    return model_dir


@pytest.fixture(scope="session")
def onnx_model_dir(tmp_path_factory, iris_classifier) -> Path:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    model_dir = tmp_path_factory.mktemp("onnx-model")
    graph = to_onnx(iris_classifier, initial_types=[("input", FloatTensorType([None, 4]))], target_opset=17)
    (model_dir / "iris.onnx").write_bytes(graph.SerializeToString())
    # No signature: the runtime must take names and types from the graph itself.
    write_config(model_dir, name="iris-onnx", framework="onnx", artifact="iris.onnx")
    return model_dir


@pytest.fixture(scope="session")
def oip_validate() -> Callable[[Any, str], None]:
    """Validates a JSON value against one component schema of the official OIP REST spec."""
    spec = yaml.safe_load(OIP_SPEC.read_text(encoding="utf-8"))
    components = spec["components"]

    def validate(instance: Any, schema_name: str) -> None:
        assert schema_name in components["schemas"], schema_name
        schema = {"$ref": f"#/components/schemas/{schema_name}", "components": components}
        jsonschema.Draft7Validator(schema).validate(instance)

    return validate


@pytest.fixture(scope="session")
def model_config() -> Callable[..., None]:
    """Writes a runtime slipway.json: model_config(model_dir, name=..., framework=..., artifact=...)."""
    return write_config


@pytest.fixture(scope="module")
def sklearn_server(sklearn_model_dir):
    server = ServerProcess(sklearn_model_dir)
    server.ready_after = server.wait_ready()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def onnx_server(onnx_model_dir):
    server = ServerProcess(onnx_model_dir)
    server.wait_ready()
    yield server
    server.stop()


ECHO_MODEL = """
import numpy as np


class Model:
    def load(self, model_dir):
        with open(model_dir + "/factor.txt") as handle:
            self.factor = float(handle.read())

    def predict(self, inputs):
        if "boom" in inputs:
            raise RuntimeError("the model exploded")
        if set(inputs) == {"x"}:
            x = inputs["x"]
            return {"scaled": x * self.factor, "row_sum": x.sum(axis=1)}
        return dict(inputs)
"""


@pytest.fixture(scope="module")
def python_model_dir(tmp_path_factory) -> Path:
    model_dir = tmp_path_factory.mktemp("python-model")
    (model_dir / "model.py").write_text(ECHO_MODEL, encoding="utf-8")
    (model_dir / "factor.txt").write_text("2.5", encoding="utf-8")
    write_config(model_dir, name="echo", framework="python", artifact=".")
    return model_dir


@pytest.fixture(scope="module")
def python_server(python_model_dir):
    server = ServerProcess(python_model_dir, SLIPWAY_MAX_BODY_BYTES="4096")
    server.wait_ready()
    yield server
    server.stop()
