"""Deploying a version's image to an environment, rolling back, and recording which release is current.
The work of a rollout itself is in deployments.runners.rollouts."""

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.permissions import Action, Actor, require
from audit.services import record
from deployments import policy, supervision, targets
from deployments.deployment_settings import SettingError, check_secret_refs_allowed
from deployments.models import Build, Environment, Rollout, RolloutKind, RolloutLogLine, RolloutState
from deployments.selectors.builds import deployable_build
from deployments.selectors.environments import effective_settings
from deployments.selectors.rollouts import current_release, previous_release
from deployments.services.environments import identity_for, target_for
from deployments.services.refusals import refusals_recorded
from deployments.tasks import run_rollout
from registry.models import ModelVersion, RegisteredModel

logger = logging.getLogger(__name__)


def rollout_start(
    *,
    actor: Actor,
    version: ModelVersion,
    environment: Environment,
    reason: str = "",
    break_glass_justification: str = "",
) -> Rollout:
    """Deploy to an unprotected environment. Protected ones go through a promotion request."""
    require(actor, Action.DEPLOY, version, environment=environment)  # records its own refusals
    with refusals_recorded(actor=actor, action="rollout.start", obj=version, environment=environment.name):
        if environment.protected:
            raise PermissionDenied(
                f"'{environment.name}' is protected: request a promotion, which needs approval before it deploys."
            )
        build = policy.check_release(actor, version, environment)
        justification = policy.break_glass(actor, environment, version, break_glass_justification)
    try:
        with transaction.atomic():
            rollout = queue_rollout(
                version=version, environment=environment, requested_by=actor.user, reason=reason, build=build
            )
            record(
                actor=actor,
                action="rollout.start",
                obj=rollout,
                environment=environment.name,
                after={"version": version.number, "image": rollout.image, "break_glass": bool(justification)},
                flagged=bool(justification),
                reason=f"Break-glass during a freeze: {justification}" if justification else reason,
            )
    except ValidationError as exc:  # another rollout of this model runs there: refused, and recorded
        record(
            actor=actor,
            action="rollout.start",
            obj=version,
            outcome="refused",
            environment=environment.name,
            reason=" ".join(exc.messages),
        )
        raise
    return rollout


def queue_rollout(
    *,
    version: ModelVersion,
    environment: Environment,
    requested_by,
    reason: str = "",
    kind: str = RolloutKind.DEPLOY,
    replaces: Rollout | None = None,
    build: Build | None = None,
    deployment_settings: dict | None = None,
) -> Rollout:
    """Record and enqueue a rollout. Callers have checked who may ask for it. `deployment_settings`:
    those a promotion froze when it was requested (else the environment's and model's settings now)."""
    build = build or deployable_build(version)
    wanted = deployment_settings or effective_settings(environment, version.model)
    check_secret_refs(environment, wanted)
    try:
        with transaction.atomic():
            rollout = Rollout.objects.create(
                environment=environment,
                model=version.model,
                version=version,
                build=build,
                image=build.digest_reference,
                kind=kind,
                replaces=replaces,
                requested_by=requested_by,
                reason=reason[:500],
                deployment_settings=wanted,
            )
            supervision.enqueue_on_commit(rollout, run_rollout, rollout.pk)
    except IntegrityError:
        running = (
            Rollout.objects.filter(environment=environment, model=version.model, state__in=RolloutState.active())
            .select_related("version")
            .first()
        )
        detail = (
            f"rollout #{running.pk} of {running.version.display_name} is still {running.state}"
            if running
            else "another rollout is in progress"
        )
        raise ValidationError(
            f"{version.model.name} cannot be deployed to {environment.name} now: {detail}. Wait for it to finish."
        ) from None
    return rollout


def check_secret_refs(environment: Environment, wanted: dict) -> None:
    """Checked again when deploying: the allow-list may have shrunk since the settings were saved."""
    try:
        check_secret_refs_allowed(wanted, environment.allowed_secret_refs)
    except SettingError as error:
        raise ValidationError({"deployment_settings": str(error)}) from None


def rollout_rollback(
    *,
    actor: Actor,
    environment: Environment,
    model: RegisteredModel,
    reason: str = "",
    break_glass_justification: str = "",
) -> Rollout:
    """Redeploy the release that ran before the current one, as a new rollout linked to it. During a
    freeze only with break-glass, unless the environment lets rollbacks through."""
    policy.require_verdict(
        actor,
        policy.rollback_verdict(actor, environment, model),
        action="rollout.rollback",
        obj=model,
        environment=environment,
    )
    with refusals_recorded(actor=actor, action="rollout.rollback", obj=model, environment=environment.name):
        current = current_release(environment, model)
        if current is None:
            raise ValidationError(f"{model.name} has no current release in {environment.name} to roll back.")
        previous = previous_release(current)
        if previous is None:
            raise ValidationError(f"{model.name} has no earlier release in {environment.name} to go back to.")
        justification = ""
        if not (environment.rollback_during_freeze and not break_glass_justification.strip()):
            justification = policy.break_glass(actor, environment, model, break_glass_justification)
    with transaction.atomic():
        rollout = queue_rollout(
            version=previous.version,
            environment=environment,
            requested_by=actor.user,
            reason=reason or f"Roll back to {previous.version.display_name}",
            kind=RolloutKind.ROLLBACK,
            replaces=current,
            build=previous.build,
        )
        record(
            actor=actor,
            action="rollout.rollback",
            obj=rollout,
            environment=environment.name,
            before={"version": current.version.number, "image": current.image},
            after={"version": previous.version.number, "image": previous.image, "break_glass": bool(justification)},
            flagged=bool(justification),
            reason=f"Break-glass during a freeze: {justification}" if justification else rollout.reason,
        )
    return rollout


def _outcome_facts(rollout: Rollout) -> dict:
    return {
        "state": rollout.state,
        "kind": rollout.kind,
        "version": rollout.version.number,
        "image": rollout.image,
        "requested_by": rollout.requested_by.get_username() if rollout.requested_by else None,
    }


def record_outcome(rollout: Rollout, *, action: str, outcome: str = "succeeded", reason: str = "", **after) -> None:
    """A rollout's end on the audit trail. The worker (the platform) acts; who asked is in `after`."""
    record(
        actor=None,
        action=action,
        obj=rollout,
        outcome=outcome,
        reason=reason,
        environment=rollout.environment.name,
        after={**_outcome_facts(rollout), **after},
    )


def release_succeeded(rollout: Rollout) -> None:
    """Make `rollout` the current release; the one it replaces is superseded or rolled back."""
    now = timezone.now()
    with transaction.atomic():
        earlier = (
            Rollout.objects.select_for_update(of=("self",))
            .select_related("environment", "version", "requested_by")
            .filter(environment=rollout.environment, model=rollout.model, state=RolloutState.SUCCEEDED)
            .exclude(pk=rollout.pk)
        )
        record_outcome(rollout, action="rollout.succeeded", endpoint=rollout.endpoint)
        for release in earlier:
            rolled_back = rollout.kind != RolloutKind.DEPLOY and rollout.replaces_id == release.pk
            release.state = RolloutState.ROLLED_BACK if rolled_back else RolloutState.SUPERSEDED
            release.ended_at = now
            release.save(update_fields=["state", "ended_at"])
            if rolled_back:
                record_outcome(release, action="rollout.rolled_back", reason=rollout.reason, by_rollout=rollout.pk)


def rollout_cancel(*, actor: Actor, rollout: Rollout) -> Rollout:
    """A queued rollout is cancelled at once; a running one is asked to stop, and its runner then puts
    the previous release back if it had changed anything (see runners.rollouts)."""
    require(actor, Action.DEPLOY, rollout, environment=rollout.environment)
    who = actor.user.get_username()
    with transaction.atomic():
        if Rollout.objects.filter(pk=rollout.pk, state=RolloutState.QUEUED).update(
            state=RolloutState.CANCELLED,
            cancel_requested=True,
            finished_at=timezone.now(),
            failure_reason=f"Cancelled by {who} before it started.",
        ):
            supervision.append_line(rollout, RolloutLogLine, f"Cancelled by {who} before it started.")
        elif not Rollout.objects.filter(pk=rollout.pk, state__in=RolloutState.running()).update(cancel_requested=True):
            rollout.refresh_from_db()
            raise ValidationError(f"Rollout #{rollout.pk} has already finished ({rollout.get_state_display()}).")
        record(
            actor=actor,
            action="rollout.cancel",
            obj=rollout,
            environment=rollout.environment.name,
            before={"state": rollout.state},
        )
    rollout.refresh_from_db()
    return rollout


def target_changed(rollout: Rollout, release: Rollout) -> bool:
    """Does the cluster or host still run `release`, or did `rollout` change it? Read from the target
    itself, so the answer holds for a runner that failed and for a worker that died alike. When the
    target cannot be read, assume it changed: a needless rollback costs less than a wrong release."""
    try:
        live = target_for(rollout.environment).live_state(identity_for(rollout.environment, rollout.model))
    except (targets.TargetError, targets.TransientTargetError) as exc:
        logger.warning(
            "rollout %s: cannot read what %s runs (%s); assuming it changed", rollout.pk, rollout.environment, exc
        )
        return True
    return live.image != release.image


def auto_rollback(failed: Rollout, say: Callable[[str], None] = logger.info) -> Rollout | None:
    """After a failed or cancelled deploy, put the previous release back when the environment asks for it
    and the deploy actually changed what runs there."""
    if not failed.environment.auto_rollback or failed.kind != RolloutKind.DEPLOY:
        return None
    current = current_release(failed.environment, failed.model)
    if current is None or current.image == failed.image:
        return None
    if not target_changed(failed, current):
        say(f"{failed.environment.name} still runs {current.version.display_name}: nothing to roll back")
        return None
    try:
        replacement = queue_rollout(
            version=current.version,
            environment=failed.environment,
            requested_by=None,
            reason=f"Automatic rollback after rollout #{failed.pk} {failed.get_state_display().lower()}",
            kind=RolloutKind.AUTO_ROLLBACK,
            replaces=failed,
            build=current.build,
        )
    except ValidationError as exc:
        logger.warning("no automatic rollback after rollout %s: %s", failed.pk, exc.messages)
        return None
    say(f"Rolling back automatically to {replacement.version.display_name} (rollout #{replacement.pk})")
    return replacement


def reap_stale_rollouts() -> tuple[list[Rollout], int]:
    """Fail rollouts whose worker died or that no worker ever started; enqueue again the queued ones
    whose message may be lost. Returns the rollouts failed here (the caller rolls them back) and the
    number enqueued again."""
    reaped = supervision.reap_stale(
        Rollout,
        RolloutLogLine,
        running_states=RolloutState.running(),
        failed_state=RolloutState.FAILED,
        stale_after=settings.BUILD_STALE_AFTER,
        what="rollout",
    )
    expired = supervision.expire_queued(
        Rollout, RolloutLogLine, queued_state=RolloutState.QUEUED, failed_state=RolloutState.FAILED, what="rollout"
    )
    requeued = supervision.requeue(Rollout.objects.filter(state=RolloutState.QUEUED), run_rollout)
    return reaped + expired, requeued
