"""Reads of environments: which ones a user sees, and the settings a model runs with in one."""

from django.db.models import Q, QuerySet

from accounts.permissions import visible_teams
from deployments.models import Environment, ModelEnvironmentSettings
from registry.models import RegisteredModel


def environment_list(*, user) -> QuerySet[Environment]:
    """Environments a user can deploy to or look at: the global ones and their teams' own."""
    if user.is_authenticated and user.is_superuser:
        return Environment.objects.select_related("team")
    return Environment.objects.select_related("team").filter(Q(team__isnull=True) | Q(team__in=visible_teams(user)))


def effective_settings(environment: Environment, model: RegisteredModel) -> dict:
    override = (
        ModelEnvironmentSettings.objects.filter(environment=environment, model=model)
        .values_list("deployment_settings", flat=True)
        .first()
    )
    return environment.settings_for(model, override)
