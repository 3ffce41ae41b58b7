"""Fixtures for the serving runtime's tests: small models, servers running them, the OIP schemas.

Nothing here imports Django. Models are trained in the test process; the runtime loads them only in its
own subprocess, as it would inside the image.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import yaml

from tests.support.serving import ServerProcess, write_config

OIP_SPEC = Path(__file__).with_name("open_inference_rest.yaml")


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
    server.wait_ready()
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
