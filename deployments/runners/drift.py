"""Drift: does what runs in each environment still match the recorded release?

Someone may `kubectl set image` or `docker stop` behind the platform's back; the environment
page and the API then say "drifted" or "missing" instead of pretending all is well.
"""

import logging

from django.utils import timezone

from deployments import targets
from deployments.models import Drift, Environment, Rollout, RolloutState
from deployments.services.environments import target_for

logger = logging.getLogger(__name__)


def digest_of(image: str) -> str:
    return image.split("@", 1)[1] if "@" in image else image


def compare(release: Rollout, live: "targets.LiveState") -> tuple[str, str]:
    if not live.exists:
        return Drift.MISSING, f"{release.resource_name} is not running in {release.environment.name}."
    if digest_of(live.image) != digest_of(release.image):
        return Drift.DRIFTED, f"Running {live.image}, but the release is {release.image}."
    wanted = release.deployment_settings.get("replicas")
    if (
        not release.deployment_settings.get("autoscaling")
        and wanted is not None
        and live.replicas != wanted
        and release.environment.target == "kubernetes"
    ):
        return Drift.DRIFTED, f"{live.replicas} replicas instead of {wanted}."
    return Drift.IN_SYNC, ""


def check_environment(environment: Environment) -> dict[str, int]:
    counts = {state: 0 for state in Drift.values}
    releases = list(
        Rollout.objects.filter(environment=environment, state=RolloutState.SUCCEEDED).select_related(
            "model__team", "environment"
        )
    )
    if not releases:
        return counts
    try:
        target = target_for(environment)
    except (targets.TargetError, targets.TransientTargetError) as exc:
        # One environment with broken credentials must not stop the check of the others.
        logger.warning("drift check of %s skipped: %s", environment.name, exc)
        return counts
    for release in releases:
        try:
            live = target.live_state(release.resource_name)
        except (targets.TargetError, targets.TransientTargetError) as exc:
            logger.warning("drift check of %s in %s failed: %s", release.resource_name, environment.name, exc)
            continue
        drift, detail = compare(release, live)
        Rollout.objects.filter(pk=release.pk, state=RolloutState.SUCCEEDED).update(
            drift=drift, drift_detail=detail[:500], drift_checked_at=timezone.now()
        )
        counts[drift] += 1
    return counts


def check_all() -> dict[str, dict[str, int]]:
    return {env.name: check_environment(env) for env in Environment.objects.all()}
