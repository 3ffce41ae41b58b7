"""Builds when things go wrong around them: parallel load, and a worker killed mid-build.

Runs its own Celery worker (module scope), because the last test kills it with SIGKILL.
"""

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils.dateparse import parse_datetime

from deployments.models import Build, BuildState
from deployments.services import builds
from tests.support.builds import containers_running, custom_context, wait_for_build
from tests.support.services import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def upload_custom(api, model, dockerfile: str) -> int:
    response = api.post(
        f"/api/v1/models/{model.pk}/versions/",
        {
            "framework": "custom",
            "artifact": SimpleUploadedFile("ctx.tar.gz", custom_context(dockerfile)),
        },
        format="multipart",
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_builds_of_different_versions_run_in_parallel(
    api,
    teammate,
    model,
    registry_row,
    build_settings,
    celery_worker,
    base_image,
):
    client = api.as_user(teammate)
    versions = [
        upload_custom(client, model, f"FROM {base_image}\nRUN sleep 4 && echo build-{n}-{time.time_ns()}\n")
        for n in range(2)
    ]
    first, second = (wait_for_build(v, timeout=120) for v in versions)
    assert first.state == second.state == BuildState.SUCCEEDED, (first.failure_reason, second.failure_reason)

    def window(build):
        step = build.steps["building"]
        return parse_datetime(step["started"]), parse_datetime(step["finished"])

    (start_a, end_a), (start_b, end_b) = window(first), window(second)
    assert start_a < end_b and start_b < end_a, "the two builds did not overlap"


def test_a_worker_killed_mid_build_leaves_the_build_failed_not_running(
    api,
    teammate,
    model,
    registry_row,
    build_settings,
    celery_worker,
    base_image,
    docker_engine,
    settings,
):
    marker = f"sleep 90 # killed-{time.time_ns()}"
    version_id = upload_custom(api.as_user(teammate), model, f"FROM {base_image}\nRUN {marker}\n")

    def sleeping():
        return containers_running(docker_engine, marker)

    wait_until(sleeping, timeout=60, message="the build's RUN step to start")
    build = Build.objects.get(version_id=version_id)
    assert build.state == BuildState.BUILDING

    celery_worker.kill()
    killed_at = time.monotonic()
    settings.BUILD_STALE_AFTER = 3  # heartbeats come every second in this module's worker

    def reaped():
        builds.reap_stale_builds()
        build.refresh_from_db()
        return build.state != BuildState.BUILDING

    wait_until(reaped, timeout=15, interval=0.5, message="the reaper to notice the lost worker")
    assert build.state == BuildState.FAILED
    assert "worker running this build was lost" in build.failure_reason
    assert time.monotonic() - killed_at < 10
    # The engine stops a classic build whose client went away, and removes its container.
    wait_until(lambda: not sleeping(), timeout=30, message="the orphaned build container to go")
