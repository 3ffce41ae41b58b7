"""Credentials people put in URLs (a password, a query token, a Slack-style path) never reach the audit trail,
which every member of the team reads: not through the API, nor on the /audit/ page."""

import pytest

from audit.models import AuditEvent
from audit.redaction import redact_url
from audit.services import record

SECRET_URL = "https://hook-user:hunter2@hooks.example.net/services/T0ABC/B0DEF/Xy9SecretPath?token=abc123&v=2#frag"
SECRETS = ("hunter2", "hook-user", "Xy9SecretPath", "abc123", "T0ABC")


@pytest.fixture
def webhook_events(api, owner):
    created = api.as_user(owner).post(
        "/api/v1/webhooks/", {"team": "vision", "url": SECRET_URL, "events": []}, format="json"
    )
    assert created.status_code == 201, created.content
    assert created.json()["url"] == SECRET_URL  # the admin who made it reads it whole
    deleted = api.as_user(owner).delete(f"/api/v1/webhooks/{created.json()['id']}/")
    assert deleted.status_code == 204
    return list(AuditEvent.objects.filter(action__startswith="webhook.").order_by("pk"))


def test_a_viewer_reads_no_webhook_credentials_through_the_audit_api(api, viewer, webhook_events):
    client = api.as_user(viewer)
    assert [event.action for event in webhook_events] == ["webhook.create", "webhook.delete"]
    for event in webhook_events:
        response = client.get(f"/api/v1/audit/{event.pk}/")
        assert response.status_code == 200, response.content
        body = response.content.decode()
        assert not [secret for secret in SECRETS if secret in body], body
        assert "hooks.example.net" in response.json()["object_repr"]  # still says where it went
    listed = client.get("/api/v1/audit/?action=webhook.create").content.decode()
    assert "hooks.example.net" in listed and not [secret for secret in SECRETS if secret in listed]


def test_a_viewer_reads_no_webhook_credentials_on_the_audit_page(client, viewer, webhook_events):
    client.force_login(viewer)
    page = client.get("/audit/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "webhook.create" in html and "hooks.example.net" in html
    assert not [secret for secret in SECRETS if secret in html]


def test_every_record_redacts_credentials_in_urls_of_its_object_reason_and_changes(team):
    event = record(
        actor=None,
        action="environment.update",
        team_id=team.pk,
        reason="called http://bot:pw1@ci.example.net/x?key=k1 first",
        before={"kube_api_url": "https://k8s.example.net:6443/?access_token=tok1"},
        after={"nested": [{"url": "http://user:pw2@example.org/a"}], "docker_url": "ssh://deploy@edge-7"},
    )
    event.refresh_from_db()
    stored = f"{event.reason} {event.before} {event.after}"
    assert not [secret for secret in ("pw1", "k1", "tok1", "pw2", "bot", "user:") if secret in stored], stored
    assert event.after["docker_url"] == "ssh://deploy@edge-7"  # an ssh user name is no secret
    assert event.before["kube_api_url"] == "https://k8s.example.net:6443/?access_token=***"


@pytest.mark.parametrize(
    ("url", "keep_path", "shown"),
    [
        ("https://u:p@h.example/a/b?x=1&y#f", True, "https://***:***@h.example/a/b?x=***&***#***"),
        ("https://token@h.example/", True, "https://***@h.example/"),
        ("https://hooks.slack.example/services/T/B/X", False, "https://hooks.slack.example/***"),
        ("https://h.example/", False, "https://h.example/"),
        ("ssh://deploy:pw@edge:22", True, "ssh://deploy:***@edge:22"),
        ("unix:///var/run/docker.sock", True, "unix:///var/run/docker.sock"),
    ],
)
def test_redact_url(url, keep_path, shown):
    assert redact_url(url, keep_path=keep_path) == shown
