"""Reads of environments: which ones a user sees, and the settings a model runs with in one."""

from django.db.models import Q, QuerySet

from accounts.permissions import visible_teams, within_token_environments
from deployments.models import Environment, EnvironmentGrant, ModelEnvironmentSettings
from registry.models import RegisteredModel


def environment_list(*, user) -> QuerySet[Environment]:
    """Environments a user can deploy to or look at: their teams' own, and the global ones granting one of
    their teams a role (a global environment's address and settings are not every team's to read)."""
    environments = Environment.objects.select_related("team")
    if not (user.is_authenticated and user.is_superuser):
        teams = visible_teams(user)
        granted = EnvironmentGrant.objects.filter(team__in=teams).values("environment")
        environments = environments.filter(Q(team__in=teams) | Q(team__isnull=True, pk__in=granted))
    return within_token_environments(environments, user)


def environments_of_team(environments: QuerySet[Environment], *, user, team: str) -> QuerySet[Environment]:
    """Of `environments`, those a team's models deploy to: its own and the global ones granting it a role.
    A team the user does not see has none, so a grant does not reveal that team."""
    teams = visible_teams(user).filter(slug=team)
    return environments.filter(Q(team__in=teams) | Q(team__isnull=True, grants__team__in=teams))


def grants_shown(environment: Environment, *, user, visible_team_ids: set[int] | None = None) -> list[EnvironmentGrant]:
    """The roles a global environment grants, to the teams the user sees: another team's existence stays
    hidden. Reads prefetched `grants__team` when a list loaded them; `visible_team_ids` when the caller
    looked them up already."""
    if visible_team_ids is None:
        visible_team_ids = set(visible_teams(user).values_list("pk", flat=True))
    return sorted(
        (grant for grant in environment.grants.all() if grant.team_id in visible_team_ids), key=lambda g: g.team.slug
    )


def effective_settings(environment: Environment, model: RegisteredModel) -> dict:
    override = (
        ModelEnvironmentSettings.objects.filter(environment=environment, model=model)
        .values_list("deployment_settings", flat=True)
        .first()
    )
    return environment.settings_for(model, override)
