"""Open Inference Protocol v2 (REST) checks, run the same way against any server of the iris model.

Each check sends one request and asks what the official spec (tests/serving/open_inference_rest.yaml)
says of the answer: its status and, where the spec gives one, the schema of its body. Bad requests
must be answered 400 with an `inference_error_response` (a 500 counts as a failure); an unknown model
404 (the spec names no status; KServe and Triton answer 404).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import requests
import yaml

SPEC = Path(__file__).resolve().parents[2] / "tests" / "serving" / "open_inference_rest.yaml"
ROW = [5.1, 3.5, 1.4, 0.2]


def _schemas() -> Callable[[Any, str], None]:
    components = yaml.safe_load(SPEC.read_text(encoding="utf-8"))["components"]

    def validate(instance: Any, name: str) -> None:
        jsonschema.Draft7Validator({"$ref": f"#/components/schemas/{name}", "components": components}).validate(
            instance
        )

    return validate


def _tensor(**overrides: Any) -> dict[str, Any]:
    tensor = {"name": "features", "shape": [1, 4], "datatype": "FP64", "data": [ROW]}
    tensor.update(overrides)
    return tensor


def checks(model: str, version: str) -> list[tuple[str, str, str, Any, int, str | None]]:
    """(name, method, path, body, expected status, schema of the answer or None)."""
    infer = f"/v2/models/{model}/infer"
    versioned = f"/v2/models/{model}/versions/{version}"
    return [
        ("server live", "GET", "/v2/health/live", None, 200, None),
        ("server ready", "GET", "/v2/health/ready", None, 200, None),
        ("server metadata", "GET", "/v2", None, 200, "metadata_server_response"),
        ("model metadata", "GET", f"/v2/models/{model}", None, 200, "metadata_model_response"),
        ("model version metadata", "GET", versioned, None, 200, "metadata_model_response"),
        ("model ready", "GET", f"/v2/models/{model}/ready", None, 200, None),
        ("model version ready", "GET", f"{versioned}/ready", None, 200, None),
        ("infer, nested data", "POST", infer, {"inputs": [_tensor()]}, 200, "inference_response"),
        (
            "infer, flat data",
            "POST",
            infer,
            {"inputs": [_tensor(shape=[2, 4], data=ROW * 2)]},
            200,
            "inference_response",
        ),
        ("infer by version", "POST", f"{versioned}/infer", {"inputs": [_tensor()]}, 200, "inference_response"),
        ("infer echoes the id", "POST", infer, {"id": "req-1", "inputs": [_tensor()]}, 200, "inference_response"),
        (
            "infer, requested output",
            "POST",
            infer,
            {"inputs": [_tensor()], "outputs": [{"name": "predict"}]},
            200,
            "inference_response",
        ),
        ("unknown model metadata", "GET", "/v2/models/no-such-model", None, 404, "metadata_model_error_response"),
        ("infer on an unknown model", "POST", "/v2/models/no-such-model/infer", {"inputs": [_tensor()]}, 404, None),
        ("invalid JSON", "POST", infer, '{"inputs": [', 400, "inference_error_response"),
        ("no inputs", "POST", infer, {"outputs": []}, 400, "inference_error_response"),
        ("unknown datatype", "POST", infer, {"inputs": [_tensor(datatype="FP8")]}, 400, "inference_error_response"),
        (
            "data size not the shape's",
            "POST",
            infer,
            {"inputs": [_tensor(shape=[2, 4])]},
            400,
            "inference_error_response",
        ),
        (
            "strings for numbers",
            "POST",
            infer,
            {"inputs": [_tensor(data=[["a"] * 4])]},
            400,
            "inference_error_response",
        ),
        ("negative dimension", "POST", infer, {"inputs": [_tensor(shape=[-1, 4])]}, 400, "inference_error_response"),
        ("shape not a list", "POST", infer, {"inputs": [_tensor(shape="1,4")]}, 400, "inference_error_response"),
    ]


def run(base_url: str, model: str, version: str) -> list[tuple[str, bool, str]]:
    validate = _schemas()
    session = requests.Session()
    session.trust_env = False  # loopback only, never through a proxy
    results = []
    for name, method, path, body, status, schema in checks(model, version):
        data = body if isinstance(body, str) else (None if body is None else json.dumps(body))
        try:
            answer = session.request(
                method, base_url + path, data=data, headers={"Content-Type": "application/json"}, timeout=10
            )
        except requests.RequestException as exc:
            results.append((name, False, f"no answer: {type(exc).__name__}"))
            continue
        if answer.status_code != status:
            results.append((name, False, f"status {answer.status_code}, expected {status}"))
            continue
        if schema is not None:
            try:
                validate(answer.json(), schema)
            except (ValueError, jsonschema.ValidationError) as exc:
                results.append((name, False, f"body is not a {schema}: {str(exc).splitlines()[0][:80]}"))
                continue
        results.append((name, True, ""))
    session.close()
    return results
