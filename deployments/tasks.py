"""Celery tasks: an id in, one call out. The logic lives in runners and services."""

from celery import shared_task
from django.conf import settings

from deployments.runners import builds as build_runner
from deployments.runners import rollouts as rollout_runner
from deployments.services import builds, drift, notifications, promotions, rollouts


@shared_task(acks_late=True, soft_time_limit=settings.BUILD_TIMEOUT + 60, time_limit=settings.BUILD_TIMEOUT + 120)
def run_build(build_id: int, **_ignored) -> None:
    # Unknown keyword arguments are ignored so a newer producer does not break an older worker.
    build_runner.execute(build_id=build_id)


@shared_task(acks_late=True, soft_time_limit=settings.ROLLOUT_TIMEOUT + 60, time_limit=settings.ROLLOUT_TIMEOUT + 120)
def run_rollout(rollout_id: int, **_ignored) -> None:
    rollout_runner.execute(rollout_id=rollout_id)


@shared_task(soft_time_limit=60)
def reap_stale_builds() -> dict:
    return builds.reap_stale_builds()


@shared_task(soft_time_limit=60)
def reap_stale_rollouts() -> int:
    return rollouts.reap_stale_rollouts()


@shared_task(soft_time_limit=300)
def check_drift() -> dict:
    return drift.check_all()


@shared_task(soft_time_limit=60)
def expire_promotions() -> int:
    return promotions.expire_promotions()


@shared_task(
    bind=True,
    acks_late=True,
    soft_time_limit=30,
    autoretry_for=(Exception,),
    retry_backoff=2,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def deliver_webhook(self, delivery_id: int, **_ignored) -> None:
    notifications.deliver(delivery_id)
