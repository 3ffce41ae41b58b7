"""Redis stopped while uploads, builds and rollouts are asked for: what was saved stays saved, the
client is told the truth (201, or 202 "queued for later", never a 500), and the work is enqueued again
when Redis is back, or can be cancelled; queued work nobody starts ends with the reason."""

import hashlib
import time
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from audit.models import AuditEvent
from deployments.models import Build, BuildState, Rollout, RolloutState
from deployments.runners import rollouts as rollout_runner
from deployments.services import builds
from registry.models import ModelVersion
from tests.support.builds import custom_context
from tests.support.factories import EnvironmentFactory, RegistryFactory, VersionFactory, succeeded_build
from tests.support.faults import figure

pytestmark = pytest.mark.django_db(transaction=True)


def age(model, pk, seconds):
    model.objects.filter(pk=pk).update(created_at=timezone.now() - timedelta(seconds=seconds))


@pytest.fixture
def registry():
    return RegistryFactory()


def test_an_upload_while_redis_is_down_keeps_its_version_and_artifact_and_builds_once_redis_is_back(
    api, teammate, model, registry, broker, settings
):
    artifact = custom_context("FROM scratch\n")
    broker.stop()
    started = time.monotonic()
    response = api.as_user(teammate).post(
        f"/api/v1/models/{model.pk}/versions/",
        {"framework": "custom", "artifact": SimpleUploadedFile("ctx.tar.gz", artifact)},
        format="multipart",
    )
    answered = time.monotonic() - started

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["queued_for_later"] is True and "queued for later" in body["detail"]
    version = ModelVersion.objects.get(pk=body["id"])
    download = api.get(f"/api/v1/versions/{version.pk}/artifact/")
    assert download.status_code == 200
    assert hashlib.sha256(b"".join(download.streaming_content)).hexdigest() == version.artifact_sha256
    build = Build.objects.get(version=version)
    assert build.state == BuildState.QUEUED

    broker.start()
    assert builds.reap_stale_builds()["requeued"] == 0  # too young to be enqueued again
    age(Build, build.pk, settings.BUILD_REQUEUE_AFTER + 1)
    assert builds.reap_stale_builds() == {"reaped": 0, "requeued": 1}
    assert broker.queued() == 1
    figure(f"upload during a Redis outage: 202 in {answered:.2f} s; version and artifact kept")


def test_a_build_or_rollout_asked_for_while_redis_is_down_answers_202(api, teammate, model, registry, broker):
    version = VersionFactory(model=model)
    broker.stop()

    response = api.as_user(teammate).post("/api/v1/builds/", {"version": version.pk}, format="json")
    assert response.status_code == 202, response.content
    assert Build.objects.get(pk=response.json()["id"]).state == BuildState.QUEUED

    Build.objects.filter(pk=response.json()["id"]).update(state=BuildState.CANCELLED)
    succeeded_build(version)
    environment = EnvironmentFactory(team=model.team, name="dev")
    response = api.post("/api/v1/rollouts/", {"version": version.pk, "environment": environment.pk}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["state"] == "queued" and response.json()["queued_for_later"] is True


def test_a_rollout_queued_during_an_outage_blocks_nothing_it_can_be_cancelled_and_is_requeued(
    api, teammate, viewer, stranger, model, registry, broker, settings
):
    version = VersionFactory(model=model)
    succeeded_build(version)
    environment = EnvironmentFactory(team=model.team, name="dev")
    client = api.as_user(teammate)
    broker.stop()
    first = client.post("/api/v1/rollouts/", {"version": version.pk, "environment": environment.pk}, format="json")
    assert first.status_code == 202

    again = client.post("/api/v1/rollouts/", {"version": version.pk, "environment": environment.pk}, format="json")
    assert again.status_code == 400
    assert f"rollout #{first.json()['id']}" in again.json()["non_field_errors"][0]

    assert api.as_user(viewer).post(f"/api/v1/rollouts/{first.json()['id']}/cancel/").status_code == 403
    assert api.as_user(stranger).post(f"/api/v1/rollouts/{first.json()['id']}/cancel/").status_code == 404
    cancelled = api.as_user(teammate).post(f"/api/v1/rollouts/{first.json()['id']}/cancel/")
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled" and cancelled.json()["finished"] is True
    assert "Cancelled by teammate" in cancelled.json()["failure_reason"]
    assert AuditEvent.objects.filter(action="rollout.cancel", actor=teammate).count() == 1
    assert api.post(f"/api/v1/rollouts/{first.json()['id']}/cancel/").status_code == 400

    second = client.post("/api/v1/rollouts/", {"version": version.pk, "environment": environment.pk}, format="json")
    assert second.status_code == 202
    broker.start()
    age(Rollout, second.json()["id"], settings.BUILD_REQUEUE_AFTER + 1)
    assert rollout_runner.reap() == {"reaped": 0, "requeued": 1}
    assert broker.queued(settings.ROLLOUT_QUEUE) == 1


def test_queued_work_that_no_worker_starts_ends_with_the_reason(model, registry, broker, settings):
    version = VersionFactory(model=model)
    build = succeeded_build(version)
    environment = EnvironmentFactory(team=model.team, name="dev")
    rollout = Rollout.objects.create(
        environment=environment, model=model, version=version, build=build, image=build.digest_reference
    )
    queued_build = Build.objects.create(version=VersionFactory(model=model))
    age(Rollout, rollout.pk, settings.QUEUE_EXPIRE_AFTER + 1)
    age(Build, queued_build.pk, settings.QUEUE_EXPIRE_AFTER + 1)

    assert rollout_runner.reap()["reaped"] == 1
    assert builds.reap_stale_builds()["reaped"] == 1

    rollout.refresh_from_db()
    queued_build.refresh_from_db()
    assert rollout.state == RolloutState.FAILED
    assert rollout.failure_reason == (
        f"No worker started this rollout within {settings.QUEUE_EXPIRE_AFTER} s of it being queued "
        "(is a worker running?)."
    )
    assert queued_build.state == BuildState.FAILED and "No worker started this build" in queued_build.failure_reason
    assert rollout.log_lines.last().text.startswith("ERROR: No worker started")
