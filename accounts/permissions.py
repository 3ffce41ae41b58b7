"""Who may do what: one policy for the HTML views, the API, the services and the templates.

`decide(actor, action, obj, environment=...)` answers "may this principal take this action on this
object" and says why, in plain words. It takes into account:
- the object's own team (a global object, team None, is administered by site administrators only);
- for any action into an environment, that environment: a team's environment takes only that team's
  models, a global one only the teams it grants a role to (none when it grants none), each at most
  with its granted role (`Environment.role_cap`);
- an API token's scopes and its team and environment limits.

Querysets are narrowed through the same rules (`restrict(queryset, user, action)`, as NetBox does), so an
object of another team is simply not found (404) and its existence is not revealed; a refusal of an
object the user may see is a 403 with the reason. `require()` raises that refusal and puts it on the
audit trail.
"""

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.db.models.signals import post_delete, post_save

from accounts.models import ROLE_RANK, ApiToken, Membership, Role, Team, TokenScope
from audit.services import client_ip, record


class Action(StrEnum):
    VIEW = "view"
    CREATE_MODEL = "create_model"
    CHANGE_MODEL = "change_model"
    ARCHIVE_MODEL = "archive_model"
    UPLOAD_VERSION = "upload_version"
    START_BUILD = "start_build"
    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    REQUEST_PROMOTION = "request_promotion"
    CANCEL_PROMOTION = "cancel_promotion"
    APPROVE = "approve"
    BREAK_GLASS = "break_glass"
    MANAGE_TEAM = "manage_team"


MINIMUM_ROLE: dict[Action, Role] = {
    Action.VIEW: Role.VIEWER,
    Action.CREATE_MODEL: Role.DEVELOPER,
    Action.CHANGE_MODEL: Role.DEVELOPER,
    Action.ARCHIVE_MODEL: Role.ADMIN,
    Action.UPLOAD_VERSION: Role.DEVELOPER,
    Action.START_BUILD: Role.DEVELOPER,
    Action.DEPLOY: Role.DEVELOPER,
    Action.ROLLBACK: Role.DEVELOPER,
    Action.REQUEST_PROMOTION: Role.DEVELOPER,
    Action.CANCEL_PROMOTION: Role.DEVELOPER,
    Action.APPROVE: Role.APPROVER,
    Action.BREAK_GLASS: Role.ADMIN,
    Action.MANAGE_TEAM: Role.ADMIN,
}

# What each action is called in a sentence ("Deploying needs the developer role ...").
ACTION_WORDS: dict[Action, str] = {
    Action.VIEW: "seeing this",
    Action.CREATE_MODEL: "registering a model",
    Action.CHANGE_MODEL: "changing a model",
    Action.ARCHIVE_MODEL: "archiving a model",
    Action.UPLOAD_VERSION: "uploading a version",
    Action.START_BUILD: "building or cancelling an image build",
    Action.DEPLOY: "deploying",
    Action.ROLLBACK: "rolling back",
    Action.REQUEST_PROMOTION: "requesting a promotion",
    Action.CANCEL_PROMOTION: "cancelling a promotion request",
    Action.APPROVE: "approving or rejecting a promotion",
    Action.BREAK_GLASS: "overriding a freeze window (break-glass)",
    Action.MANAGE_TEAM: "administering the team",
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
    Action.ROLLBACK: "rollout.rollback",
    Action.REQUEST_PROMOTION: "promotion.request",
    Action.CANCEL_PROMOTION: "promotion.cancel",
    Action.APPROVE: "promotion.approve",
    Action.BREAK_GLASS: "freeze.break_glass",
    Action.MANAGE_TEAM: "team.manage",
}

# The scope an API token needs for each action. Team management and break-glass are for people, signed in.
REQUIRED_SCOPE: dict[Action, TokenScope | None] = {
    Action.VIEW: TokenScope.READ,
    Action.CREATE_MODEL: TokenScope.DEPLOY,
    Action.CHANGE_MODEL: TokenScope.DEPLOY,
    Action.ARCHIVE_MODEL: TokenScope.DEPLOY,
    Action.UPLOAD_VERSION: TokenScope.DEPLOY,
    Action.START_BUILD: TokenScope.DEPLOY,
    Action.DEPLOY: TokenScope.DEPLOY,
    Action.ROLLBACK: TokenScope.DEPLOY,
    Action.REQUEST_PROMOTION: TokenScope.DEPLOY,
    Action.CANCEL_PROMOTION: TokenScope.DEPLOY,
    Action.APPROVE: TokenScope.APPROVE,
    Action.BREAK_GLASS: None,
    Action.MANAGE_TEAM: None,
}

# Set by accounts.authentication on the user of a request made with an API token, so that every
# query narrowed through this module (and the audit trail's own) honours the token's limits.
REQUEST_TOKEN_ATTRIBUTE = "request_token"  # noqa: S105  an attribute name, not a secret


def token_of(user) -> ApiToken | None:
    token = getattr(user, REQUEST_TOKEN_ATTRIBUTE, None)
    return token if isinstance(token, ApiToken) else None


# Bumped by every membership saved or deleted in this process, so that a request which changes a role
# and then checks one again reads the roles anew.
_membership_generation = 0


def _membership_changed(**kwargs) -> None:
    global _membership_generation  # a process-wide counter, read by RequestRoles
    _membership_generation += 1


post_save.connect(_membership_changed, sender=Membership, dispatch_uid="accounts.permissions.roles")
post_delete.connect(_membership_changed, sender=Membership, dispatch_uid="accounts.permissions.roles")


class RequestRoles:
    """A user's role in each of their teams, read in one query at the first check of a request and
    kept for the rest of it (an upload checks the same team three times). Read anew after a membership
    changed in this process; another process's change is seen by the next request."""

    def __init__(self, user) -> None:
        self.user = user
        self._roles: dict[int, Role] | None = None
        self._teams: dict[str, Team] | None = None  # by slug, read only when a team is asked for by name
        self._generation = -1

    def role_in(self, team: Team) -> Role | None:
        if self.user.is_superuser:
            return Role.ADMIN
        if self._roles is None or self._generation != _membership_generation:
            self._read(with_teams=False)
        assert self._roles is not None
        return self._roles.get(team.pk)

    def visible_team(self, slug: str) -> Team | None:
        """The team of that slug when the user (and the request's token) may see it, else None, as
        `visible_teams(user).filter(slug=slug)` answers. A member's teams come with the roles, in the
        same query: naming a team and then acting in it (creating a model) reads the memberships once."""
        conditions = _narrowing(self.user, Action.VIEW, "")
        if conditions is None:
            return None
        if self.user.is_superuser:
            return Team.objects.filter(slug=slug, **conditions).first()
        if self._teams is None or self._generation != _membership_generation:
            self._read(with_teams=True)
        assert self._teams is not None
        team = self._teams.get(slug)
        # The membership condition is met by where the team came from; the token's teams are the other.
        if team is None or ("pk__in" in conditions and team.pk not in conditions["pk__in"]):
            return None
        return team

    def _read(self, *, with_teams: bool) -> None:
        self._generation = _membership_generation
        if with_teams:
            memberships = list(Membership.objects.filter(user=self.user).select_related("team"))
            self._roles = {membership.team_id: Role(membership.role) for membership in memberships}
            self._teams = {membership.team.slug: membership.team for membership in memberships}
        else:
            self._roles = roles_by_team(self.user)
            self._teams = None


REQUEST_ROLES_ATTRIBUTE = "_slipway_roles"


def request_roles(request) -> RequestRoles:
    """The roles memo of a request's user, shared by every Actor made from that request."""
    request = getattr(request, "_request", request)  # DRF's Request wraps Django's
    roles = getattr(request, REQUEST_ROLES_ATTRIBUTE, None)
    user = request.user
    if roles is None or roles.user is not user:
        roles = RequestRoles(user)
        setattr(request, REQUEST_ROLES_ATTRIBUTE, roles)
    return roles


@dataclass(frozen=True)
class Actor:
    """The person behind a request, and the API token they used, if any."""

    user: Any  # a User, or AnonymousUser for a request nobody signed in to
    token: ApiToken | None = None
    ip_address: str | None = None
    user_agent: str = ""
    # An actor of a request reads the user's roles once for the whole request; any other (a worker's,
    # a test's) asks the database at each check.
    roles: RequestRoles | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_request(cls, request) -> "Actor":
        auth = getattr(request, "auth", None)
        return cls(
            user=request.user,
            token=auth if isinstance(auth, ApiToken) else token_of(request.user),
            ip_address=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:500],
            roles=request_roles(request) if request.user.is_authenticated else None,
        )


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    # Refused for now only (a freeze, say), though the role allows it: pages show the action disabled,
    # with the reason on hover, where they hide an action the role never allows.
    held: bool = False
    # Allowed through an active freeze only with a break-glass justification: pages ask for one.
    break_glass: bool = False

    def __bool__(self) -> bool:
        return self.allowed


class Refused(PermissionDenied):
    """A refusal already put on the audit trail (the middleware records the others), with its event."""

    recorded = True

    def __init__(self, message: str, *, event=None):
        super().__init__(message)
        self.audit_event = event


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


def team_of(obj) -> Team | None:
    """The team an object belongs to, following its model's TEAM_LOOKUP; None for a global object."""
    if obj is None or isinstance(obj, Team):
        return obj
    target = obj
    for name in obj.TEAM_LOOKUP.split("__"):
        target = getattr(target, name)
        if target is None:
            return None
    return target


def _words(action: Action) -> str:
    text = ACTION_WORDS[action]
    return text[0].upper() + text[1:]


def token_refusal(token: ApiToken, action: Action, team: Team | None, environment) -> str | None:
    scope = REQUIRED_SCOPE[action]
    if scope is None:
        return f"{_words(action)} cannot be done with an API token; sign in to the web UI"
    if not token.has_scope(scope):
        return f"the API token '{token.name}' lacks the '{scope}' scope, which {ACTION_WORDS[action]} needs"
    if token.team_ids and team is not None and team.pk not in token.team_ids:
        return f"the API token '{token.name}' is limited to other teams than '{team.slug}'"
    if environment is not None and not token.allows_environment(environment.name):
        return f"the API token '{token.name}' is limited to other environments than '{environment.name}'"
    return None


def decide(actor: Actor, action: Action, obj, *, environment=None, role: Role | None = None) -> Decision:
    """Whether the actor may take the action on `obj` (a team, or an object of a team), and why.

    `environment`: for an action into an environment (deploy, roll back, request, approve, break-glass).
    `role`: the user's role in the object's team when the caller already knows it (list pages)."""
    user = actor.user
    if not user.is_authenticated or not user.is_active:
        return Decision(False, "you are not signed in")
    team = team_of(obj)
    token = actor.token
    if token is not None:
        refusal = token_refusal(token, action, team, environment)
        if refusal:
            return Decision(False, refusal)
    if team is None:  # a global object (an environment or registry every team uses)
        if user.is_superuser:
            return Decision(True, "site administrator")
        return Decision(False, f"{ACTION_WORDS[action]} on a global object is for site administrators only")
    cap = None
    if environment is not None:
        cap = environment.role_cap(team)
        if cap is None:
            if environment.team_id:
                reason = f"environment '{environment.name}' belongs to team '{environment.team.slug}'; "
                reason += f"team '{team.slug}' has no role there"
            else:
                reason = f"global environment '{environment.name}' grants no role to team '{team.slug}', so the "
                reason += "team has no role there (site administrators grant roles on the environment's page)"
            return Decision(False, reason)
    if user.is_superuser:
        return Decision(True, "site administrator")
    role = role or (actor.roles.role_in(team) if actor.roles is not None else role_in(user, team))
    if role is None:
        return Decision(False, f"you are not a member of team '{team.slug}'")
    needed = MINIMUM_ROLE[action]
    if ROLE_RANK[role] < ROLE_RANK[needed]:
        return Decision(
            False,
            f"{ACTION_WORDS[action]} needs the {needed.label.lower()} role in team '{team.slug}'; "
            f"you are {'an' if role.label[0] in 'AEIOUaeiou' else 'a'} {role.label.lower()} there",
        )
    if cap is not None and ROLE_RANK[cap] < ROLE_RANK[needed]:
        return Decision(
            False,
            f"{ACTION_WORDS[action]} in '{environment.name}' needs the {needed.label.lower()} role there; "
            f"team '{team.slug}' is granted {Role(cap).label.lower()} at most",
        )
    where = f" (in {environment.name})" if environment is not None else ""
    return Decision(True, f"{role.label.lower()} in team '{team.slug}'{where}")


def require(actor: Actor, action: Action, target, *, obj=None, environment=None) -> Decision:
    """Raise PermissionDenied with the reason, and put the refused attempt on the audit trail.
    `target` is what the policy decides on (a team or an object); `obj` what the trail names."""
    decision = decide(actor, action, target, environment=environment)
    if not decision:
        team = team_of(target)
        event = record(
            actor=actor,
            action=AUDIT_NAME[action],
            obj=obj or target,
            outcome="refused",
            reason=decision.reason,
            team_id=team.pk if team is not None else None,
            environment=environment.name if environment is not None else "",
        )
        raise Refused(f"You may not do this: {decision.reason}.", event=event)
    return decision


def _narrowing(user, action: Action, team_path: str) -> dict[str, Any] | None:
    """The filter that keeps the rows of the teams where the user's role (and the request's API token)
    allows the action, for rows whose team is at `team_path` ("" for teams themselves); None: no row.

    A join on the user's membership, not a subquery of teams: a user has one membership per team, so no
    row is repeated, and the query is half as long to build (most of a short API read)."""
    if not user.is_authenticated:
        return None
    at = f"{team_path}__" if team_path else ""
    conditions: dict[str, Any] = {}
    if not user.is_superuser:
        conditions[f"{at}memberships__user"] = user
        needed = ROLE_RANK[MINIMUM_ROLE[action]]
        if needed > min(ROLE_RANK.values()):  # else any membership will do
            conditions[f"{at}memberships__role__in"] = [role for role, rank in ROLE_RANK.items() if rank >= needed]
    token = token_of(user)
    if token is not None:
        scope = REQUIRED_SCOPE[action]
        if scope is None or (action != Action.VIEW and not token.has_scope(scope)):
            return None
        if token.team_ids:
            conditions[f"{team_path}__in" if team_path else "pk__in"] = token.team_ids
    return conditions


def teams_where(user, action: Action) -> QuerySet[Team]:
    """The teams in which the user's role (and the API token of the request) allows the action."""
    conditions = _narrowing(user, action, "")
    return Team.objects.none() if conditions is None else Team.objects.filter(**conditions)


def admin_teams(user) -> QuerySet[Team]:
    return teams_where(user, Action.MANAGE_TEAM)


def manages_any_team(user) -> bool:
    return user.is_authenticated and (user.is_superuser or admin_teams(user).exists())


def visible_teams(user) -> QuerySet[Team]:
    return teams_where(user, Action.VIEW)


def restrict(queryset: QuerySet, user, action: Action = Action.VIEW) -> QuerySet:
    """Only the rows of teams where the user (and the request's token) may take the action, and, for a
    token limited to some environments, only the rows of those. Each model names its path to the team
    in TEAM_LOOKUP, and to its environment's name in ENVIRONMENT_LOOKUP when it has one."""
    conditions = _narrowing(user, action, queryset.model.TEAM_LOOKUP)
    if conditions is None:
        return queryset.none()
    return within_token_environments(queryset.filter(**conditions) if conditions else queryset, user)


def within_token_environments(queryset: QuerySet, user) -> QuerySet:
    """A token limited to some environments reads nothing of the others: their rollouts, releases,
    logs, drift, requests, nor the environments themselves (restrict() applies it to every model with
    an ENVIRONMENT_LOOKUP; environments shared by every team are listed through this alone)."""
    token = token_of(user)
    lookup = getattr(queryset.model, "ENVIRONMENT_LOOKUP", None)
    if token is None or not token.environment_names or lookup is None:
        return queryset
    return queryset.filter(**{f"{lookup}__in": token.environment_names})
