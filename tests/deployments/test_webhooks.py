"""Webhooks are signed with HMAC-SHA256 and retried until the receiver takes them."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection

from deployments.models import Webhook, WebhookDelivery
from deployments.services import notifications

SECRET = "whsec-test-0123456789"


@pytest.fixture
def receiver():
    """A receiver on 127.0.0.1 that verifies signatures the way a real one would."""
    received, answers = [], []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            valid = notifications.verify(SECRET, body, self.headers[notifications.SIGNATURE_HEADER])
            received.append({"body": json.loads(body), "valid": valid, "event": self.headers["X-Slipway-Event"]})
            status = answers.pop(0) if answers else 200
            self.send_response(status if valid else 401)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received, answers
    server.shutdown()


def test_signatures_verify_and_tampering_is_detected():
    body = b'{"event": "promotion.approved"}'
    header = notifications.sign(SECRET, body)
    assert notifications.verify(SECRET, body, header)
    assert not notifications.verify(SECRET, body + b" ", header)
    assert not notifications.verify("other-secret", body, header)
    stale = notifications.sign(SECRET, body, timestamp=1_000_000_000)
    assert not notifications.verify(SECRET, body, stale)


def test_a_delivery_is_signed_and_retried_until_it_succeeds(receiver, team):
    url, received, answers = receiver
    webhook = Webhook.objects.create(team=team, url=url, secret=SECRET)
    delivery = WebhookDelivery.objects.create(
        webhook=webhook, event="promotion.approved", payload={"event": "promotion.approved", "promotion": {"id": 7}}
    )
    answers.append(503)
    assert notifications.deliver(delivery.pk) == 2  # try again in 2 s
    delivery.refresh_from_db()
    assert delivery.last_error == "The receiver answered 503." and delivery.due_at > delivery.created_at
    assert notifications.deliver(delivery.pk) is None
    delivery.refresh_from_db()
    assert delivery.attempts == 2 and delivery.delivered_at is not None and delivery.last_status == 200
    assert [r["valid"] for r in received] == [True, True]
    assert received[0]["body"]["promotion"]["id"] == 7
    notifications.deliver(delivery.pk)  # already delivered: nothing is sent again
    assert len(received) == 2


def test_the_webhook_secret_is_encrypted_at_rest(team):

    webhook = Webhook.objects.create(team=team, url="https://hooks.example.com/x", secret=SECRET)
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM deployments_webhook WHERE id = %s", [webhook.pk])
        assert SECRET not in cursor.fetchone()[0]
