"""Starting, cancelling and supervising builds. The work itself is in deployments.runners.builds."""

import logging
import shutil
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
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
    if version.inspection:
        raise ValidationError(
            f"Version {version.display_name} is still being inspected; it builds once that is done."
            if version.inspection == "inspecting"
            else f"Version {version.display_name} was rejected when inspected: {version.inspection_note}"
        )
    registry = registry_for(team)
    if registry is None and version.framework != Framework.IMAGE:
        raise ValidationError("No container registry is configured; an admin must add one under Registries.")
    try:
        with transaction.atomic():
            build = Build.objects.create(
                version=version,
                registry=registry,
                started_by=actor.user if actor else version.created_by,
                network_reason=version.model.build_network_reason,
            )
            record(actor=actor, action="build.start", obj=build, after={"version": version.number})
            supervision.enqueue_on_commit(build, run_build, build.pk)
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
    expired = supervision.expire_queued(
        Build, BuildLogLine, failed_state=BuildState.FAILED, queued_state=BuildState.QUEUED, what="build"
    )
    requeued = supervision.requeue(Build.objects.filter(state=BuildState.QUEUED), run_build)
    remove_leftover_workdirs()
    return {"reaped": len(reaped) + len(expired), "requeued": requeued}


def remove_leftover_workdirs() -> list[int]:
    """Remove the work folders of builds that are over (a killed worker leaves its folder behind: the
    build context, the artifact, the wheels: easily 70 MB each). Returns the build ids cleaned."""
    root = Path(settings.BUILD_WORKDIR)
    folders = {int(path.name): path for path in root.glob("*") if path.is_dir() and path.name.isdigit()}
    if not folders:
        return []
    active = set(Build.objects.filter(pk__in=folders, state__in=BuildState.active()).values_list("pk", flat=True))
    removed = sorted(pk for pk in folders if pk not in active)
    for pk in removed:
        shutil.rmtree(folders[pk], ignore_errors=True)
    if removed:
        logger.info("removed the work folders of finished builds %s", removed)
    return removed


def start_build_for_new_version(sender, version: ModelVersion, actor: Actor, **kwargs) -> None:
    """Receiver of registry.services.version_created: the per-model auto build."""
    if not version.model.auto_build:
        return
    try:
        build = build_start(actor=actor, version=version)
    except ValidationError as exc:
        logger.warning("no automatic build for %s: %s", version, " ".join(exc.messages))
        return
    except PermissionDenied as exc:  # caught here, so that the refusal's audit row commits with the version
        logger.warning("no automatic build for %s: %s", version, exc)
        return
    # The upload's answer says so when the build could not be enqueued yet (see registry.services). That
    # is known once the upload's transaction has committed and the enqueue (registered before) was tried.
    transaction.on_commit(lambda: setattr(version, "queued_for_later", build.queued_for_later))
