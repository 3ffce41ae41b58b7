"""Reads of container registries."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import F, Q, QuerySet

from accounts.permissions import admin_teams
from deployments.imaging.sources import ImageSources
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
        ContainerRegistry.objects.filter(Q(team=team) | Q(team__isnull=True))
        .order_by(F("team_id").asc(nulls_last=True), "name")
        .first()
    )


def image_sources_for(team) -> ImageSources:
    """The images a team's builds and prebuilt versions may use: the configured base images, everything
    in a registry the team owns, and the team's own path in the global registry. The engine's cache
    and the platform's registry credentials serve every team, so nothing else is reachable."""
    prefixes = [
        registry.url.rstrip("/") + "/"
        if registry.team_id == team.pk
        else registry.repository_for(team.slug, "").rstrip("/") + "/"
        for registry in ContainerRegistry.objects.filter(Q(team=team) | Q(team__isnull=True))
    ]
    return ImageSources(base_images=(settings.BASE_IMAGE, *settings.BUILD_BASE_IMAGES), own_prefixes=tuple(prefixes))


def check_image_reference(sender, team, reference: str, **kwargs) -> None:
    """Receiver of registry.services.image_reference_checking: a prebuilt image must be the team's own."""
    sources = image_sources_for(team)
    if not sources.allows(reference):
        raise ValidationError(
            {"image_reference": f"{reference} is not in your team's repositories; allowed: {sources.describe()}."}
        )
