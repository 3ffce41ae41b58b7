"""The Open Inference Protocol as the runtime answers it, run as the image runs it and checked against the spec."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

INFER = "/v2/models/iris/versions/3/infer"


def iris_request(features: np.ndarray, *, nested: bool = True, **extra) -> dict:
    data = features.tolist() if nested else features.ravel().tolist()
    tensor = {"name": "features", "shape": list(features.shape), "datatype": "FP64", "data": data}
    return {"inputs": [tensor], **extra}


# --- scikit-learn ---------------------------------------------------------------------------------


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
    before = sklearn_server.metrics()

    assert sklearn_server.post(INFER, iris_request(iris[0][:2])).status_code == 200
    assert sklearn_server.post(INFER, data="{").status_code == 400
    after = sklearn_server.metrics()

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
    assert python_server.wait_for_event("predict_failed")  # its log line may reach the reader after the answer
    ok = {"inputs": [{"name": "fine", "shape": [1], "datatype": "INT64", "data": [1]}]}
    assert python_server.post("/v2/models/echo/infer", ok).status_code == 200


def test_body_over_the_limit_is_413(python_server):
    # Far over the limit: refused from Content-Length alone, and the server goes on serving.
    big = {"inputs": [{"name": "v", "shape": [700_000], "datatype": "INT64", "data": [1] * 700_000}]}

    answer = python_server.post("/v2/models/echo/infer", big)

    assert answer.status_code == 413
    assert "exceeds the limit of 4096 bytes" in answer.json()["error"]
    assert python_server.get("/v2/health/ready").status_code == 200
