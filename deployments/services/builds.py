"""Starting, cancelling and supervising builds. The work itself is in deployments.runners.build."""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.permissions import Action, Actor, require
from deployments.models import Build, BuildLogLine, BuildState, ContainerRegistry
from registry.models import Framework, ModelVersion

logger = logging.getLogger(__name__)


def registry_for(team) -> ContainerRegistry | None:
    return ContainerRegistry.objects.filter(team=team).first() or ContainerRegistry.objects.filter(
        team__isnull=True
    ).first()


def build_start(*, actor: Actor | None, version: ModelVersion) -> Build:
    """Queue a build of the version. `actor` is None when the platform starts it (auto build)."""
    from deployments.tasks import run_build

    team = version.model.team
    if actor is not None:
        require(actor, Action.START_BUILD, team)
    registry = registry_for(team)
    if registry is None and version.framework != Framework.IMAGE:
        raise ValidationError("No container registry is configured; an admin must add one under Registries.")
    try:
        with transaction.atomic():
            build = Build.objects.create(version=version, registry=registry,
                                         started_by=actor.user if actor else version.created_by)
            transaction.on_commit(lambda: run_build.delay(build.pk))
    except IntegrityError:
        running = Build.objects.filter(version=version, state__in=BuildState.active()).first()
        raise ValidationError(
            f"Version {version.display_name} already has a build in progress (build #{running.pk if running else '?'})."
        ) from None
    return build


def build_cancel(*, actor: Actor, build: Build) -> Build:
    """A queued build is cancelled at once; a running one is asked to stop between two steps."""
    require(actor, Action.START_BUILD, build.version.model.team)
    now = timezone.now()
    if Build.objects.filter(pk=build.pk, state=BuildState.QUEUED).update(
        state=BuildState.CANCELLED, cancel_requested=True, finished_at=now,
        failure_reason=f"Cancelled by {actor.user.get_username()} before it started.",
    ):
        append_line(build, f"Cancelled by {actor.user.get_username()} before it started.")
    elif not Build.objects.filter(pk=build.pk, state__in=BuildState.running()).update(cancel_requested=True):
        raise ValidationError(f"Build #{build.pk} has already finished ({build.state}).")
    build.refresh_from_db()
    return build


def append_line(build: Build, text: str) -> None:
    """A line from outside the build's own writer (cancel, reaper): numbered under a row lock."""
    with transaction.atomic():
        locked = Build.objects.select_for_update().only("log_line_count").get(pk=build.pk)
        seq = locked.log_line_count + 1
        BuildLogLine.objects.create(build=build, seq=seq, text=text)
        Build.objects.filter(pk=build.pk).update(log_line_count=seq)


def reap_stale_builds() -> dict:
    """Fail builds whose worker died; enqueue again queued builds whose message may be lost."""
    from deployments.tasks import run_build

    now = timezone.now()
    stale_after = timedelta(seconds=settings.BUILD_STALE_AFTER)
    lost = list(Build.objects.filter(state__in=BuildState.running(), heartbeat_at__lt=now - stale_after))
    reaped = 0
    for build in lost:
        reason = (f"The worker running this build was lost (no heartbeat for {settings.BUILD_STALE_AFTER} s); "
                  "start the build again.")
        if Build.objects.filter(pk=build.pk, state=build.state, heartbeat_at=build.heartbeat_at).update(
            state=BuildState.FAILED, failure_reason=reason, finished_at=now
        ):
            append_line(build, f"ERROR: {reason}")
            logger.warning("build %s: worker lost (was %s on %s)", build.pk, build.state, build.worker)
            reaped += 1
    requeued = 0
    for build_id in Build.objects.filter(
        state=BuildState.QUEUED, created_at__lt=now - timedelta(seconds=settings.BUILD_REQUEUE_AFTER)
    ).values_list("pk", flat=True):
        run_build.delay(build_id)
        requeued += 1
    return {"reaped": reaped, "requeued": requeued}


def start_build_for_new_version(sender, version: ModelVersion, actor: Actor, **kwargs) -> None:
    """Receiver of registry.services.version_created: the per-model auto build."""
    if not version.model.auto_build:
        return
    try:
        build_start(actor=actor, version=version)
    except ValidationError as exc:
        logger.warning("no automatic build for %s: %s", version, " ".join(exc.messages))
