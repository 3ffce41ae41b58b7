"""Starting, cancelling and supervising builds. The work itself is in deployments.runners.builds."""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.permissions import Action, Actor, require
from audit.services import record
from deployments import supervision
from deployments.models import Build, BuildLogLine, BuildState
from deployments.selectors.registries import registry_for
from deployments.tasks import run_build
from registry.models import Framework, ModelVersion

logger = logging.getLogger(__name__)


def build_start(*, actor: Actor | None, version: ModelVersion) -> Build:
    """Queue a build of the version. `actor` is None when the platform starts it (auto build)."""
    team = version.model.team
    if actor is not None:
        require(actor, Action.START_BUILD, team, obj=version)
    registry = registry_for(team)
    if registry is None and version.framework != Framework.IMAGE:
        raise ValidationError("No container registry is configured; an admin must add one under Registries.")
    try:
        with transaction.atomic():
            build = Build.objects.create(
                version=version, registry=registry, started_by=actor.user if actor else version.created_by
            )
            record(actor=actor, action="build.start", obj=build, after={"version": version.number})
            transaction.on_commit(lambda: run_build.delay(build.pk))
    except IntegrityError:
        running = Build.objects.filter(version=version, state__in=BuildState.active()).first()
        raise ValidationError(
            f"Version {version.display_name} already has a build in progress (build #{running.pk if running else '?'})."
        ) from None
    return build


def build_cancel(*, actor: Actor, build: Build) -> Build:
    """A queued build is cancelled at once; a running one is asked to stop between two steps."""
    require(actor, Action.START_BUILD, build.version.model.team, obj=build)
    now = timezone.now()
    with transaction.atomic():
        if Build.objects.filter(pk=build.pk, state=BuildState.QUEUED).update(
            state=BuildState.CANCELLED,
            cancel_requested=True,
            finished_at=now,
            failure_reason=f"Cancelled by {actor.user.get_username()} before it started.",
        ):
            append_line(build, f"Cancelled by {actor.user.get_username()} before it started.")
        elif not Build.objects.filter(pk=build.pk, state__in=BuildState.running()).update(cancel_requested=True):
            build.refresh_from_db()
            raise ValidationError(f"Build #{build.pk} has already finished ({build.state}).")
        record(actor=actor, action="build.cancel", obj=build, before={"state": build.state})
    build.refresh_from_db()
    return build


def append_line(build: Build, text: str) -> None:
    supervision.append_line(build, BuildLogLine, text)


def reap_stale_builds() -> dict:
    """Fail builds whose worker died; enqueue again queued builds whose message may be lost."""
    reaped = supervision.reap_stale(
        Build,
        BuildLogLine,
        running_states=BuildState.running(),
        failed_state=BuildState.FAILED,
        stale_after=settings.BUILD_STALE_AFTER,
        what="build",
    )
    requeued = 0
    for build_id in Build.objects.filter(
        state=BuildState.QUEUED, created_at__lt=timezone.now() - timedelta(seconds=settings.BUILD_REQUEUE_AFTER)
    ).values_list("pk", flat=True):
        run_build.delay(build_id)
        requeued += 1
    return {"reaped": len(reaped), "requeued": requeued}


def start_build_for_new_version(sender, version: ModelVersion, actor: Actor, **kwargs) -> None:
    """Receiver of registry.services.version_created: the per-model auto build."""
    if not version.model.auto_build:
        return
    try:
        build_start(actor=actor, version=version)
    except ValidationError as exc:
        logger.warning("no automatic build for %s: %s", version, " ".join(exc.messages))
