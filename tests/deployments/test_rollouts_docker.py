"""Rollouts to a Docker host, end to end: a real worker builds and deploys real images.

The model is a `python` framework class (numpy only), so builds are quick. The broken version needs a
weights file its environment names but does not have: it passes its build's smoke test (no environment
there) and cannot load in the environment. The runtime says so at once; the rollout must fail on that
(not wait for its deadline, nor for the runtime to exit), and leave the previous one serving.
"""

import time

import pytest
import requests
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import Role
from deployments.models import Drift, Environment, Rollout, RolloutKind, RolloutState, TargetKind
from deployments.runners import drift
from tests.support.builds import wait_for_build
from tests.support.factories import MembershipFactory, ModelFactory, TeamFactory, grant
from tests.support.services import wait_until
from tests.support.targets import remove_containers

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

GOOD_MODEL = b"""
import numpy as np


class Model:
    def predict(self, inputs):
        return {"double": np.asarray(inputs["x"], dtype=np.float64) * %d}
"""
BROKEN_MODEL = b"""
import os


class Model:
    def load(self, folder):
        weights = os.environ.get("IRIS_WEIGHTS")
        if weights and not os.path.exists(weights):
            raise RuntimeError(f"this model cannot load: weights missing at {weights}")

    def predict(self, inputs):
        return {"double": inputs["x"] * 0}
"""
SIGNATURE = (
    '{"inputs": [{"name": "x", "datatype": "FP64", "shape": [-1]}], '
    '"outputs": [{"name": "double", "datatype": "FP64", "shape": [-1]}]}'
)


@pytest.fixture
def docker_env(docker_engine, team):
    environment = Environment.objects.create(
        name="dev",
        position=10,
        target=TargetKind.DOCKER,
        docker_url="unix:///var/run/docker.sock",
        bind_address="127.0.0.1",
        deployment_settings={
            # Far longer than a rollout here may take: a load failure must end it through the runtime's
            # own report, neither at the deadline nor when the runtime exits after its grace.
            "progress_deadline_seconds": 300,
            "env": {"IRIS_WEIGHTS": "/models/iris.bin", "SLIPWAY_LOAD_FAILURE_GRACE": "300"},
        },
    )
    grant(environment, team)
    yield environment
    remove_containers(docker_engine, settings.INSTALLATION_ID, model="iris")


def mine() -> list[str]:
    """The labels of this test run's iris containers (other runs share the engine)."""
    return [f"slipway.io/installation={settings.INSTALLATION_ID}", "slipway.io/model=iris"]


def upload(client, model, source: bytes) -> int:
    response = client.post(
        f"/api/v1/models/{model.pk}/versions/",
        {
            "framework": "python",
            "artifact": SimpleUploadedFile("model.py", source),
            "signature": SIGNATURE,
        },
        format="multipart",
    )
    assert response.status_code == 201, response.content
    build = wait_for_build(response.json()["id"], timeout=240)
    assert build.state == "succeeded", build.failure_reason
    return response.json()["id"]


def deploy(client, version_id, environment) -> Rollout:
    response = client.post("/api/v1/rollouts/", {"version": version_id, "environment": environment.pk}, format="json")
    assert response.status_code == 201, response.content
    return finished(response.json()["id"])


def finished(rollout_id) -> Rollout:
    def done():
        rollout = Rollout.objects.get(pk=rollout_id)
        return rollout if rollout.is_finished else None

    return wait_until(done, timeout=120, interval=0.3, message=f"rollout {rollout_id}")


def log_of(rollout) -> str:
    return "\n".join(rollout.log_lines.order_by("seq").values_list("text", flat=True))


def predict(endpoint, value, model="iris"):
    response = requests.post(
        f"{endpoint}/v2/models/{model}/infer",
        json={"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [value]}]},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()["outputs"][0]["data"][0]


def test_deploy_replace_fail_roll_back_and_drift_on_a_docker_host(
    api,
    teammate,
    model,
    registry_row,
    build_settings,
    celery_worker,
    docker_env,
    docker_engine,
):
    client = api.as_user(teammate)
    v1 = upload(client, model, GOOD_MODEL % 2)
    v2 = upload(client, model, GOOD_MODEL % 3)
    broken = upload(client, model, BROKEN_MODEL)

    first = deploy(client, v1, docker_env)
    assert first.state == RolloutState.SUCCEEDED, first.failure_reason
    assert predict(first.endpoint, 5) == 10

    second = deploy(client, v2, docker_env)
    assert second.state == RolloutState.SUCCEEDED, second.failure_reason
    assert predict(second.endpoint, 5) == 15
    first.refresh_from_db()
    assert first.state == RolloutState.SUPERSEDED
    running = docker_engine.containers.list(filters={"label": mine()})
    assert len(running) == 1  # the old container went once the new one was ready

    failed = deploy(client, broken, docker_env)
    assert failed.state == RolloutState.FAILED
    assert failed.failure_reason.startswith("The model server reported a load failure after "), failed.failure_reason
    assert "model failed to load: RuntimeError: this model cannot load: weights missing at /models/iris.bin" in (
        failed.failure_reason
    )
    assert (failed.finished_at - failed.started_at).total_seconds() < 30
    log = log_of(failed)
    assert "log lines of slipway-" in log and '"event": "model_load_failed"' in log  # the container's own lines
    assert predict(second.endpoint, 5) == 15  # the previous release kept serving
    # The new container was removed and the previous one never stopped: the automatic rollback finds
    # nothing to put back (on Kubernetes, where the Deployment did change, it rolls back).
    # Said after the rollout is marked failed, once the host was asked what it runs.
    wait_until(lambda: "==> dev still runs v2: nothing to roll back" in log_of(failed), timeout=15,
               message="the rollout to say why nothing is rolled back")  # fmt: skip
    assert not Rollout.objects.filter(kind=RolloutKind.AUTO_ROLLBACK, replaces=failed).exists()

    assert drift.check_environment(docker_env)[Drift.IN_SYNC] == 1
    for container in docker_engine.containers.list(filters={"label": mine()}):
        container.stop(timeout=1)
    drift.check_environment(docker_env)
    second.refresh_from_db()
    assert second.drift == Drift.MISSING

    page = client.get(f"/environments/{docker_env.pk}/").content.decode()
    assert "missing" in page and f"v{second.version.number}" in page


def docker_environment(name: str, position: int, team) -> Environment:
    environment = Environment.objects.create(
        name=name,
        position=position,
        target=TargetKind.DOCKER,
        docker_url="unix:///var/run/docker.sock",
        bind_address="127.0.0.1",
        deployment_settings={"progress_deadline_seconds": 30},
    )
    return grant(environment, team)


def test_environments_and_teams_on_one_docker_host_never_touch_each_other(
    api, teammate, model, registry_row, build_settings, celery_worker, docker_engine
):
    client = api.as_user(teammate)
    stages = (("dev", 10), ("staging", 20), ("prod", 30))
    environments = [docker_environment(name, position, model.team) for name, position in stages]
    v1 = upload(client, model, GOOD_MODEL % 2)
    serving: dict[str, tuple[str, str]] = {}  # what must keep answering: name -> (endpoint, model)
    try:
        for environment in environments:
            rollout = deploy(client, v1, environment)
            assert rollout.state == RolloutState.SUCCEEDED, rollout.failure_reason
            log = "\n".join(rollout.log_lines.values_list("text", flat=True))
            assert "Stopped and removed the previous container" not in log, log
            serving[environment.name] = (rollout.endpoint, "iris")
            for name, (endpoint, served) in serving.items():
                assert predict(endpoint, 5, served) == 10, f"{name} stopped answering"

        # `f"{team}-{model}"` once gave both of these the name "ml-search-ranker".
        for slug, name in (("ml", "search-ranker"), ("ml-search", "ranker")):
            team = TeamFactory(slug=slug, name=slug)
            MembershipFactory(team=team, user=teammate, role=Role.DEVELOPER)
            grant(environments[0], team)  # one global environment, three teams
            other = ModelFactory(team=team, name=name, created_by=teammate)
            rollout = deploy(client, upload(client, other, GOOD_MODEL % 2), environments[0])
            assert rollout.state == RolloutState.SUCCEEDED, rollout.failure_reason
            serving[f"{slug}/{name}"] = (rollout.endpoint, name)
            for where, (endpoint, served) in serving.items():
                assert predict(endpoint, 5, served) == 10, f"{where} stopped answering"

        mine = {"iris", "search-ranker", "ranker"}  # other tests of this run may still have containers up
        containers = [
            c
            for c in docker_engine.containers.list(
                filters={"label": f"slipway.io/installation={settings.INSTALLATION_ID}"}
            )
            if c.labels.get("slipway.io/model") in mine
        ]
        assert len(containers) == 5 == len({c.name for c in containers})
        assert {c.labels["slipway.io/environment"] for c in containers} == {"dev", "staging", "prod"}
        assert drift.check_environment(environments[0])[Drift.IN_SYNC] == 3
    finally:
        for slug in ("ml", "ml-search"):
            remove_containers(docker_engine, settings.INSTALLATION_ID, team=slug)
        remove_containers(docker_engine, settings.INSTALLATION_ID, model="iris")


def shown(client, rollout, environment) -> tuple[str, str]:
    """(drift, detail) as the API reports it, after checking the environment page and overview show the state."""
    answer = client.get(f"/api/v1/rollouts/{rollout.pk}/").json()
    page = client.get(f"/environments/{environment.pk}/").content.decode()
    overview = client.get("/").content.decode()
    if answer["drift"] and answer["drift"] != Drift.IN_SYNC:
        assert f">{answer['drift']}</span>" in page, "the environment page shows it"
        assert f">{answer['drift']}</strong>" in overview, "the overview shows it"
    return answer["drift"], answer["drift_detail"]


def test_drift_and_health_on_a_docker_host_are_observed_by_one_check(
    api, teammate, model, registry_row, build_settings, celery_worker, docker_env, docker_engine, base_image
):
    client = api.as_user(teammate)
    release = deploy(client, upload(client, model, GOOD_MODEL % 2), docker_env)
    assert release.state == RolloutState.SUCCEEDED, release.failure_reason
    (container,) = docker_engine.containers.list(filters={"label": mine()})

    def one_check() -> tuple[str, str]:
        started = time.monotonic()
        drift.check_environment(docker_env)
        assert time.monotonic() - started < 10
        return shown(client, release, docker_env)

    assert one_check() == (Drift.IN_SYNC, "")

    container.stop(timeout=1)  # `docker stop`
    state, detail = one_check()
    assert state == Drift.MISSING and f"{container.name} is exited (exit code" in detail
    container.start()
    wait_until(lambda: one_check()[0] == Drift.IN_SYNC, timeout=30, message="the restarted container to be ready")

    container.kill()  # `docker kill`: exited 137, and not restarted (killed by hand)
    state, detail = one_check()
    assert state == Drift.MISSING and "(exit code 137)" in detail
    container.start()
    wait_until(lambda: one_check()[0] == Drift.IN_SYNC, timeout=30, message="the restarted container to be ready")

    container.pause()  # it runs, but its ready endpoint no longer answers
    state, detail = one_check()
    assert state == Drift.UNHEALTHY and f"{container.name} (paused) does not answer /v2/health/ready" in detail
    container.unpause()
    assert one_check() == (Drift.IN_SYNC, "")

    # Replaced behind our back by another image, under the same labels.
    container.remove(force=True)
    state, detail = one_check()
    assert state == Drift.MISSING and "No container of vision/iris exists in dev" in detail
    impostor = docker_engine.containers.run(
        base_image, ["python3", "-m", "http.server", "8080"], labels=container.labels, detach=True,
        ports={"8080/tcp": ("127.0.0.1", None)},
    )  # fmt: skip
    try:
        state, detail = one_check()
        assert state == Drift.DRIFTED and detail.endswith(f", but the release is {release.image}.")
        assert release.image not in detail.split(", but")[0]
    finally:
        impostor.remove(force=True)
