"""The serving runtime, run as a subprocess exactly as the image runs it, checked against the OIP spec."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

INFER = "/v2/models/iris/versions/3/infer"
RUNTIME = Path(__file__).resolve().parents[2] / "deployments" / "builder" / "runtime" / "slipway_serve.py"


def iris_request(features: np.ndarray, *, nested: bool = True, **extra) -> dict:
    data = features.tolist() if nested else features.ravel().tolist()
    tensor = {"name": "features", "shape": list(features.shape), "datatype": "FP64", "data": data}
    return {"inputs": [tensor], **extra}


def read_metrics(server) -> dict[str, float]:
    answer = server.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for line in answer.text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    return samples


# --- scikit-learn ---------------------------------------------------------------------------------


def test_small_sklearn_model_is_ready_within_two_seconds(sklearn_server, sklearn_model_dir, start_server):
    startup = sklearn_server.ready_after
    if startup >= 2.0:
        # One more try on a busy machine: a real regression is slow both times.
        startup = min(startup, start_server(sklearn_model_dir).wait_ready())
    assert startup < 2.0


def test_sklearn_answers_equal_model_predict(sklearn_server, iris, iris_classifier, oip_validate):
    features = iris[0][::5]
    request = iris_request(features, id="req-42")
    oip_validate(request, "inference_request")

    answer = sklearn_server.post(INFER, request)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    oip_validate(body, "inference_response")
    assert body["model_name"] == "iris"
    assert body["model_version"] == "3"
    assert body["id"] == "req-42"
    (output,) = body["outputs"]
    assert output["name"] == "species"  # the signature's first output names predict()
    assert output["datatype"] == "INT64"
    assert output["shape"] == [len(features)]
    assert output["data"] == iris_classifier.predict(features).tolist()


def test_sklearn_flat_data_and_requested_predict_proba(sklearn_server, iris, iris_classifier, oip_validate):
    features = iris[0][:7]
    request = iris_request(features, nested=False, outputs=[{"name": "predict_proba"}])

    answer = sklearn_server.post("/v2/models/iris/infer", request)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    oip_validate(body, "inference_response")
    assert [o["name"] for o in body["outputs"]] == ["predict_proba"]
    proba = body["outputs"][0]
    assert proba["shape"] == [7, 3]
    expected = iris_classifier.predict_proba(features)
    np.testing.assert_allclose(np.array(proba["data"]).reshape(7, 3), expected, rtol=1e-12)


def test_server_and_model_metadata_follow_the_spec(sklearn_server, oip_validate):
    server_meta = sklearn_server.get("/v2")
    assert server_meta.status_code == 200
    oip_validate(server_meta.json(), "metadata_server_response")
    assert server_meta.json()["name"] == "slipway"
    assert sklearn_server.get("/v2/").json() == server_meta.json()

    for path in ("/v2/models/iris", "/v2/models/iris/versions/3"):
        meta = sklearn_server.get(path)
        assert meta.status_code == 200
        oip_validate(meta.json(), "metadata_model_response")
        assert meta.json()["versions"] == ["3"]
        assert meta.json()["platform"] == "sklearn"
        assert meta.json()["inputs"] == [{"name": "features", "datatype": "FP64", "shape": [-1, 4]}]

    assert sklearn_server.get("/v2/health/live").status_code == 200
    assert sklearn_server.get("/v2/models/iris/ready").status_code == 200
    assert sklearn_server.get("/v2/models/iris/versions/3/ready").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/models/other"),
        ("GET", "/v2/models/iris/versions/4"),
        ("GET", "/v2/models/iris/versions/4/ready"),
        ("POST", "/v2/models/other/infer"),
        ("POST", "/v2/models/iris/versions/4/infer"),
    ],
)
def test_unknown_model_or_version_is_404(sklearn_server, iris, oip_validate, method, path):
    request = iris_request(iris[0][:1])
    answer = sklearn_server.get(path) if method == "GET" else sklearn_server.post(path, request)
    assert answer.status_code == 404
    oip_validate(answer.json(), "metadata_model_error_response")


def _tensor(**overrides) -> dict:
    tensor = {"name": "features", "shape": [2, 4], "datatype": "FP64", "data": [1.0] * 8}
    tensor.update(overrides)
    return tensor


BAD_REQUESTS = {
    "invalid JSON": ('{"inputs": [', "not valid JSON"),
    "not an object": ("[1, 2]", "JSON object"),
    "missing inputs": ({"outputs": []}, "'inputs'"),
    "unknown input": ({"inputs": [_tensor(name="petals")]}, "unknown input 'petals'"),
    "wrong datatype": ({"inputs": [_tensor(datatype="FP32")]}, "datatype FP32, the model expects FP64"),
    "unsupported datatype": ({"inputs": [_tensor(datatype="FP8")]}, "unsupported datatype 'FP8'"),
    "data length vs shape": ({"inputs": [_tensor(data=[1.0] * 7)]}, "holds 7 elements but shape [2, 4] needs 8"),
    "shape vs signature": ({"inputs": [_tensor(shape=[2, 3], data=[1.0] * 6)]}, "expects [-1, 4]"),
    "strings for numbers": ({"inputs": [_tensor(data=["a"] * 8)]}, "needs numbers"),
    "ragged nested data": ({"inputs": [_tensor(data=[[1.0] * 4, [1.0] * 3, [1.0]])]}, "not rectangular"),
    "negative shape": ({"inputs": [_tensor(shape=[-2, 4])]}, "non-negative integers"),
    "duplicate input": ({"inputs": [_tensor(), _tensor()]}, "more than once"),
    "non-string id": ({"id": 7, "inputs": [_tensor()]}, "'id' must be a string"),
    "unknown output": ({"inputs": [_tensor()], "outputs": [{"name": "nope"}]}, "unknown output"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_are_400_naming_the_problem(sklearn_server, oip_validate, case):
    payload, fragment = BAD_REQUESTS[case]
    data = payload if isinstance(payload, str) else json.dumps(payload)

    answer = sklearn_server.post(INFER, data=data)

    assert answer.status_code == 400, answer.text
    oip_validate(answer.json(), "inference_error_response")
    assert fragment in answer.json()["error"]


def test_sklearn_without_signature_names_output_predict_and_checks_features(
    tmp_path, start_server, model_config, sklearn_model_dir, iris, iris_classifier
):
    (tmp_path / "model.joblib").write_bytes((sklearn_model_dir / "iris.joblib").read_bytes())
    model_config(tmp_path, name="bare", framework="sklearn", artifact="model.joblib")
    server = start_server(tmp_path)
    server.wait_ready()

    def infer(shape: list[int], data: list) -> dict:
        tensor = {"name": "anything", "shape": shape, "datatype": "FP64", "data": data}
        return server.post("/v2/models/bare/infer", {"inputs": [tensor]})

    good = infer([1, 4], iris[0][:1].tolist())
    assert good.status_code == 200
    assert good.json()["outputs"][0]["name"] == "predict"
    assert good.json()["outputs"][0]["data"] == iris_classifier.predict(iris[0][:1]).tolist()
    one_d = infer([4], [5.1, 3.5, 1.4, 0.2])
    assert one_d.status_code == 400
    assert "2-D" in one_d.json()["error"]
    three_features = infer([1, 3], [1.0, 2.0, 3.0])
    assert three_features.status_code == 400
    assert "the model expects 4" in three_features.json()["error"]


def test_wrong_method_is_405_not_500(sklearn_server):
    assert sklearn_server.get(INFER).status_code == 405
    assert sklearn_server.http.put(sklearn_server.url("/v2/health/live"), timeout=5).status_code == 405


def test_metrics_count_requests_and_durations(sklearn_server, iris):
    before = read_metrics(sklearn_server)

    assert sklearn_server.post(INFER, iris_request(iris[0][:2])).status_code == 200
    assert sklearn_server.post(INFER, data="{").status_code == 400
    after = read_metrics(sklearn_server)

    ok, bad = (
        'slipway_requests_total{endpoint="infer",code="200"}',
        'slipway_requests_total{endpoint="infer",code="400"}',
    )
    assert after[ok] == before.get(ok, 0) + 1
    assert after[bad] == before.get(bad, 0) + 1
    assert after["slipway_request_errors_total"] == before["slipway_request_errors_total"] + 1
    count = 'slipway_request_duration_seconds_count{endpoint="infer"}'
    assert after[count] == before.get(count, 0) + 2
    assert after['slipway_request_duration_seconds_bucket{endpoint="infer",le="+Inf"}'] == after[count]
    buckets = [v for k, v in after.items() if k.startswith('slipway_request_duration_seconds_bucket{endpoint="infer"')]
    assert buckets == sorted(buckets)  # cumulative
    assert after['slipway_request_duration_seconds_sum{endpoint="infer"}'] > 0
    assert after["slipway_model_ready"] == 1


def test_access_log_is_json_lines(sklearn_server):
    sklearn_server.get("/v2/health/live?probe=1")
    time.sleep(0.1)
    requests_logged = sklearn_server.events("request")
    assert any(e["path"] == "/v2/health/live?probe=1" and e["status"] == 200 for e in requests_logged)
    assert all(json.loads(line) for line in sklearn_server.lines)  # every stdout line is JSON
    assert sklearn_server.events("model_loaded")


# --- ONNX -----------------------------------------------------------------------------------------


def test_onnx_answers_equal_model_predict_and_skip_zipmap(onnx_server, iris, iris_classifier, oip_validate):
    features = iris[0][::3].astype(np.float32)
    request = {
        "inputs": [
            {"name": "input", "shape": list(features.shape), "datatype": "FP32", "data": features.ravel().tolist()}
        ]
    }

    answer = onnx_server.post("/v2/models/iris-onnx/infer", request)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    oip_validate(body, "inference_response")
    # output_probability is a ZipMap sequence, not a tensor: left out unless asked for.
    assert [o["name"] for o in body["outputs"]] == ["output_label"]
    assert body["outputs"][0]["data"] == iris_classifier.predict(features).tolist()


def test_onnx_casts_inputs_and_returns_requested_non_tensor_output(onnx_server, iris, iris_classifier):
    features = iris[0][:4]  # float64, the graph wants float32
    request = {
        "inputs": [{"name": "input", "shape": [4, 4], "datatype": "FP64", "data": features.tolist()}],
        "outputs": [{"name": "output_probability"}, {"name": "output_label"}],
    }

    answer = onnx_server.post("/v2/models/iris-onnx/infer", request)

    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    assert list(outputs) == ["output_probability", "output_label"]
    assert outputs["output_label"]["data"] == iris_classifier.predict(features).tolist()
    probabilities = np.array(outputs["output_probability"]["data"]).reshape(outputs["output_probability"]["shape"])
    np.testing.assert_allclose(probabilities, iris_classifier.predict_proba(features), atol=1e-5)


def test_onnx_metadata_comes_from_the_graph_and_bad_inputs_are_400(onnx_server, oip_validate):
    meta = onnx_server.get("/v2/models/iris-onnx").json()
    oip_validate(meta, "metadata_model_response")
    assert meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]

    wrong_name = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    wrong_shape = {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
    for request, fragment in ((wrong_name, "unknown input"), (wrong_shape, "expects [-1, 4]")):
        answer = onnx_server.post("/v2/models/iris-onnx/infer", request)
        assert answer.status_code == 400
        assert fragment in answer.json()["error"]


# --- python framework -----------------------------------------------------------------------------


def test_python_model_is_loaded_and_answers(python_server, oip_validate):
    x = np.arange(6, dtype=np.float64).reshape(2, 3)
    request = {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP64", "data": x.tolist()}]}

    answer = python_server.post("/v2/models/echo/infer", request)

    assert answer.status_code == 200, answer.text
    oip_validate(answer.json(), "inference_response")
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    assert outputs["scaled"]["data"] == (x * 2.5).ravel().tolist()  # factor.txt read by load(model_dir)
    assert outputs["row_sum"] == {"name": "row_sum", "shape": [2], "datatype": "FP64", "data": [3.0, 12.0]}


def test_all_datatypes_round_trip(python_server, oip_validate):
    tensors = [
        {"name": "flags", "shape": [3], "datatype": "BOOL", "data": [True, False, True]},
        {"name": "small", "shape": [2], "datatype": "UINT8", "data": [0, 255]},
        {"name": "big", "shape": [1], "datatype": "UINT64", "data": [2**64 - 1]},
        {"name": "signed", "shape": [2, 1], "datatype": "INT16", "data": [[-32768], [32767]]},
        {"name": "half", "shape": [2], "datatype": "FP16", "data": [0.5, -2]},
        {"name": "single", "shape": [1], "datatype": "FP32", "data": [1.25]},
        {"name": "words", "shape": [2], "datatype": "BYTES", "data": ["hello", "wörld"]},
        {"name": "empty", "shape": [0, 3], "datatype": "INT32", "data": []},
    ]

    answer = python_server.post("/v2/models/echo/infer", {"inputs": tensors})

    assert answer.status_code == 200, answer.text
    oip_validate(answer.json(), "inference_response")
    assert {o["name"]: o for o in answer.json()["outputs"]} == {t["name"]: _flat(t) for t in tensors}


def _flat(tensor: dict) -> dict:
    return {**tensor, "data": np.array(tensor["data"], dtype=object).ravel().tolist()}


@pytest.mark.parametrize(
    ("tensor", "fragment"),
    [
        ({"name": "a", "shape": [1], "datatype": "UINT8", "data": [256]}, "out of range for UINT8"),
        ({"name": "a", "shape": [1], "datatype": "INT32", "data": [1.5]}, "needs integers"),
        ({"name": "a", "shape": [1], "datatype": "BOOL", "data": [1]}, "needs booleans"),
        ({"name": "a", "shape": [1], "datatype": "BYTES", "data": [1]}, "needs strings"),
        ({"name": "a", "shape": [1], "datatype": "FP32", "data": [None]}, "needs numbers"),
        ({"name": "a", "shape": "1", "datatype": "FP32", "data": [1]}, "'shape'"),
    ],
)
def test_datatype_violations_are_400(python_server, tensor, fragment):
    answer = python_server.post("/v2/models/echo/infer", {"inputs": [tensor]})
    assert answer.status_code == 400, answer.text
    assert fragment in answer.json()["error"]


def test_exception_in_predict_is_500_and_server_keeps_serving(python_server):
    boom = {"inputs": [{"name": "boom", "shape": [1], "datatype": "INT64", "data": [1]}]}

    answer = python_server.post("/v2/models/echo/infer", boom)

    assert answer.status_code == 500
    assert "the model exploded" in answer.json()["error"]
    assert python_server.events("predict_failed")
    ok = {"inputs": [{"name": "fine", "shape": [1], "datatype": "INT64", "data": [1]}]}
    assert python_server.post("/v2/models/echo/infer", ok).status_code == 200


def test_body_over_the_limit_is_413(python_server):
    # Far over the limit: refused from Content-Length alone, and the server goes on serving.
    big = {"inputs": [{"name": "v", "shape": [700_000], "datatype": "INT64", "data": [1] * 700_000}]}

    answer = python_server.post("/v2/models/echo/infer", big)

    assert answer.status_code == 413
    assert "exceeds the limit of 4096 bytes" in answer.json()["error"]
    assert python_server.get("/v2/health/ready").status_code == 200


# --- readiness honesty and lifecycle --------------------------------------------------------------


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
    assert not_ready.json() == {"error": "model not loaded yet"}
    assert server.get("/v2/models/slow/ready").status_code == 503
    assert server.post("/v2/models/slow/infer", request).status_code == 503
    assert read_metrics(server)["slipway_model_ready"] == 0
    assert run_healthcheck(server) == 1

    gate.touch()
    server.wait_ready(timeout=10)
    assert run_healthcheck(server) == 0

    answer = server.post("/v2/models/slow/infer", request)
    assert answer.status_code == 200
    assert answer.json()["outputs"][0]["data"] == [42]
    assert answer.json()["outputs"][0]["name"] == "output0"
    assert read_metrics(server)["slipway_model_ready"] == 1


def run_healthcheck(server) -> int:
    """The image's HEALTHCHECK command, against this server's port."""
    env = {**os.environ, "PORT": str(server.port)}
    command = [sys.executable, str(RUNTIME), "--healthcheck"]
    return subprocess.run(command, env=env, capture_output=True, timeout=30, check=False).returncode


BROKEN_ARTIFACTS = {
    "sklearn": ("model.joblib", b"this is not a pickle", "model.joblib"),
    "python": ("model.py", b"import definitely_not_a_module_slipway\n", "."),
    "onnx": ("model.onnx", b"\x00\x01garbage", "model.onnx"),
}


@pytest.mark.parametrize("framework", list(BROKEN_ARTIFACTS))
def test_broken_artifact_never_becomes_ready(tmp_path, start_server, model_config, framework):
    filename, content, artifact = BROKEN_ARTIFACTS[framework]
    (tmp_path / filename).write_bytes(content)
    model_config(tmp_path, name="broken", framework=framework, artifact=artifact)
    server = start_server(tmp_path)

    failure = server.wait_for_event("model_load_failed")

    assert failure["level"] == "error"
    for _ in range(5):
        ready = server.get("/v2/health/ready")
        assert ready.status_code == 503
        assert ready.json()["error"].startswith("model failed to load")
        time.sleep(0.05)
    assert server.get("/v2/health/live").status_code == 200
    assert server.get("/v2/models/broken/ready").status_code == 503
    infer = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}
    assert server.post("/v2/models/broken/infer", infer).status_code == 503
    assert read_metrics(server)["slipway_model_ready"] == 0


def test_sigterm_shuts_down_cleanly(python_model_dir, start_server):
    server = start_server(python_model_dir)
    server.wait_ready()

    started = time.monotonic()
    assert server.stop() == 0

    assert time.monotonic() - started < 5
    assert server.events("stopped")


def test_runtime_imports_no_framework_until_the_model_loads():
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('slipway_serve', {str(RUNTIME)!r})\n"
        "module = sys.modules['slipway_serve'] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'joblib', 'onnxruntime', 'scipy'}))\n"
    )

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)

    assert result.stdout.strip() == "[]"


def test_missing_config_exits_with_an_error(tmp_path, start_server):
    server = start_server(tmp_path)

    assert server.process.wait(timeout=10) == 2
    time.sleep(0.1)
    (event,) = server.events("invalid_config")
    assert re.search(r"slipway\.json", event["error"])
