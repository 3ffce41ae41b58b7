"""Work folders go when their build is over, however it ended: the reaper removes those a killed
worker left behind, and keeps those of builds still running."""

from datetime import timedelta

from django.utils import timezone

from deployments.models import BuildState
from deployments.services import builds
from tests.support.factories import BuildFactory


def test_the_reaper_removes_the_work_folders_of_lost_and_finished_builds_only(settings, tmp_path):
    settings.BUILD_WORKDIR = tmp_path / "builds"
    long_ago = timezone.now() - timedelta(seconds=settings.BUILD_STALE_AFTER + 5)
    lost = BuildFactory(state=BuildState.BUILDING, started_at=long_ago, heartbeat_at=long_ago)
    running = BuildFactory(state=BuildState.BUILDING, started_at=long_ago, heartbeat_at=timezone.now())
    finished = BuildFactory(state=BuildState.SUCCEEDED)
    for build in (lost, running, finished):
        context = settings.BUILD_WORKDIR / str(build.pk) / "context"
        context.mkdir(parents=True)
        (context / "wheel.whl").write_bytes(b"x" * 1024)

    assert builds.reap_stale_builds()["reaped"] == 1

    left = sorted(int(path.name) for path in settings.BUILD_WORKDIR.iterdir())
    assert left == [running.pk]
