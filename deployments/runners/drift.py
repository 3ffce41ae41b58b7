"""Drift: does what runs in each environment still match the recorded release?

Someone may `kubectl set image` or `docker stop` behind the platform's back; the environment
page and the API then say "drifted" or "missing" instead of pretending all is well.
"""

import logging

from django.utils import timezone

from deployments import targets
from deployments.models import Drift, Environment, Rollout, RolloutState, TargetKind
from deployments.selectors.rollouts import earlier_releases_here
from deployments.services.environments import identity_for, own_summary, target_for

logger = logging.getLogger(__name__)


def digest_of(image: str) -> str:
    return image.split("@", 1)[1] if "@" in image else image


def compare(release: Rollout, live: "targets.LiveState") -> tuple[str, str]:
    """The release's drift state and, unless in sync, why: what runs is compared with what was released."""
    where = release.environment.name
    if not live.exists:
        return Drift.MISSING, f"{release.model.name} does not run in {where}: {live.detail}".rstrip(": ")
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
    if live.ready < max(live.replicas, 1):
        return Drift.UNHEALTHY, live.detail or f"{live.ready} of {live.replicas} answer ready in {where}."
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
        target = target_for(environment, quick=True)
    except (targets.TargetError, targets.TransientTargetError) as exc:
        # One environment with broken credentials must not stop the check of the others.
        logger.warning("drift check of %s skipped: %s", environment.name, exc)
        unobserved(releases, f"Not checked: {own_summary(str(exc))}")
        counts[Drift.UNKNOWN] += len(releases)
        return counts
    busy = set(
        Rollout.objects.filter(environment=environment, state__in=RolloutState.active()).values_list(
            "model_id", flat=True
        )
    )
    for release in releases:
        if release.model_id in busy:
            continue  # a rollout is replacing it right now: its new container is not drift
        try:
            identity = identity_for(environment, release.model)
            if environment.target == TargetKind.DOCKER:
                # After an upgrade, the release may still run in a container an older Slipway made.
                live = target.live_state(identity, adopt=earlier_releases_here(release, itself=True))
            else:
                live = target.live_state(identity)
        except (targets.TargetError, targets.TransientTargetError) as exc:
            # What cannot be observed is not claimed to be in sync (nor anything else).
            logger.warning("drift check of %s in %s failed: %s", release.model, environment.name, exc)
            unobserved([release], f"Not checked: {own_summary(str(exc))}")
            counts[Drift.UNKNOWN] += 1
            continue
        drift, detail = compare(release, live)
        Rollout.objects.filter(pk=release.pk, state=RolloutState.SUCCEEDED).update(
            drift=drift, drift_detail=detail[:500], drift_checked_at=timezone.now()
        )
        counts[drift] += 1
    return counts


def unobserved(releases: list[Rollout], detail: str) -> None:
    Rollout.objects.filter(pk__in=[r.pk for r in releases], state=RolloutState.SUCCEEDED).update(
        drift=Drift.UNKNOWN, drift_detail=detail[:500], drift_checked_at=timezone.now()
    )


def check_all() -> dict[str, dict[str, int]]:
    return {env.name: check_environment(env) for env in Environment.objects.all()}
