"""Reads of rollouts: what runs where now, what ran before, and what ran at any moment."""

from datetime import datetime

from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from accounts.permissions import restrict
from deployments.models import Environment, Rollout, RolloutState
from registry.models import RegisteredModel


def rollout_list(*, user) -> QuerySet[Rollout]:
    return restrict(
        Rollout.objects.select_related("environment", "model__team", "version", "requested_by"), user
    ).order_by("-created_at")


def current_release(environment: Environment, model: RegisteredModel) -> Rollout | None:
    return Rollout.objects.filter(environment=environment, model=model, state=RolloutState.SUCCEEDED).first()


def current_releases(model: RegisteredModel) -> list[Rollout]:
    """Every environment's current release of the model, in promotion order."""
    return list(
        Rollout.objects.filter(model=model, state=RolloutState.SUCCEEDED)
        .select_related("environment", "version", "requested_by")
        .order_by("environment__position")
    )


def previous_release(current: Rollout) -> Rollout | None:
    """The release before `current` in the same environment, running another image."""
    return (
        Rollout.objects.filter(
            environment=current.environment,
            model=current.model,
            state__in=RolloutState.released(),
            finished_at__lt=current.finished_at,
        )
        .exclude(image=current.image)
        .select_related("version", "build")
        .order_by("-finished_at")
        .first()
    )


def releases_at(environment: Environment, when: datetime | None = None) -> QuerySet[Rollout]:
    """What ran in the environment at `when` (now by default): per model, the last release that
    had finished rolling out by then."""
    when = when or timezone.now()
    released = Rollout.objects.filter(environment=environment, state__in=RolloutState.released(), finished_at__lte=when)
    latest_of_its_model = released.filter(model=OuterRef("model")).order_by("-finished_at").values("pk")[:1]
    return (
        released.filter(pk=Subquery(latest_of_its_model))
        .select_related("model__team", "version", "requested_by", "environment", "build")
        .prefetch_related("promotion__approvals__approver")
        .order_by("model__name")
    )
