"""Celery tasks: an id in, one call out. The logic lives in runners and services.

Services import these tasks to enqueue them after their row commits; a task imports what it calls
inside its body, so that importing a service never imports the runners (the HackSoft styleguide's way
of keeping the two apart without a cycle).
"""

import logging
import time

from celery import shared_task, signals
from django.conf import settings

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, soft_time_limit=settings.BUILD_TIMEOUT + 60, time_limit=settings.BUILD_TIMEOUT + 120)
def run_build(build_id: int, **_ignored) -> None:
    # Unknown keyword arguments are ignored so a newer producer does not break an older worker.
    from deployments.runners import builds

    builds.execute(build_id=build_id)


# Routed to settings.ROLLOUT_QUEUE, whose worker runs threads: there Celery enforces no time limit, and the
# runner's own deadline (SLIPWAY_ROLLOUT_TIMEOUT, checked between steps) and request timeouts bound it.
@shared_task(acks_late=True, soft_time_limit=settings.ROLLOUT_TIMEOUT + 60, time_limit=settings.ROLLOUT_TIMEOUT + 120)
def run_rollout(rollout_id: int, **_ignored) -> None:
    from deployments.runners import rollouts

    rollouts.execute(rollout_id=rollout_id)


@signals.celeryd_after_setup.connect
def _load_the_kubernetes_client(sender=None, instance=None, **_ignored) -> None:
    """A worker that takes rollouts loads the Kubernetes client as it starts, not during its first rollout."""
    if instance is None or settings.ROLLOUT_QUEUE not in instance.app.amqp.queues.consume_from:
        return
    from deployments.targets import kube_api

    started = time.monotonic()
    kube_api.load_client()
    logger.info(
        "rollouts: the Kubernetes client is loaded (%.1f s), before the first rollout", time.monotonic() - started
    )


@shared_task(soft_time_limit=60)
def reap_stale_builds() -> dict:
    from deployments.services import builds

    return builds.reap_stale_builds()


@shared_task(soft_time_limit=60)
def reap_stale_rollouts() -> dict:
    from deployments.runners import rollouts

    return rollouts.reap()


@shared_task(soft_time_limit=settings.DRIFT_CHECK_TIMEOUT, time_limit=settings.DRIFT_CHECK_TIMEOUT + 15)
def check_drift() -> dict:
    # Routed to settings.DRIFT_QUEUE (CELERY_TASK_ROUTES): a hung cluster only ever holds a drift worker.
    from deployments.runners import drift

    return drift.check_all()


@shared_task(soft_time_limit=60)
def expire_promotions() -> int:
    from deployments.services import promotions

    return promotions.expire_promotions()


# The delivery row keeps its attempts and when the next is due; another failure (the database, a
# time limit) leaves it due, and requeue_webhook_deliveries enqueues it again.
@shared_task(bind=True, acks_late=True, soft_time_limit=30)
def deliver_webhook(self, delivery_id: int, **_ignored) -> None:
    from deployments.services import notifications

    retry_in = notifications.deliver(delivery_id)
    if retry_in is not None:
        raise self.retry(countdown=retry_in, max_retries=None)


@shared_task(soft_time_limit=60)
def requeue_webhook_deliveries() -> int:
    from deployments.services import notifications

    return notifications.requeue_deliveries()


@shared_task(acks_late=True, soft_time_limit=1800, time_limit=1900)
def refresh_vulnerability_db(**_ignored) -> dict:
    from deployments.services import vulnerabilities

    return vulnerabilities.database_refresh()
