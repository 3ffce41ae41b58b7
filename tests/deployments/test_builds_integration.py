"""Builds on the real Docker engine, a real registry with credentials, and a real Celery worker."""

import json
import threading
import time

import joblib
import numpy as np
import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from deployments.models import Build, BuildState, ContainerRegistry
from tests.support.builds import containers_running, custom_context, pushed_copy, wait_for_build
from tests.support.services import free_port, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SIGNATURE = {
    "inputs": [{"name": "features", "datatype": "FP64", "shape": [-1, 4]}],
    "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]}],
}


@pytest.fixture(scope="module")
def iris():
    features, labels = load_iris(return_X_y=True)
    return features, LogisticRegression(max_iter=500).fit(features, labels)


def upload(api, model, *, name, content, framework, **fields):
    response = api.post(
        f"/api/v1/models/{model.pk}/versions/",
        {
            "framework": framework,
            "artifact": SimpleUploadedFile(name, content),
            **fields,
        },
        format="multipart",
    )
    assert response.status_code == 201, response.content
    return response.json()


def log_text(build) -> str:
    return "\n".join(build.log_lines.order_by("seq").values_list("text", flat=True))


def tail_log(api, build_id, seen: list, stop: threading.Event):
    after = 0
    try:
        while not stop.is_set():
            body = api.get(f"/api/v1/builds/{build_id}/log/", {"after": after, "limit": 50}).json()
            seen.extend((line["seq"], line["text"]) for line in body["lines"])
            after = body["next_after"]
            if body["finished"]:
                return
            time.sleep(0.05)
    finally:
        connection.close()  # this thread's own connection, or the test database cannot be dropped


@pytest.fixture
def running_container(docker_engine):
    started = []

    def run(image):
        port = free_port()
        container = docker_engine.containers.run(image, detach=True, ports={"8080/tcp": ("127.0.0.1", port)})
        started.append(container)
        url = f"http://127.0.0.1:{port}"

        def ready():
            try:
                return requests.get(f"{url}/v2/health/ready", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False

        try:
            wait_until(ready, timeout=60, message=f"{image} to be ready")
        except AssertionError:
            raise AssertionError(f"container never ready; its log:\n{container.logs().decode()[-3000:]}") from None
        return url

    yield run
    for container in started:
        container.remove(force=True)


def infer(url, model_name, features, datatype):
    response = requests.post(
        f"{url}/v2/models/{model_name}/infer",
        json={
            "inputs": [
                {
                    "name": "features",
                    "shape": list(features.shape),
                    "datatype": datatype,
                    "data": features.flatten().tolist(),
                }
            ]
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_an_sklearn_version_is_built_pushed_and_serves_the_same_predictions(
    api,
    teammate,
    model,
    registry_row,
    oci_registry,
    build_settings,
    celery_worker,
    iris,
    tmp_path,
    running_container,
):
    features, estimator = iris
    path = tmp_path / "model.joblib"
    joblib.dump(estimator, path)
    client = api.as_user(teammate)
    version = upload(
        client,
        model,
        name="model.joblib",
        content=path.read_bytes(),
        framework="sklearn",
        signature=json.dumps(SIGNATURE),
    )

    # A script tails the log while the build runs: every line once, in order.
    build_id = wait_until(
        lambda: Build.objects.filter(version_id=version["id"]).values_list("pk", flat=True).first(),
        timeout=10,
        message="the automatic build",
    )
    seen, stop = [], threading.Event()
    tailer = threading.Thread(target=tail_log, args=(client, build_id, seen, stop))
    tailer.start()
    build = wait_for_build(version["id"])
    tailer.join(timeout=30)
    stop.set()
    assert build.state == BuildState.SUCCEEDED, f"{build.failure_reason}\n{log_text(build)[-3000:]}"
    stored = list(build.log_lines.order_by("seq").values_list("seq", "text"))
    assert seen == stored
    assert [seq for seq, _ in seen] == list(range(1, len(seen) + 1))

    # The registry holds the tag, and its digest is the one recorded.
    tag = f"v1-b{build.pk}"
    assert build.image_reference == f"{oci_registry.host}/vision/iris:{tag}"
    manifest = oci_registry.manifest("vision/iris", tag)
    assert manifest.status_code == 200
    assert manifest.headers["Docker-Content-Digest"] == build.image_digest
    assert set(build.steps) == {"preparing", "building", "testing", "pushing"}  # the smoke test is a step
    assert all(step["seconds"] >= 0 for step in build.steps.values())
    packages = {item["name"].lower(): item for item in build.bill_of_materials}
    assert "scikit-learn" in packages and len(packages["scikit-learn"]["sha256"]) == 64

    # Before the push, the image served a request made from the signature, as a rollout would run it.
    assert "==> Smoke test passed in" in log_text(build)
    assert "answered a request made from the signature (outputs: predict)" in log_text(build)

    url = running_container(build.digest_reference)
    answer = infer(url, "iris", features[:10], "FP64")
    assert answer["model_name"] == "iris"
    assert answer["outputs"][0]["data"] == estimator.predict(features[:10]).tolist()

    # The same dependencies again: only the model layer is rebuilt.
    second = upload(
        client,
        model,
        name="model.joblib",
        content=path.read_bytes() + b"",
        framework="sklearn",
        signature=json.dumps(SIGNATURE),
        label="again",
    )
    warm = wait_for_build(second["id"])
    assert warm.state == BuildState.SUCCEEDED, warm.failure_reason
    # The dependency layer comes from the cache; only later layers are rebuilt (timings: benchmarks/builds).
    lines = log_text(warm).splitlines()
    install = next(n for n, line in enumerate(lines) if "python3 -m venv" in line)
    assert "Using cache" in lines[install + 1]


def test_an_onnx_version_serves_the_same_predictions(
    api,
    teammate,
    model,
    registry_row,
    build_settings,
    celery_worker,
    iris,
    running_container,
):

    features, estimator = iris
    onnx_model = to_onnx(
        estimator, features[:1].astype(np.float32), target_opset=15, options={id(estimator): {"zipmap": False}}
    )
    version = upload(
        api.as_user(teammate), model, name="model.onnx", content=onnx_model.SerializeToString(), framework="onnx"
    )
    assert version["signature"]["inputs"][0]["datatype"] == "FP32"
    build = wait_for_build(version["id"])
    assert build.state == BuildState.SUCCEEDED, f"{build.failure_reason}\n{log_text(build)[-3000:]}"
    url = running_container(build.digest_reference)
    input_name = version["signature"]["inputs"][0]["name"]
    response = requests.post(
        f"{url}/v2/models/iris/infer",
        json={
            "inputs": [
                {
                    "name": input_name,
                    "shape": [10, 4],
                    "datatype": "FP32",
                    "data": features[:10].astype(np.float32).flatten().tolist(),
                }
            ]
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    labels = next(o for o in response.json()["outputs"] if o["datatype"].startswith("INT"))
    assert labels["data"] == estimator.predict(features[:10]).tolist()


def test_a_model_that_cannot_load_fails_its_build_and_is_never_pushed(
    api,
    teammate,
    model,
    registry_row,
    oci_registry,
    build_settings,
    celery_worker,
    docker_engine,
):
    # The case: a text file uploaded as a scikit-learn model used to build, push and only fail
    # once deployed, after the rollout's 600 s deadline.
    version = upload(
        api.as_user(teammate),
        model,
        name="model.joblib",
        content=b"these are my notes, not a model\n",
        framework="sklearn",
        signature=json.dumps(SIGNATURE),
    )

    build = wait_for_build(version["id"], timeout=300)

    assert build.state == BuildState.FAILED
    assert build.failure_reason.startswith("The image failed its smoke test: model failed to load: ")
    log = log_text(build)
    assert "==> Smoke test: starting the image as a rollout would, without network" in log
    assert '"event": "model_load_failed"' in log  # the runtime's own lines, shown in the build log
    assert "==> Pushing" not in log
    assert oci_registry.manifest("vision/iris", f"v1-b{build.pk}").status_code == 404
    assert "pushing" not in build.steps and build.steps["testing"]["seconds"] > 0
    assert not docker_engine.containers.list(all=True, filters={"label": "io.slipway.smoke-test"})


def test_a_build_cancelled_during_its_smoke_test_stops_and_leaves_no_container(
    api,
    teammate,
    model,
    registry_row,
    build_settings,
    celery_worker,
    docker_engine,
):
    slow = b"import time\n\n\nclass Model:\n    def load(self, folder):\n        time.sleep(120)\n"
    client = api.as_user(teammate)
    version = upload(client, model, name="model.py", content=slow, framework="python")
    build_id = wait_until(
        lambda: Build.objects.filter(version_id=version["id"]).values_list("pk", flat=True).first(),
        timeout=10,
        message="the automatic build",
    )
    wait_until(
        lambda: docker_engine.containers.list(filters={"label": "io.slipway.smoke-test"}),
        timeout=240,
        message="the smoke test's container",
    )

    assert client.post(f"/api/v1/builds/{build_id}/cancel/").status_code == 200

    build = wait_for_build(version["id"], timeout=30)
    assert build.state == BuildState.CANCELLED
    assert "Cancelled at the user's request" in build.failure_reason
    assert "==> Smoke test: starting the image" in log_text(build)
    assert not docker_engine.containers.list(all=True, filters={"label": "io.slipway.smoke-test"})


def test_a_failing_custom_dockerfile_ends_failed_with_the_engine_error(
    api,
    teammate,
    model,
    registry_row,
    build_settings,
    celery_worker,
    base_image,
):
    content = custom_context(f"FROM {base_image}\nRUN echo about to fail && exit 3\n")
    version = upload(api.as_user(teammate), model, name="ctx.tar.gz", content=content, framework="custom")
    build = wait_for_build(version["id"], timeout=120)
    assert build.state == BuildState.FAILED
    assert "returned a non-zero code: 3" in build.failure_reason
    assert build.failure_reason.count(".") <= 2  # one sentence, not a traceback
    log = log_text(build)
    assert "about to fail" in log and "returned a non-zero code: 3" in log


def test_an_unreachable_registry_fails_after_retries(
    api,
    teammate,
    model,
    build_settings,
    celery_worker,
):
    ContainerRegistry.objects.create(name="down", url=f"127.0.0.1:{free_port()}", insecure=True)
    version = upload(api.as_user(teammate), model, name="m.joblib", content=b"x", framework="sklearn")
    build = wait_for_build(version["id"], timeout=60)
    assert build.state == BuildState.FAILED
    assert "unreachable" in build.failure_reason and "after 3 attempts" in build.failure_reason
    assert log_text(build).count("Retrying reaching the registry") == 2


def test_refused_credentials_fail_the_build_with_that_reason(
    api,
    teammate,
    model,
    oci_registry,
    build_settings,
    celery_worker,
):
    ContainerRegistry.objects.create(
        name="wrong", url=oci_registry.host, username="ci", password="wrong", insecure=True
    )
    version = upload(api.as_user(teammate), model, name="m.joblib", content=b"x", framework="sklearn")
    build = wait_for_build(version["id"], timeout=60)
    assert build.state == BuildState.FAILED
    assert "refused the credentials of 'ci'" in build.failure_reason


def test_cancel_stops_the_build_and_removes_its_containers(
    api,
    teammate,
    model,
    registry_row,
    build_settings,
    celery_worker,
    base_image,
    docker_engine,
):
    marker = f"sleep 120 # {time.monotonic_ns()}"
    content = custom_context(f"FROM {base_image}\nRUN echo started && {marker}\n")
    client = api.as_user(teammate)
    version = upload(client, model, name="ctx.tar.gz", content=content, framework="custom")

    def sleeping_containers():
        return containers_running(docker_engine, marker)

    wait_until(sleeping_containers, timeout=60, message="the build's RUN step to start")
    build = Build.objects.get(version_id=version["id"])
    response = client.post(f"/api/v1/builds/{build.pk}/cancel/")
    assert response.status_code == 200
    build = wait_for_build(version["id"], timeout=30)
    assert build.state == BuildState.CANCELLED
    assert "Cancelled at the user's request" in build.failure_reason
    wait_until(lambda: not sleeping_containers(), timeout=30, message="the intermediate container to be removed")


def test_a_prebuilt_image_is_looked_up_not_built(
    api,
    teammate,
    model,
    registry_row,
    oci_registry,
    build_settings,
    celery_worker,
    base_image,
    docker_engine,
):
    with pushed_copy(docker_engine, oci_registry, base_image, "vision/prebuilt") as reference:
        expected = oci_registry.manifest("vision/prebuilt", "1.0").headers["Docker-Content-Digest"]
        client = api.as_user(teammate)
        url = f"/api/v1/models/{model.pk}/versions/"
        found = client.post(url, {"framework": "image", "image_reference": reference}, format="json").json()
        build = wait_for_build(found["id"], timeout=60)
    assert build.state == BuildState.SUCCEEDED, build.failure_reason
    assert build.image_digest == expected
    assert build.digest_reference == f"{oci_registry.host}/vision/prebuilt@{expected}"
    assert "nothing is built" in log_text(build)

    missing = client.post(
        url, {"framework": "image", "image_reference": f"{oci_registry.host}/vision/nope:1"}, format="json"
    ).json()
    build = wait_for_build(missing["id"], timeout=60)
    assert build.state == BuildState.FAILED and "does not exist" in build.failure_reason
