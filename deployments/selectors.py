"""Reads for builds and registries, restricted to what the user may see."""

from django.db.models import OuterRef, Q, QuerySet, Subquery

from accounts.models import Membership, Role
from accounts.permissions import restrict
from deployments.models import Build, ContainerRegistry


def build_list(*, user) -> QuerySet:
    return (
        restrict(Build.objects.all(), user)
        .select_related("version__model__team", "started_by", "registry")
        .defer("bill_of_materials")
    )


def latest_builds_for_versions(version_ids) -> dict[int, Build]:
    """The newest build of each version, in one query (for version tables)."""
    newest = Build.objects.filter(version=OuterRef("version")).order_by("-created_at").values("pk")[:1]
    builds = Build.objects.filter(version_id__in=list(version_ids), pk=Subquery(newest)).defer("bill_of_materials")
    return {build.version_id: build for build in builds}


def registry_list(*, user) -> QuerySet:
    """Admins of a team see its registry; every signed-in user sees that a global one exists."""
    registries = ContainerRegistry.objects.select_related("team")
    if user.is_superuser:
        return registries
    admin_of = Membership.objects.filter(user=user, role=Role.ADMIN).values("team_id")
    return registries.filter(Q(team_id__in=admin_of) | Q(team__isnull=True))
