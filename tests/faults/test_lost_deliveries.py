"""Webhook deliveries whose message was lost (Redis down when the event fired, or the worker that held
the attempt or its retry died) are enqueued again once due for long, as queued builds and rollouts are,
and reach the receiver once. A delivery given up stays given up."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from deployments.models import PromotionRequest, Webhook, WebhookDelivery
from deployments.services import notifications
from deployments.tasks import requeue_webhook_deliveries
from tests.deployments.test_webhooks import SECRET
from tests.support.factories import EnvironmentFactory, VersionFactory, succeeded_build

pytestmark = pytest.mark.django_db(transaction=True)


def overdue(delivery: WebhookDelivery) -> None:
    """As if its due time passed longer ago than a message may take to arrive."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        due_at=timezone.now() - timedelta(seconds=settings.BUILD_REQUEUE_AFTER + 1)
    )


def test_a_delivery_of_an_event_fired_while_redis_was_down_is_sent_once_redis_is_back(
    broker, receiver, model, teammate
):
    url, received, _ = receiver
    Webhook.objects.create(team=model.team, url=url, secret=SECRET)
    version = VersionFactory(model=model)
    build = succeeded_build(version)
    promotion = PromotionRequest.objects.create(
        environment=EnvironmentFactory(team=model.team, name="prod", protected=True),
        model=model,
        version=version,
        build=build,
        image=build.digest_reference,
        requested_by=teammate,
        reason="ready",
        expires_at=timezone.now() + timedelta(days=1),
    )
    broker.stop()

    notifications.promotion_event("promotion.requested", promotion)

    delivery = WebhookDelivery.objects.get()
    broker.start()
    assert requeue_webhook_deliveries() == 0  # too young: its message may still be on its way
    overdue(delivery)
    assert requeue_webhook_deliveries() == 1
    assert broker.queued() == 1

    assert notifications.deliver(delivery.pk) is None  # what the worker runs for the message
    delivery.refresh_from_db()
    assert delivery.delivered_at is not None and delivery.due_at is None and delivery.attempts == 1
    assert [(r["event"], r["valid"]) for r in received] == [("promotion.requested", True)]
    assert requeue_webhook_deliveries() == 0


def test_an_attempt_or_retry_whose_worker_died_is_sent_again_and_only_once(broker, receiver, team):
    url, received, answers = receiver
    webhook = Webhook.objects.create(team=team, url=url, secret=SECRET)
    delivery = WebhookDelivery.objects.create(webhook=webhook, event="promotion.approved", payload={"n": 1})
    answers.append(503)
    assert notifications.deliver(delivery.pk) == 2  # the worker would hold the retry for 2 s, and die
    overdue(delivery)

    assert requeue_webhook_deliveries() == 1
    assert notifications.deliver(delivery.pk) is None
    assert notifications.deliver(delivery.pk) is None  # the held retry, restored by Redis at last: nothing

    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.last_status, delivery.due_at) == (2, 200, None)
    assert len(received) == 2


def test_a_delivery_given_up_is_not_enqueued_again(broker, receiver, team):
    url, received, answers = receiver
    webhook = Webhook.objects.create(team=team, url=url, secret=SECRET)
    delivery = WebhookDelivery.objects.create(webhook=webhook, event="promotion.approved", payload={"n": 1})
    answers.extend([503] * notifications.DELIVERY_ATTEMPTS)

    waits = [notifications.deliver(delivery.pk) for _ in range(notifications.DELIVERY_ATTEMPTS)]

    assert waits == [2, 4, 8, 16, 32, 64, 128, 256, None]
    delivery.refresh_from_db()
    assert delivery.due_at is None and delivery.delivered_at is None
    assert delivery.last_error == "The receiver answered 503. Given up after 9 attempts."
    overdue_since = timezone.now() - timedelta(days=1)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(created_at=overdue_since)
    assert requeue_webhook_deliveries() == 0
    assert notifications.deliver(delivery.pk) is None and len(received) == 9
