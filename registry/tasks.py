"""Celery tasks of the registry: an id in, one call out (see deployments/tasks.py for why imports are inside)."""

from celery import shared_task
from django.conf import settings


@shared_task(acks_late=True, soft_time_limit=settings.INSPECTION_TIMEOUT, time_limit=settings.INSPECTION_TIMEOUT + 30)
def inspect_version(version_id: int, **_ignored) -> None:
    from registry import services

    services.version_inspect(version_id=version_id)


@shared_task(soft_time_limit=60)
def reinspect_stuck() -> int:
    from registry import services

    return services.reinspect_stuck()
