"""Reads of rollouts: what runs where now, what ran before, and what ran at any moment."""

from datetime import datetime

from django.db.models import F, OuterRef, Q, QuerySet, Subquery, Window
from django.db.models.functions import RowNumber
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.permissions import restrict
from deployments.models import Environment, Rollout, RolloutState
from registry.models import RegisteredModel


def rollout_list(*, user) -> QuerySet[Rollout]:
    return restrict(
        Rollout.objects.select_related("environment", "model__team", "version", "requested_by"), user
    ).order_by("-created_at")


def current_release(environment: Environment, model: RegisteredModel) -> Rollout | None:
    return Rollout.objects.filter(environment=environment, model=model, state=RolloutState.SUCCEEDED).first()


def earlier_releases_here(rollout: Rollout, *, itself: bool = False) -> tuple[tuple[int, str], ...]:
    """(id, image) of the model's earlier releases in the rollout's environment (and of the rollout, if
    `itself`): the rollouts whose containers, made by an older Slipway without identity labels, belong to
    this environment (targets.DeploySpec.adopt; the drift check looks at them too)."""
    return tuple(
        Rollout.objects.filter(
            Q(pk__lte=rollout.pk) if itself else Q(pk__lt=rollout.pk),
            environment_id=rollout.environment_id,
            model_id=rollout.model_id,
            state__in=[RolloutState.SUCCEEDED, RolloutState.SUPERSEDED],
        )
        .exclude(image="")
        .order_by("pk")
        .values_list("pk", "image")
    )


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


def moment(text: str) -> datetime | None:
    """The time `releases_at` is asked about, from ISO 8601 text (naive: the server's zone); None when
    the text is not one, or names a day or hour that does not exist (February 30th, 25:00)."""
    try:
        when = parse_datetime(text.strip())
    except ValueError:
        return None
    if when is not None and timezone.is_naive(when):
        when = timezone.make_aware(when)
    return when


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


def attempts_beside(environment: Environment, when: datetime | None = None, *, user) -> dict[int, list[Rollout]]:
    """Per model, the attempts that never ran (failed) or were undone (rolled back) beside what ran
    at `when`: those that ended after the release before the one running then, up to `when` (every
    one, for a model with at most one release by then). Two queries, whatever the history."""
    when = when or timezone.now()
    # Per model, the release before the latest one by `when`: where its window of attempts starts.
    window_start: dict[int, datetime] = {
        model_id: finished_at
        for model_id, finished_at in Rollout.objects.filter(
            environment=environment, state__in=RolloutState.released(), finished_at__lte=when
        )
        .annotate(rank=Window(RowNumber(), partition_by=[F("model_id")], order_by=F("finished_at").desc()))
        .filter(rank=2)
        .values_list("model_id", "finished_at")
        if finished_at is not None
    }
    undone = restrict(Rollout.objects.filter(environment=environment), user).filter(
        Q(state=RolloutState.FAILED, finished_at__lte=when) | Q(state=RolloutState.ROLLED_BACK, ended_at__lte=when)
    )
    if window_start:
        earliest = min(window_start.values())
        undone = undone.filter(
            ~Q(model_id__in=list(window_start)) | Q(finished_at__gt=earliest) | Q(ended_at__gt=earliest)
        )
    found: dict[int, list[Rollout]] = {}
    for attempt in undone.select_related("model__team", "version", "requested_by").order_by("-finished_at"):
        start = window_start.get(attempt.model_id)
        ended = attempt.ended_at if attempt.state == RolloutState.ROLLED_BACK else attempt.finished_at
        if start is None or (ended is not None and ended > start):
            found.setdefault(attempt.model_id, []).append(attempt)
    return found
