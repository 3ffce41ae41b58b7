"""The rules of deploying, in one place: who may put an image into an environment (through
`accounts.permissions.decide`, which weighs the model's team, the environment's team or grants, and an
API token's scopes and limits), freeze windows and break-glass, the previous stage, four eyes, and what
must hold before a version's image goes to an environment (directly or through a promotion).

Services call these before they change anything; pages, the API and `can-i` ask the same functions
for their verdicts, so they never disagree about a rule.
"""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Q, prefetch_related_objects
from django.utils import timezone

from accounts.models import Membership, Role
from accounts.permissions import (
    Action,
    Actor,
    Decision,
    Refused,
    decide,
    require,
    role_in,
    team_of,
    token_refusal,
)
from audit.services import record
from deployments.models import (
    Build,
    Environment,
    FourEyes,
    FreezeWindow,
    PromotionRequest,
    Rollout,
    RolloutState,
)
from deployments.selectors.builds import deployable_build
from deployments.selectors.vulnerabilities import blocking_findings
from registry.models import ModelVersion, RegisteredModel

# -- freeze windows and break-glass ------------------------------------------------------------------


def active_freeze(environment: Environment, when=None) -> FreezeWindow | None:
    when = when or timezone.now()
    return environment.freeze_windows.filter(starts_at__lte=when, ends_at__gt=when).first()


def frozen_message(environment: Environment, window: FreezeWindow) -> str:
    return (
        f"{environment.name} is frozen until {window.ends_at:%Y-%m-%d %H:%M} ({window.reason}). "
        f"An admin of the environment's team may override it with a break-glass justification."
    )


def break_glass(actor: Actor, environment: Environment, obj, justification: str) -> str:
    """The freeze gate, at the moment of a deploy or rollback. Returns the break-glass justification
    used ("" when no freeze is active). Break-glass exists only while a freeze is active, and only for
    an admin of the environment's team, signed in (never with an API token): a justification given
    when nothing is frozen is refused, so none can be filed in advance for a freeze to come."""
    window = active_freeze(environment)
    justification = justification.strip()
    if window is None:
        if justification:
            raise ValidationError(
                {
                    "break_glass_justification": f"No freeze window is active in {environment.name}: "
                    f"break-glass applies only during a freeze. Leave it empty."
                }
            )
        return ""
    if not justification:
        raise ValidationError({"environment": frozen_message(environment, window)})
    require(actor, Action.BREAK_GLASS, obj, environment=environment)
    return justification


def deploy_verdicts(actor: Actor, version: ModelVersion, environments) -> dict[int, Decision]:
    """For each environment (by id): may the actor put the version there now, deploying it (unprotected)
    or requesting its promotion (protected), and if not, why. In a few queries for any number of
    environments (prefetch their `grants`): the version page asks it every second."""
    environments = list(environments)
    role = role_in(actor.user, version.model.team)
    now = timezone.now()
    frozen = {
        window.environment_id: window
        for window in FreezeWindow.objects.filter(environment__in=environments, starts_at__lte=now, ends_at__gt=now)
    }
    verdicts = {}
    for environment in environments:
        action = Action.REQUEST_PROMOTION if environment.protected else Action.DEPLOY
        decision = decide(actor, action, version, environment=environment, role=role)
        window = frozen.get(environment.pk)
        if decision and window:
            decision = _through_freeze(actor, version, environment, window, role=role)
        verdicts[environment.pk] = decision
    return verdicts


def _through_freeze(actor: Actor, version: ModelVersion, environment: Environment, window, *, role) -> Decision:
    """During a freeze, whoever may break the glass is offered it (a justification is then required,
    and recorded); everyone else is told why not."""
    if decide(actor, Action.BREAK_GLASS, version, environment=environment, role=role):
        return Decision(True, frozen_message(environment, window), break_glass=True)
    return Decision(
        False,
        f"{environment.name} is frozen until {window.ends_at:%Y-%m-%d %H:%M} ({window.reason}); only an admin "
        f"of the environment's team may go through it, with a break-glass justification",
        held=True,
    )


_NOT_LOOKED_UP = object()


def direct_deploy_verdict(environment: Environment, freeze: Any = _NOT_LOOKED_UP) -> Decision:
    """Whether the environment takes a deploy without a promotion right now, and why not. `freeze`: the
    active freeze window (or None) when the caller looked it up already."""
    if environment.protected:
        return Decision(False, f"{environment.name} is protected: deploying needs an approved promotion")
    if freeze is _NOT_LOOKED_UP:
        freeze = active_freeze(environment)
    if freeze:
        return Decision(
            False, f"{environment.name} is frozen until {freeze.ends_at:%Y-%m-%d %H:%M} ({freeze.reason})", held=True
        )
    return Decision(True, f"{environment.name} takes direct deploys")


# -- the previous stage ---------------------------------------------------------------------------------


def previous_stage(environment: Environment, team) -> Environment | None:
    """The environment before this one on the promotion path. A global environment's path is made of
    global environments only: no team can put a throwaway environment of its own in front of it."""
    before = Environment.objects.filter(position__lt=environment.position)
    if environment.team_id is None:
        before = before.filter(team__isnull=True)
    else:
        before = before.filter(Q(team=team) | Q(team__isnull=True))
    return before.order_by("-position").first()


def previous_stage_verdict(environment: Environment, version: ModelVersion, image: str) -> Decision:
    if not environment.requires_previous_stage:
        return Decision(True, "the environment does not require the previous stage")
    before = previous_stage(environment, version.model.team)
    if before is None:
        return Decision(True, "no environment comes before this one")
    ran = Rollout.objects.filter(
        environment=before, model=version.model, image=image, state__in=RolloutState.released()
    ).exists()
    if not ran:
        return Decision(
            False,
            f"this image has not succeeded in {before.name}, the stage before {environment.name}; "
            f"deploy it there first",
        )
    return Decision(True, f"the same digest succeeded in {before.name}")


# -- who may do what with a promotion -----------------------------------------------------------------


def four_eyes_verdict(user, promotion: PromotionRequest) -> Decision:
    """Nobody approves their own request; where the environment asks for it, nor the version they
    uploaded or the build they started."""
    if user.pk == promotion.requested_by_id:
        return Decision(False, "you requested this promotion; someone else must approve it")
    if promotion.environment.four_eyes == FourEyes.AUTHORS:
        if user.pk == promotion.version.created_by_id:
            return Decision(False, f"you uploaded this version; {promotion.environment.name} needs someone else")
        if user.pk == promotion.build.started_by_id:
            return Decision(False, f"you started this build; {promotion.environment.name} needs someone else")
    return Decision(True, "four eyes")


def approver_verdict(actor: Actor, promotion: PromotionRequest, *, role=None) -> Decision:
    """May this person (or token) approve or reject this request, and why. The environment decides
    who approves: its approver groups when it names some, else the approvers of the environment's team
    (for a global environment, of the teams it grants the approver role). `role`: the user's role in
    the model's team when the caller already knows it (lists)."""
    environment = promotion.environment
    groups = list(environment.approver_groups.all())
    if groups:
        # The groups replace the role; a token's scope and limits still hold.
        if not actor.user.is_authenticated:
            return Decision(False, "you are not signed in")
        refusal = token_refusal(actor.token, Action.APPROVE, team_of(promotion), environment) if actor.token else None
        if refusal:
            return Decision(False, refusal)
        if not actor.user.is_superuser and not actor.user.groups.filter(pk__in=[g.pk for g in groups]).exists():
            return Decision(False, f"only members of {', '.join(g.name for g in groups)} approve in {environment.name}")
        decision = Decision(True, f"member of the approver group {', '.join(g.name for g in groups)}")
    else:
        decision = decide(actor, Action.APPROVE, promotion, environment=environment, role=role)
        if not decision:
            return decision
    eyes = four_eyes_verdict(actor.user, promotion)
    return eyes if not eyes else decision


def cancel_verdict(actor: Actor, promotion: PromotionRequest) -> Decision:
    """The requester (with the role to request it) or an admin of the environment's team cancels."""
    if actor.user.is_authenticated and actor.user.pk == promotion.requested_by_id:
        return decide(actor, Action.CANCEL_PROMOTION, promotion, environment=promotion.environment)
    decision = decide(actor, Action.MANAGE_TEAM, promotion, environment=promotion.environment)
    if not decision:
        return Decision(False, f"only the requester or a team admin cancels a request; {decision.reason}")
    return decision


def rollback_verdict(actor: Actor, environment: Environment, model: RegisteredModel) -> Decision:
    """Rolling back needs the developer role in the environment; in a protected one, the approver role
    (going back to what already ran there needs no new request)."""
    decision = decide(actor, Action.ROLLBACK, model, environment=environment)
    if decision and environment.protected:
        decision = decide(actor, Action.APPROVE, model, environment=environment)
        if not decision:
            return Decision(False, f"rolling back in protected {environment.name}: {decision.reason}")
    return decision


def require_verdict(actor: Actor, decision: Decision, *, action: str, obj, environment: Environment) -> None:
    """Raise (and record) a refusal the functions above found."""
    if not decision:
        event = record(
            actor=actor, action=action, obj=obj, outcome="refused", reason=decision.reason, environment=environment.name
        )
        raise Refused(f"You may not do this: {decision.reason}.", event=event)


# -- known vulnerabilities --------------------------------------------------------------------------------


def vulnerability_verdict(environment: Environment, build: Build) -> Decision:
    """Whether the environment's policy lets the build's image in, given what its last scan found and
    what the environment's admins accepted for the model (until the acceptance expires)."""
    threshold = environment.block_severity
    if not threshold:
        return Decision(True, f"{environment.name} does not block on vulnerabilities")
    if build.scanned_at is None:
        return Decision(
            False, f"{environment.name} blocks {threshold} vulnerabilities and this image has not been scanned"
        )
    blocking = blocking_findings(environment, build)
    if not blocking:
        return Decision(True, f"no unaccepted finding of {threshold} severity or above")
    more = f" (and {len(blocking) - 1} more)" if len(blocking) > 1 else ""
    return Decision(
        False,
        f"{environment.name} blocks images with {threshold} vulnerabilities or worse: {blocking[0].explain()}{more}",
    )


def approvers(promotion: PromotionRequest) -> list:
    """Everyone who may decide the request: the candidates the rule names, each asked through
    approver_verdict, so the page, the emails and the decision never disagree (four eyes included)."""
    # Asked for every candidate: what they share is read once (the page refreshes itself).
    prefetch_related_objects([promotion.environment], "approver_groups", "grants")
    groups = list(promotion.environment.approver_groups.all())
    User = get_user_model()
    if groups:
        candidates = User.objects.filter(groups__in=groups, is_active=True)
    else:
        candidates = User.objects.filter(
            Q(memberships__team=promotion.model.team) | Q(is_superuser=True), is_active=True
        )
    roles = dict(Membership.objects.filter(team=promotion.model.team).values_list("user_id", "role"))
    return sorted(
        (
            user
            for user in candidates.distinct()
            if approver_verdict(Actor(user=user), promotion, role=Role(roles[user.pk]) if user.pk in roles else None)
        ),
        key=lambda user: user.get_username(),
    )


def who_may_approve(promotion: PromotionRequest) -> dict:
    """Who may decide the request, in words and by name, for its page."""
    groups = list(promotion.environment.approver_groups.all())
    if groups:
        rule = f"members of {', '.join(g.name for g in groups)}"
    else:
        rule = f"approvers and admins of team {promotion.model.team.slug}"
        if promotion.environment.team_id is None:
            rule += f" while {promotion.environment.name} grants the team the approver role or above"
        rule += ", and site administrators"
    names = [user.get_username() for user in approvers(promotion)]
    return {"rule": rule, "people": names, "needed": promotion.required_approvals}


# -- before an image goes to an environment ----------------------------------------------------------------


def check_release(actor: Actor, version: ModelVersion, environment: Environment) -> Build:
    """The version has an image to deploy, it passed the stage before, and the environment's vulnerability
    policy lets it in. Returns the build whose image goes (freezes are checked at the moment of deploy:
    see break_glass)."""
    build = deployable_build(version)
    stage = previous_stage_verdict(environment, version, build.digest_reference)
    if not stage:
        raise ValidationError({"version": stage.reason[0].upper() + stage.reason[1:] + "."})
    vulnerabilities = vulnerability_verdict(environment, build)
    if not vulnerabilities:
        raise ValidationError({"version": vulnerabilities.reason[0].upper() + vulnerabilities.reason[1:] + "."})
    return build


def reason_of(refusal: Exception) -> str:
    """A refusal's text as the audit trail keeps it."""
    if isinstance(refusal, ValidationError):
        return " ".join(refusal.messages)
    return str(refusal)
