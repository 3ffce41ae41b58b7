"""Reads of container registries."""

from django.db.models import Q, QuerySet

from accounts.permissions import admin_teams
from deployments.models import ContainerRegistry


def registry_list(*, user) -> QuerySet[ContainerRegistry]:
    """Admins of a team see its registry; every signed-in user sees that a global one exists."""
    registries = ContainerRegistry.objects.select_related("team")
    if user.is_superuser:
        return registries
    return registries.filter(Q(team__in=admin_teams(user)) | Q(team__isnull=True))


def registry_for(team) -> ContainerRegistry | None:
    """Where a team's images go: its own registry, else the global one."""
    return (
        ContainerRegistry.objects.filter(team=team).first()
        or ContainerRegistry.objects.filter(team__isnull=True).first()
    )
