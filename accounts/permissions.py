"""Who may do what, in one place for the HTML views, the API and the services.

Two questions, always in this order:
1. Can the user see the object at all? Querysets are restricted to the teams the user belongs to,
   so an object of another team is simply not found (404) and its existence is not revealed.
2. May the user perform this action on it? A role (and, for API tokens, a scope) decides; a
   refusal carries the reason, which the API returns and the "can I" endpoint explains.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet

from accounts.models import ROLE_RANK, ApiToken, Membership, Role, Team, TokenScope
from audit.services import record


class Action(StrEnum):
    VIEW = "view"
    CREATE_MODEL = "create_model"
    CHANGE_MODEL = "change_model"
    ARCHIVE_MODEL = "archive_model"
    UPLOAD_VERSION = "upload_version"
    START_BUILD = "start_build"
    DEPLOY = "deploy"
    REQUEST_PROMOTION = "request_promotion"
    APPROVE = "approve"
    MANAGE_TEAM = "manage_team"


MINIMUM_ROLE: dict[Action, Role] = {
    Action.VIEW: Role.VIEWER,
    Action.CREATE_MODEL: Role.DEVELOPER,
    Action.CHANGE_MODEL: Role.DEVELOPER,
    Action.ARCHIVE_MODEL: Role.ADMIN,
    Action.UPLOAD_VERSION: Role.DEVELOPER,
    Action.START_BUILD: Role.DEVELOPER,
    Action.DEPLOY: Role.DEVELOPER,
    Action.REQUEST_PROMOTION: Role.DEVELOPER,
    Action.APPROVE: Role.APPROVER,
    Action.MANAGE_TEAM: Role.ADMIN,
}

# How a refused action is named on the audit trail ("<object>.<verb>", like the changes themselves).
AUDIT_NAME: dict[Action, str] = {
    Action.VIEW: "team.view",
    Action.CREATE_MODEL: "model.create",
    Action.CHANGE_MODEL: "model.update",
    Action.ARCHIVE_MODEL: "model.archive",
    Action.UPLOAD_VERSION: "version.create",
    Action.START_BUILD: "build.start",
    Action.DEPLOY: "rollout.start",
    Action.REQUEST_PROMOTION: "promotion.request",
    Action.APPROVE: "promotion.approve",
    Action.MANAGE_TEAM: "team.manage",
}

# The scope an API token needs for each action. Team management is for people, not scripts.
REQUIRED_SCOPE: dict[Action, TokenScope | None] = {
    Action.VIEW: TokenScope.READ,
    Action.CREATE_MODEL: TokenScope.DEPLOY,
    Action.CHANGE_MODEL: TokenScope.DEPLOY,
    Action.ARCHIVE_MODEL: TokenScope.DEPLOY,
    Action.UPLOAD_VERSION: TokenScope.DEPLOY,
    Action.START_BUILD: TokenScope.DEPLOY,
    Action.DEPLOY: TokenScope.DEPLOY,
    Action.REQUEST_PROMOTION: TokenScope.DEPLOY,
    Action.APPROVE: TokenScope.APPROVE,
    Action.MANAGE_TEAM: None,
}


@dataclass(frozen=True)
class Actor:
    """The person behind a request, and the API token they used, if any."""

    user: Any  # a User, or AnonymousUser for a request nobody signed in to
    token: ApiToken | None = None
    ip_address: str | None = None
    user_agent: str = ""

    @classmethod
    def from_request(cls, request) -> "Actor":
        auth = getattr(request, "auth", None)
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        return cls(
            user=request.user,
            token=auth if isinstance(auth, ApiToken) else None,
            ip_address=(forwarded.split(",")[0].strip() or request.META.get("REMOTE_ADDR")) or None,
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:500],
        )


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


def role_in(user, team: Team) -> Role | None:
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return Role.ADMIN
    role = Membership.objects.filter(team=team, user=user).values_list("role", flat=True).first()
    return Role(role) if role else None


def roles_by_team(user) -> dict[int, Role]:
    """Every team id the user belongs to, with the role, in one query (for list pages)."""
    if not user.is_authenticated:
        return {}
    return {
        team_id: Role(role) for team_id, role in Membership.objects.filter(user=user).values_list("team_id", "role")
    }


def decide(actor: Actor, action: Action, team: Team, *, role: Role | None = None) -> Decision:
    """Whether the actor may perform the action in the team, and why."""
    user = actor.user
    if not user.is_authenticated or not user.is_active:
        return Decision(False, "you are not signed in")
    if actor.token is not None:
        scope = REQUIRED_SCOPE[action]
        if scope is None:
            return Decision(False, f"'{action}' cannot be done with an API token; use the web UI")
        if not actor.token.has_scope(scope):
            return Decision(False, f"the API token '{actor.token.name}' lacks the '{scope}' scope")
        limited_to = {t.pk for t in actor.token.teams.all()}
        if limited_to and team.pk not in limited_to:
            return Decision(False, f"the API token '{actor.token.name}' is limited to other teams")
    if user.is_superuser:
        return Decision(True, "site administrator")
    role = role or role_in(user, team)
    needed = MINIMUM_ROLE[action]
    if role is None:
        return Decision(False, f"you are not a member of team '{team.slug}'")
    if ROLE_RANK[role] < ROLE_RANK[needed]:
        return Decision(
            False,
            f"'{action}' needs the {needed.label.lower()} role in team '{team.slug}'; you are a {role.label.lower()}",
        )
    return Decision(True, f"{role.label.lower()} in team '{team.slug}'")


def require(actor: Actor, action: Action, team: Team, *, obj=None) -> None:
    """Raise PermissionDenied with the reason, and put the refused attempt on the audit trail."""
    decision = decide(actor, action, team)
    if not decision:
        record(
            actor=actor,
            action=AUDIT_NAME[action],
            obj=obj or team,
            outcome="refused",
            reason=decision.reason,
            team_id=team.pk,
        )
        raise PermissionDenied(f"You may not do this: {decision.reason}.")


def require_admin(actor: Actor, team: Team | None, *, global_refusal: str) -> None:
    """A team's objects are administered by its admins; global ones (team None) by site administrators,
    signed in to the web UI (never with an API token)."""
    if team is None:
        if not (actor.user.is_authenticated and actor.user.is_superuser) or actor.token is not None:
            raise PermissionDenied(global_refusal)
    else:
        require(actor, Action.MANAGE_TEAM, team)


def is_team_admin(user, team: Team | None) -> bool:
    """Whether the user administers the team; a global object (team None) only site administrators do."""
    if not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    return team is not None and Membership.objects.filter(user=user, team=team, role=Role.ADMIN).exists()


def teams_where(user, action: Action) -> QuerySet[Team]:
    """The teams in which the user's role allows the action (every team for a site administrator)."""
    if user.is_authenticated and user.is_superuser:
        return Team.objects.all()
    if not user.is_authenticated:
        return Team.objects.none()
    enough = [role for role, rank in ROLE_RANK.items() if rank >= ROLE_RANK[MINIMUM_ROLE[action]]]
    return Team.objects.filter(memberships__user=user, memberships__role__in=enough)


def admin_teams(user) -> QuerySet[Team]:
    return teams_where(user, Action.MANAGE_TEAM)


def manages_any_team(user) -> bool:
    return user.is_authenticated and (user.is_superuser or admin_teams(user).exists())


def visible_teams(user) -> QuerySet[Team]:
    if user.is_authenticated and user.is_superuser:
        return Team.objects.all()
    if not user.is_authenticated:
        return Team.objects.none()
    return Team.objects.filter(memberships__user=user)


def restrict(queryset: QuerySet, user) -> QuerySet:
    """Only the rows of teams the user belongs to. Each model names its path to the team."""
    if user.is_authenticated and user.is_superuser:
        return queryset
    if not user.is_authenticated:
        return queryset.none()
    lookup = queryset.model.TEAM_LOOKUP
    team_ids = Membership.objects.filter(user=user).values("team_id")
    return queryset.filter(**{f"{lookup}__in": team_ids})
