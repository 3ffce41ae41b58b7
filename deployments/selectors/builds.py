"""Reads of builds, restricted to what the user may see."""

from django.core.exceptions import ValidationError
from django.db.models import OuterRef, QuerySet, Subquery

from accounts.permissions import restrict
from deployments.models import Build, BuildState
from registry.models import ModelVersion


def build_list(*, user) -> QuerySet[Build]:
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


def deployable_build(version: ModelVersion) -> Build:
    """The version's newest successful build: its image is what a deploy or a promotion takes."""
    build = version.builds.filter(state=BuildState.SUCCEEDED).exclude(image_digest="").order_by("-finished_at").first()
    if build is None:
        raise ValidationError({"version": f"{version.display_name} has no successful build yet; build it first."})
    return build
