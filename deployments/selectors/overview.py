"""Reads for the overview: every model by every environment, and the latest activity, in a fixed number of queries."""

from itertools import chain

from django.db.models import Max
from django.urls import reverse

from accounts.permissions import restrict
from deployments.models import Build, PromotionRequest, PromotionState, Rollout, RolloutState
from deployments.selectors.vulnerabilities import vulnerable_since_release
from registry.models import RegisteredModel

ACTIVITY_ITEMS = 15
MAX_MODELS = 500


def overview_models(user, team: str):
    models = (
        restrict(RegisteredModel.objects.filter(archived=False), user)
        .select_related("team")
        .annotate(latest_number=Max("versions__number"))
        .order_by("team__slug", "name")
    )
    return models.filter(team__slug=team) if team else models


def url_pattern(name: str) -> str:
    """A reversed URL with a placeholder for the id: reversing a thousand times is the page's cost."""
    return reverse(name, args=[987654321]).replace("987654321", "{}")


def matrix(models, environments, user):
    """Rows of (model, [cell per environment]); a fixed number of queries whatever the size."""
    rollout_url, promotion_url = url_pattern("deployments:rollout-detail"), url_pattern("deployments:promotion-detail")
    model_ids = [m.pk for m in models]
    current = {
        (r.model_id, r.environment_id): r
        for r in Rollout.objects.filter(model_id__in=model_ids, state=RolloutState.SUCCEEDED)
        .select_related("version")
        .only(
            "pk",
            "model_id",
            "environment_id",
            "build_id",
            "image",
            "finished_at",
            "drift",
            "drift_detail",
            "version__number",
        )
    }
    vulnerable = vulnerable_since_release(current.values())
    active = {
        (r.model_id, r.environment_id): r
        for r in Rollout.objects.filter(model_id__in=model_ids, state__in=RolloutState.active())
        .select_related("version")
        .only("pk", "model_id", "environment_id", "state", "version__number")
    }
    pending = {
        (p.model_id, p.environment_id): p
        for p in PromotionRequest.objects.filter(model_id__in=model_ids, state=PromotionState.PENDING)
        .select_related("version")
        .only("pk", "model_id", "environment_id", "version__number")
    }
    failed = {
        (r.model_id, r.environment_id): r
        for r in Rollout.objects.filter(model_id__in=model_ids, state=RolloutState.FAILED)
        .order_by("model_id", "environment_id", "created_at")
        .only("pk", "model_id", "environment_id", "created_at")
    }
    model_url = reverse("model-detail", args=["TEAM-SLUG", "MODEL-NAME"])
    rows = []
    for model in models:
        model.url = model_url.replace("TEAM-SLUG", model.team.slug).replace("MODEL-NAME", model.name)
        cells = []
        for environment in environments:
            key = (model.pk, environment.pk)
            release, running = current.get(key), active.get(key)
            last_failure = failed.get(key)
            waiting = pending.get(key)
            failure = (
                last_failure
                if last_failure and (release is None or last_failure.created_at > release.finished_at)
                else None
            )
            cells.append(
                {
                    "environment": environment,
                    "release": release,
                    "vulnerable": vulnerable.get(release.pk) if release else None,
                    "active": running,
                    "pending": waiting,
                    "failed": failure,
                    "release_url": rollout_url.format(release.pk) if release else "",
                    "active_url": rollout_url.format(running.pk) if running else "",
                    "failed_url": rollout_url.format(failure.pk) if failure else "",
                    "pending_url": promotion_url.format(waiting.pk) if waiting else "",
                }
            )
        rows.append((model, cells))
    return rows


def recent_activity(user) -> list[dict]:
    rollouts = restrict(
        Rollout.objects.select_related("model", "version", "environment", "requested_by"), user
    ).order_by("-created_at")[:ACTIVITY_ITEMS]
    builds = restrict(
        Build.objects.select_related("version__model", "started_by").defer("bill_of_materials"), user
    ).order_by("-created_at")[:ACTIVITY_ITEMS]
    promotions = restrict(
        PromotionRequest.objects.select_related("model", "version", "environment", "requested_by"), user
    ).order_by("-created_at")[:ACTIVITY_ITEMS]
    items = chain(
        ({"kind": "rollout", "at": r.created_at, "object": r} for r in rollouts),
        ({"kind": "build", "at": b.created_at, "object": b} for b in builds),
        ({"kind": "promotion", "at": p.created_at, "object": p} for p in promotions),
    )
    return sorted(items, key=lambda item: item["at"], reverse=True)[:ACTIVITY_ITEMS]
