"""The rules of deploying, in one place: freeze windows, the previous stage, who may approve a promotion,
and what must hold before a version's image goes to an environment (directly or through a promotion).

Services call these before they change anything; pages, the API and `can-i` ask the same functions
for their verdicts, so they never disagree about a rule.
"""

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.utils import timezone

from accounts.models import ROLE_RANK
from accounts.permissions import MINIMUM_ROLE, Action, Actor, Decision, decide, is_team_admin
from deployments.models import Build, Environment, FreezeWindow, PromotionRequest, Rollout, RolloutState
from deployments.selectors.builds import deployable_build
from deployments.selectors.environments import environment_list
from deployments.selectors.vulnerabilities import blocking_findings
from registry.models import ModelVersion

# -- freeze windows ------------------------------------------------------------------------------------


def active_freeze(environment: Environment, when=None) -> FreezeWindow | None:
    when = when or timezone.now()
    return environment.freeze_windows.filter(starts_at__lte=when, ends_at__gt=when).first()


def check_freeze(actor: Actor, environment: Environment, team, justification: str) -> None:
    window = active_freeze(environment)
    if window is None:
        return
    if not justification.strip():
        raise ValidationError(
            {
                "environment": f"{environment.name} is frozen until {window.ends_at:%Y-%m-%d %H:%M} "
                f"({window.reason}). An admin may override with a justification."
            }
        )
    if not is_team_admin(actor.user, team) or actor.token is not None:
        raise PermissionDenied(f"{environment.name} is frozen; only an admin, signed in, may override the freeze.")


def direct_deploy_verdict(environment: Environment) -> Decision:
    """Whether the environment takes a deploy without a promotion right now, and why not."""
    if environment.protected:
        return Decision(False, f"{environment.name} is protected: deploying needs an approved promotion")
    freeze = active_freeze(environment)
    if freeze:
        return Decision(False, f"{environment.name} is frozen until {freeze.ends_at:%Y-%m-%d %H:%M} ({freeze.reason})")
    return Decision(True, f"{environment.name} takes direct deploys")


# -- the previous stage ---------------------------------------------------------------------------------


def previous_stage(environment: Environment, team) -> Environment | None:
    return (
        Environment.objects.filter(position__lt=environment.position)
        .filter(Q(team=team) | Q(team__isnull=True))
        .order_by("-position")
        .first()
    )


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


# -- approvers --------------------------------------------------------------------------------------------


def approver_verdict(actor: Actor, promotion: PromotionRequest, *, role=None) -> Decision:
    """May this person (or token) approve this request, and why. `role`: the user's role in the
    model's team when the caller already knows it (lists)."""
    user = actor.user
    if not user.is_authenticated:
        return Decision(False, "you are not signed in")
    if actor.token is not None:
        if not actor.token.has_scope("approve"):
            return Decision(False, f"the API token '{actor.token.name}' lacks the 'approve' scope")
        if not actor.token.allows_environment(promotion.environment.name):
            return Decision(False, f"the API token '{actor.token.name}' is limited to other environments")
    if user.pk == promotion.requested_by_id:
        return Decision(False, "you requested this promotion; someone else must approve it")
    groups = list(promotion.environment.approver_groups.all())
    if groups:
        if user.groups.filter(pk__in=[g.pk for g in groups]).exists():
            return Decision(True, f"member of the approver group {', '.join(g.name for g in groups)}")
        return Decision(
            False, f"only members of {', '.join(g.name for g in groups)} approve in {promotion.environment.name}"
        )
    decision = decide(actor, Action.APPROVE, promotion.model.team, role=role)
    return Decision(decision.allowed, decision.reason)


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


def who_may_approve(promotion: PromotionRequest) -> dict:
    """Who may decide the request, in words and by name, for its page. The same rule as
    approver_verdict: the environment's approver groups if it names any, otherwise the team's approvers
    and admins (and site administrators); never the person who asked."""
    groups = list(promotion.environment.approver_groups.all())
    User = get_user_model()
    if groups:
        rule = f"members of {', '.join(g.name for g in groups)}"
        people = User.objects.filter(groups__in=groups, is_active=True)
    else:
        rule = f"approvers and admins of team {promotion.model.team.slug}, and site administrators"
        ranks = [role for role, rank in ROLE_RANK.items() if rank >= ROLE_RANK[MINIMUM_ROLE[Action.APPROVE]]]
        people = User.objects.filter(
            Q(memberships__team=promotion.model.team, memberships__role__in=ranks) | Q(is_superuser=True),
            is_active=True,
        )
    names = sorted(set(people.exclude(pk=promotion.requested_by_id).values_list("username", flat=True)))
    return {"rule": rule, "people": names, "needed": promotion.required_approvals}


# -- before an image goes to an environment ----------------------------------------------------------------


def check_environment(actor: Actor, environment: Environment) -> None:
    """The environment is one the actor's teams deploy to, and their API token (if any) reaches it."""
    if not environment_list(user=actor.user).filter(pk=environment.pk).exists():
        raise ValidationError({"environment": "No such environment for this team."})
    if actor.token is not None and not actor.token.allows_environment(environment.name):
        raise PermissionDenied(f"The API token '{actor.token.name}' is limited to other environments.")


def check_release(actor: Actor, version: ModelVersion, environment: Environment, justification: str) -> Build:
    """The version has an image to deploy, it passed the stage before, the environment's vulnerability
    policy lets it in, and no freeze forbids it (an admin's justification aside). Returns the build whose
    image goes."""
    build = deployable_build(version)
    stage = previous_stage_verdict(environment, version, build.digest_reference)
    if not stage:
        raise ValidationError({"version": stage.reason[0].upper() + stage.reason[1:] + "."})
    vulnerabilities = vulnerability_verdict(environment, build)
    if not vulnerabilities:
        raise ValidationError({"version": vulnerabilities.reason[0].upper() + vulnerabilities.reason[1:] + "."})
    check_freeze(actor, environment, version.model.team, justification)
    return build


def reason_of(refusal: Exception) -> str:
    """A refusal's text as the audit trail keeps it."""
    if isinstance(refusal, ValidationError):
        return " ".join(refusal.messages)
    return str(refusal)
