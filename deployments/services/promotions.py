"""Promotions into protected environments: request, approve or reject, expire, deploy.

Decisions are made under a row lock on the request, so two approvers clicking at the same
instant, double clicks and concurrent API calls count exactly once each, and the N-th approval
queues exactly one rollout. Refusals are recorded on the audit trail after the transaction that
found them, so they are kept even though nothing changed.
"""

from datetime import timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.permissions import Action, Actor, decide, require
from audit.services import record
from config.errors import Conflict
from deployments import policy
from deployments.models import (
    Approval,
    ApprovalDecision,
    Environment,
    PromotionRequest,
    PromotionState,
    Rollout,
    RolloutState,
)
from deployments.selectors.comparisons import decision_context
from deployments.selectors.environments import effective_settings
from deployments.services import notifications
from deployments.services.refusals import refusals_recorded
from deployments.services.rollouts import check_secret_refs, queue_rollout
from registry.models import ModelVersion

# -- requesting -------------------------------------------------------------------------------


def promotion_request(
    *, actor: Actor, version: ModelVersion, environment: Environment, reason: str, break_glass_justification: str = ""
) -> PromotionRequest:
    """Ask for a version's image to go to a protected environment. A break-glass justification is taken
    only while a freeze is active, from an admin of the environment's team; it lets the approved request
    through that same freeze, never a later one."""
    team = version.model.team
    require(actor, Action.REQUEST_PROMOTION, version, environment=environment)  # records its own refusals
    with refusals_recorded(
        actor=actor, action="promotion.request", obj=version, team_id=team.pk, environment=environment.name
    ):
        if not environment.protected:
            raise ValidationError({"environment": f"'{environment.name}' is not protected: deploy to it directly."})
        if not reason.strip():
            raise ValidationError({"reason": "Say why this version should go to " + environment.name + "."})
        build = policy.check_release(actor, version, environment)
        justification = policy.break_glass(actor, environment, version, break_glass_justification)
        image = build.digest_reference
        frozen = effective_settings(environment, version.model)
        check_secret_refs(environment, frozen)
    promotion = PromotionRequest(
        environment=environment,
        model=version.model,
        version=version,
        build=build,
        image=image,
        requested_by=actor.user,
        requested_with_token=actor.token.name if actor.token else "",
        reason=reason.strip(),
        required_approvals=environment.required_approvals,
        expires_at=timezone.now() + timedelta(hours=environment.approval_expiry_hours),
        break_glass_justification=justification,
        deployment_settings=frozen,
    )
    promotion.decision_context = decision_context(promotion)
    try:
        with transaction.atomic():
            promotion.save(force_insert=True)
            record(
                actor=actor,
                action="promotion.request",
                obj=promotion,
                environment=environment.name,
                after={
                    "version": version.number,
                    "image": image,
                    "reason": promotion.reason,
                    "deployment_settings": frozen,
                },
                flagged=bool(justification),
                reason=f"Break-glass during a freeze: {justification}" if justification else "",
            )
            notifications.promotion_event("promotion.requested", promotion)
    except IntegrityError:
        existing = PromotionRequest.objects.filter(
            environment=environment, model=version.model, state=PromotionState.PENDING
        ).first()
        raise ValidationError(
            f"{version.model.name} already has a pending promotion to {environment.name}"
            + (f" (request #{existing.pk}); cancel it first." if existing else ".")
        ) from None
    return promotion


# -- deciding ---------------------------------------------------------------------------------------


class StaleDecision(Conflict):
    """The approver decided on a page that showed another image than the request is bound to now."""


def promotion_approve(*, actor: Actor, promotion: PromotionRequest, digest: str, comment: str = "") -> PromotionRequest:
    """Approve the image the approver saw: `digest` (sha256:…, or the image by digest) must be the one the
    request is bound to now; otherwise StaleDecision (409) and nothing is recorded."""
    return _decide(actor, promotion, ApprovalDecision.APPROVE, comment, digest)


def promotion_reject(
    *, actor: Actor, promotion: PromotionRequest, comment: str = "", digest: str = ""
) -> PromotionRequest:
    return _decide(actor, promotion, ApprovalDecision.REJECT, comment, digest)


def _decide(actor: Actor, promotion: PromotionRequest, decision: str, comment: str, digest: str) -> PromotionRequest:
    action = f"promotion.{decision}"
    refusal = None
    with transaction.atomic():
        locked = (
            PromotionRequest.objects.select_for_update(of=("self",))
            .select_related("environment", "model__team", "version", "build", "requested_by")
            .get(pk=promotion.pk)
        )
        refusal = _decision_refusal(actor, locked, decision, comment)
        seen = digest.strip().split("@")[-1]
        if refusal is None and decision == ApprovalDecision.APPROVE and not seen:
            raise ValidationError(
                {"digest": "The form was incomplete: it did not say which image you approve. Reload the request."}
            )
        if refusal is None and seen and seen != locked.digest:
            raise StaleDecision(
                f"Request #{locked.pk} now asks for image {locked.digest[:19]}…, not the one you saw "
                f"({seen[:19]}…): the version was rebuilt. Reload the request and decide again."
            )
        if refusal is None:
            _apply_decision(actor, locked, decision, comment)
            record(
                actor=actor,
                action=action,
                obj=locked,
                environment=locked.environment.name,
                reason=comment,
                after={"state": locked.state, "approvals": _approval_count(locked), "digest": locked.digest},
            )
            notifications.promotion_event(
                f"promotion.{locked.state}" if locked.state != PromotionState.PENDING else "promotion.approval_added",
                locked,
            )
    if refusal is not None:
        record(
            actor=actor,
            action=action,
            obj=promotion,
            outcome="refused",
            reason=policy.reason_of(refusal),
            environment=promotion.environment.name,
        )
        setattr(refusal, "recorded", True)  # noqa: B010  the API and pages record it no second time
        raise refusal
    return locked


def _decision_refusal(actor, promotion, decision, comment):
    # Who may decide comes first: a viewer is told about the role they lack, not the request's state.
    verdict = policy.approver_verdict(actor, promotion)
    if not verdict:
        return PermissionDenied(f"You may not decide this request: {verdict.reason}.")
    if promotion.state == PromotionState.PENDING and promotion.expires_at <= timezone.now():
        _expire(promotion)
    if promotion.state != PromotionState.PENDING:
        return ValidationError(f"Request #{promotion.pk} is {promotion.state}; it can no longer be decided.")
    if decision == ApprovalDecision.APPROVE:
        vulnerabilities = policy.vulnerability_verdict(promotion.environment, promotion.build)
        if not vulnerabilities:
            return ValidationError(f"This image may not go to {promotion.environment.name}: {vulnerabilities.reason}.")
    if decision == ApprovalDecision.REJECT and promotion.environment.reject_requires_comment and not comment.strip():
        return ValidationError({"comment": "Say why you reject it: a comment is required."})
    if promotion.approvals.filter(approver=actor.user, digest=promotion.digest).exists():
        return ValidationError("You have already decided on this request for this image.")
    return None


def _apply_decision(actor, promotion, decision, comment) -> None:
    Approval.objects.create(
        request=promotion,
        approver=actor.user,
        decision=decision,
        digest=promotion.digest,
        comment=comment.strip(),
        token_name=actor.token.name if actor.token else "",
        context=decision_context(promotion),
    )
    now = timezone.now()
    if decision == ApprovalDecision.REJECT:
        promotion.state, promotion.decided_at = PromotionState.REJECTED, now
        promotion.note = f"Rejected by {actor.user.get_username()}."
    elif _approval_count(promotion) >= promotion.required_approvals:
        promotion.state, promotion.decided_at = PromotionState.APPROVED, now
        promotion.note = "Approved; deploying."
        _deploy(promotion)
    promotion.save()


def _approval_count(promotion: PromotionRequest) -> int:
    # Only approvals of the digest the request is bound to now count: a rebuild voids the others.
    return promotion.approvals.filter(decision=ApprovalDecision.APPROVE, digest=promotion.digest).count()


def _held_by_freeze(promotion: PromotionRequest) -> str:
    """Why an approved request may not deploy now because of a freeze ("" when it may). The requester's
    break-glass counts only for the freeze that was already active when they filed it."""
    window = policy.active_freeze(promotion.environment)
    if window is None:
        return ""
    if promotion.break_glass_justification and window.starts_at <= promotion.created_at:
        return ""
    return (
        f"Approved, but {promotion.environment.name} is frozen until "
        f"{window.ends_at:%Y-%m-%d %H:%M} ({window.reason}); deploy it after, or an admin of the "
        f"environment's team deploys it now with a break-glass justification."
    )


def _deploy(promotion: PromotionRequest, *, break_glass: str = "") -> None:
    """Queue the rollout of an approved request, unless a gate holds it; the note says which."""
    held = "" if break_glass else _held_by_freeze(promotion)
    if held:
        promotion.note = held
        return
    # The image may have changed since the request was filed (a rebuild): its gates are run again.
    stage = policy.previous_stage_verdict(promotion.environment, promotion.version, promotion.image)
    if not stage:
        promotion.note = f"Approved, but not deployed: {stage.reason}."
        return
    try:
        promotion.rollout = queue_rollout(
            version=promotion.version,
            environment=promotion.environment,
            requested_by=promotion.requested_by,
            reason=f"Promotion #{promotion.pk}: {promotion.reason}"[:500],
            build=promotion.build,
            # What the approvers approved, whatever was changed in the environment since.
            deployment_settings=promotion.deployment_settings or None,
        )
    except ValidationError as exc:
        promotion.note = "Approved, but not deployed: " + " ".join(exc.messages)
        return
    if break_glass:
        promotion.note = "Deploying through a freeze window (break-glass)."


def promotion_deploy(
    *, actor: Actor, promotion: PromotionRequest, break_glass_justification: str = ""
) -> PromotionRequest:
    """Deploy an approved request that could not deploy at once (a freeze, a rollout in progress). It
    needs the developer role in the environment; during a freeze, break-glass by an admin of the
    environment's team (or the requester's, for the freeze that was already active when they filed it)."""
    environment = promotion.environment
    require(actor, Action.DEPLOY, promotion, environment=environment)
    # Refused, not "succeeded" with nothing deployed: a freeze that holds the request is the rollouts'
    # freeze gate (a justification from an admin of the team, or refused naming the freeze).
    with refusals_recorded(actor=actor, action="promotion.deploy", obj=promotion, environment=environment.name):
        justification = ""
        if break_glass_justification.strip() or _held_by_freeze(promotion):
            justification = policy.break_glass(actor, environment, promotion, break_glass_justification)
        with transaction.atomic():
            locked = (
                PromotionRequest.objects.select_for_update(of=("self",))
                .select_related("environment", "version", "build", "model__team", "requested_by")
                .get(pk=promotion.pk)
            )
            if locked.state != PromotionState.APPROVED or locked.rollout_id:
                raise ValidationError(f"Request #{locked.pk} has nothing left to deploy ({locked.state}).")
            _deploy(locked, break_glass=justification)
            if not locked.rollout_id:  # another gate held it (a rollout in progress, an earlier stage)
                raise ValidationError(locked.note)
            if justification:
                locked.break_glass_justification = justification
            locked.save()
            record(
                actor=actor,
                action="promotion.deploy",
                obj=locked,
                environment=locked.environment.name,
                after={"rollout": locked.rollout_id, "note": locked.note, "break_glass": bool(justification)},
                flagged=bool(justification),
                reason=f"Break-glass during a freeze: {justification}" if justification else "",
            )
    return locked


def promotion_cancel(*, actor: Actor, promotion: PromotionRequest) -> PromotionRequest:
    policy.require_verdict(
        actor,
        policy.cancel_verdict(actor, promotion),
        action="promotion.cancel",
        obj=promotion,
        environment=promotion.environment,
    )
    with transaction.atomic():
        if not PromotionRequest.objects.filter(pk=promotion.pk, state=PromotionState.PENDING).update(
            state=PromotionState.CANCELLED,
            decided_at=timezone.now(),
            note=f"Cancelled by {actor.user.get_username()}.",
        ):
            raise ValidationError(f"Request #{promotion.pk} is no longer pending.")
        record(actor=actor, action="promotion.cancel", obj=promotion, environment=promotion.environment.name)
    promotion.refresh_from_db()
    return promotion


# -- housekeeping -------------------------------------------------------------------------------


def _expire(promotion: PromotionRequest) -> None:
    promotion.state, promotion.decided_at = PromotionState.EXPIRED, timezone.now()
    promotion.note = "Expired before enough approvals arrived."
    promotion.save(update_fields=["state", "decided_at", "note"])
    record(
        actor=None,
        action="promotion.expire",
        obj=promotion,
        environment=promotion.environment.name,
        after={"state": "expired"},
    )
    notifications.promotion_event("promotion.expired", promotion)


def expire_promotions() -> int:
    expired = 0
    for pk in PromotionRequest.objects.filter(state=PromotionState.PENDING, expires_at__lte=timezone.now()).values_list(
        "pk", flat=True
    ):
        with transaction.atomic():
            promotion = (
                PromotionRequest.objects.select_for_update(of=("self",)).select_related("environment").get(pk=pk)
            )
            if promotion.state == PromotionState.PENDING:
                _expire(promotion)
                expired += 1
    return expired


def rebind_to_new_build(build) -> int:
    """A rebuild changed the version's digest: pending requests follow it, and the approvals given
    for the old digest stop counting (they approved something else). The new image goes through every
    gate again, as if the request were filed now: a request it fails is cancelled, saying why."""
    rebound = 0
    for promotion in (
        PromotionRequest.objects.filter(version=build.version, state=PromotionState.PENDING)
        .exclude(image=build.digest_reference)
        .select_related("environment", "version__model__team", "requested_by")
    ):
        before = promotion.image
        requester = Actor(user=promotion.requested_by)
        allowed = decide(requester, Action.REQUEST_PROMOTION, promotion, environment=promotion.environment)
        stage = policy.previous_stage_verdict(promotion.environment, promotion.version, build.digest_reference)
        failed = allowed if not allowed else stage if not stage else None
        with transaction.atomic():
            if failed is not None:
                promotion.state, promotion.decided_at = PromotionState.CANCELLED, timezone.now()
                promotion.note = f"The image was rebuilt and the new one cannot be promoted: {failed.reason}."
                promotion.save(update_fields=["state", "decided_at", "note"])
            else:
                promotion.build, promotion.image = build, build.digest_reference
                promotion.note = "The image was rebuilt: earlier approvals are void."
                promotion.decision_context = decision_context(promotion)
                promotion.save(update_fields=["build", "image", "note", "decision_context"])
            record(
                actor=None,
                action="promotion.rebind",
                obj=promotion,
                environment=promotion.environment.name,
                outcome="succeeded" if failed is None else "refused",
                before={"image": before},
                after={"image": build.digest_reference, "state": promotion.state},
                reason=promotion.note,
            )
        rebound += 1
    return rebound


def release_deployed(rollout: Rollout) -> None:
    """The rollout of an approved request finished: the request is deployed (or says why not)."""
    promotion = PromotionRequest.objects.filter(rollout=rollout).first()
    if promotion is None:
        return
    if rollout.state == RolloutState.SUCCEEDED:
        PromotionRequest.objects.filter(pk=promotion.pk, state=PromotionState.APPROVED).update(
            state=PromotionState.DEPLOYED, note="Deployed."
        )
        notifications.promotion_event("promotion.deployed", promotion)
    else:
        PromotionRequest.objects.filter(pk=promotion.pk).update(note=f"The rollout failed: {rollout.failure_reason}")
        notifications.promotion_event("promotion.deploy_failed", promotion)
