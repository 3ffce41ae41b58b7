"""Celery tasks: an id in, one call out. The logic lives in runners and services."""

from celery import shared_task
from django.conf import settings

from deployments.runners import build as build_runner
from deployments.services import builds


@shared_task(acks_late=True, soft_time_limit=settings.BUILD_TIMEOUT + 60, time_limit=settings.BUILD_TIMEOUT + 120)
def run_build(build_id: int, **_ignored) -> None:
    # Unknown keyword arguments are ignored so a newer producer does not break an older worker.
    build_runner.execute(build_id=build_id)


@shared_task(soft_time_limit=60)
def reap_stale_builds() -> dict:
    return builds.reap_stale_builds()
