"""Reads for the model registry, already restricted to what the user may see."""

from django.db.models import Count, Max, OuterRef, Q, QuerySet, Subquery
from django.shortcuts import get_object_or_404

from accounts.permissions import restrict
from registry.models import ModelVersion, RegisteredModel


def model_list(*, user, search: str = "", team: str = "", include_archived: bool = False) -> QuerySet:
    latest = ModelVersion.objects.filter(model=OuterRef("pk")).order_by("-number")
    models = (
        restrict(RegisteredModel.objects.all(), user)
        .select_related("team", "created_by")
        .annotate(
            version_count=Count("versions"),
            latest_number=Max("versions__number"),
            latest_created_at=Subquery(latest.values("created_at")[:1]),
            latest_framework=Subquery(latest.values("framework")[:1]),
        )
    )
    if search:
        models = models.filter(Q(name__icontains=search) | Q(description__icontains=search) | Q(task__icontains=search))
    if team:
        models = models.filter(team__slug=team)
    if not include_archived:
        models = models.filter(archived=False)
    return models.order_by("team__slug", "name")


def models_visible(*, user) -> QuerySet:
    """The models the user may see, each with its team, without the counts of `model_list`."""
    return restrict(RegisteredModel.objects.select_related("team"), user)


def model_get(*, user, team: str, name: str) -> RegisteredModel:
    return get_object_or_404(models_visible(user=user), team__slug=team, name=name)


def version_list(*, model: RegisteredModel) -> QuerySet:
    # Through the model's own manager: every version comes with `model` already set to it (no join).
    return model.versions.select_related("created_by").order_by("-number")


def version_get(*, user, team: str, name: str, number: int) -> ModelVersion:
    return get_object_or_404(
        restrict(ModelVersion.objects.select_related("model__team", "created_by"), user),
        model__team__slug=team,
        model__name=name,
        number=number,
    )


def model_by_id(*, user, pk) -> RegisteredModel | None:
    return models_visible(user=user).filter(pk=pk).first()


def version_by_id(*, user, pk) -> ModelVersion | None:
    return restrict(ModelVersion.objects.select_related("model__team"), user).filter(pk=pk).first()
