"""A worker killed while it delivers a webhook: the delivery is enqueued again once due for long, and
another worker delivers it. Runs its own Celery worker (module scope), because the test kills it."""

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from deployments.models import Webhook, WebhookDelivery
from deployments.tasks import deliver_webhook, requeue_webhook_deliveries
from tests.deployments.test_webhooks import SECRET
from tests.support.services import CeleryWorker, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def slow_receiver():
    """Holds the first request until the test lets it go (its worker is killed meanwhile); answers the
    others at once."""
    received, first_arrived, release = [], threading.Event(), threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            if len(received) == 1:
                first_arrived.set()
                release.wait(30)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received, first_arrived
    release.set()
    server.shutdown()


def test_a_delivery_whose_worker_is_killed_mid_request_is_delivered_by_another(
    celery_worker, slow_receiver, team, tmp_path
):
    url, received, first_arrived = slow_receiver
    webhook = Webhook.objects.create(team=team, url=url, secret=SECRET)
    delivery = WebhookDelivery.objects.create(webhook=webhook, event="promotion.approved", payload={"n": 1})
    deliver_webhook.delay(delivery.pk)
    assert first_arrived.wait(60), "the worker never sent the delivery"

    celery_worker.kill()
    delivery.refresh_from_db()
    assert delivery.attempts == 1 and delivery.delivered_at is None

    # Its message died unacknowledged with the worker; once due for long, the beat's requeue sends it again.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        due_at=timezone.now() - timedelta(seconds=settings.BUILD_REQUEUE_AFTER + 1)
    )
    assert requeue_webhook_deliveries() == 1
    another = CeleryWorker(connection.settings_dict["NAME"], tmp_path / "another-worker.log")
    try:
        wait_until(
            lambda: WebhookDelivery.objects.filter(pk=delivery.pk, delivered_at__isnull=False).exists(),
            timeout=60,
            message="another worker to deliver it",
        )
    finally:
        another.stop()
    delivery.refresh_from_db()
    assert delivery.attempts == 2 and delivery.last_status == 200 and delivery.due_at is None
    assert received == [{"n": 1}, {"n": 1}]
