"""The audit page in a real browser: rows, the refused badge, and a diff that opens under its row.

Runs against pytest-django's live server (a transactional test, so Django's TRUNCATE between tests also
proves the test database's exemption from the append-only TRUNCATE trigger). The screenshot goes to
test-artifacts/ (git-ignored). Needs Python Playwright and Debian's Chromium, as tests/browser does.
"""

import datetime

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from tests.support.browser import ARTIFACTS
from tests.support.factories import TeamFactory, UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def a_realistic_trail(team, alice, bob):
    now = timezone.now()

    def event(minutes_ago, **fields):
        fields.setdefault("actor", alice)
        fields.setdefault("team", team)
        fields.setdefault("actor_username", fields["actor"].username if fields["actor"] else "platform")
        return AuditEvent.objects.create(created_at=now - datetime.timedelta(minutes=minutes_ago), **fields)

    event(
        2900,
        action="model.create",
        object_type="registry.registeredmodel",
        object_id="4",
        object_repr="vision/resnet-classifier",
        after={"name": "resnet-classifier", "task": "classification"},
    )
    event(
        2880,
        action="version.create",
        object_type="registry.modelversion",
        object_id="31",
        token_name="ci-main",
        object_repr="resnet-classifier v7",
        after={"number": 7, "framework": "onnx", "artifact_sha256": "9f2c…e41"},
    )
    event(
        2870,
        action="build.start",
        object_type="deployments.build",
        object_id="88",
        object_repr="Build #88",
        token_name="ci-main",
        after={"version": 7},
    )
    event(
        1440,
        action="environment.update",
        actor=bob,
        object_type="deployments.environment",
        object_id="3",
        object_repr="prod",
        environment="prod",
        before={"required_approvals": 1, "protected": True, "approval_expiry_hours": 72},
        after={"required_approvals": 2, "protected": True, "approval_expiry_hours": 24},
    )
    event(
        300,
        action="promotion.request",
        object_type="deployments.promotionrequest",
        object_id="12",
        object_repr="resnet-classifier v7 → prod",
        environment="prod",
        after={"version": 7, "image": "registry.local/vision/resnet@sha256:9f2c"},
        reason="Q3 accuracy fix",
    )
    event(
        290,
        action="promotion.approve",
        outcome="refused",
        object_type="deployments.promotionrequest",
        object_id="12",
        object_repr="resnet-classifier v7 → prod",
        environment="prod",
        reason="the requester never approves their own request",
        ip_address="10.4.0.17",
    )
    event(
        240,
        action="promotion.approve",
        actor=bob,
        object_type="deployments.promotionrequest",
        object_id="12",
        object_repr="resnet-classifier v7 → prod",
        environment="prod",
        reason="Looks good; metrics attached.",
        before={"state": "pending", "approvals": 0},
        after={"state": "approved", "approvals": 1},
    )
    event(
        180,
        action="rollout.start",
        object_type="deployments.rollout",
        object_id="57",
        environment="staging",
        object_repr="resnet-classifier v7 → staging",
        flagged=True,
        reason="Break glass during freeze: incident INC-4411, customer-facing outage",
        after={"version": 7},
    )
    event(
        90,
        action="deploy",
        outcome="refused",
        actor=UserFactory(username="carol"),
        object_type="registry.modelversion",
        object_id="31",
        object_repr="resnet-classifier v7",
        environment="prod",
        token_name="laptop",
        reason="the API token 'laptop' lacks the 'deploy' scope",
    )
    event(
        45,
        action="promotion.expire",
        actor=None,
        object_type="deployments.promotionrequest",
        object_id="9",
        object_repr="detector v2 → prod",
        environment="prod",
        after={"state": "expired"},
    )
    event(
        12,
        action="rollout.rollback",
        actor=bob,
        object_type="deployments.rollout",
        object_id="58",
        object_repr="resnet-classifier v6 → prod",
        environment="prod",
        reason="Latency regression after v7",
        before={"version": 7, "image": "…@sha256:9f2c"},
        after={"version": 6, "image": "…@sha256:51ab"},
    )


def test_the_audit_page_lists_events_and_opens_a_diff(live_server, client, chromium):

    team = TeamFactory(slug="vision", name="Vision")
    alice = UserFactory(username="alice", is_superuser=True, is_staff=True)
    bob = UserFactory(username="bob")
    a_realistic_trail(team, alice, bob)
    client.force_login(alice)
    session = client.cookies["sessionid"].value

    context = chromium.new_context(viewport={"width": 1360, "height": 900})
    try:
        context.add_cookies([{"name": "sessionid", "value": session, "url": live_server.url}])
        page = context.new_page()
        page.goto(f"{live_server.url}/audit/")
        assert page.locator("tbody.audit-event").count() == 11
        assert page.locator("tbody.is-refused").count() == 2
        diff_row = page.locator("tbody.audit-event", has_text="environment.update").locator("tr.audit-detail")
        assert not diff_row.is_visible()
        page.locator("tbody.audit-event", has_text="environment.update").locator("summary").click()
        assert diff_row.is_visible()
        assert "required_approvals" in diff_row.inner_text()
        wrap = page.locator(".table-wrap")
        assert wrap.evaluate("w => w.scrollWidth <= w.clientWidth"), "the table is wider than the page"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "audit-page.png", full_page=True)
        page.locator("tbody.audit-event", has_text="environment.update").screenshot(
            path=ARTIFACTS / "audit-event-detail.png"
        )
        page.goto(f"{live_server.url}/audit/?object_type=deployments.promotionrequest&object_id=12")
        assert page.locator("tbody.audit-event").count() == 3
        page.screenshot(path=ARTIFACTS / "audit-object-history.png", full_page=True)
        page.goto(f"{live_server.url}/audit/?since=last+tuesday&action=build.")
        assert page.get_by_role("alert").is_visible()
        page.screenshot(path=ARTIFACTS / "audit-filter-error.png")
        page.set_viewport_size({"width": 420, "height": 900})
        page.goto(f"{live_server.url}/audit/")
        page.screenshot(path=ARTIFACTS / "audit-page-mobile.png", full_page=False)
    finally:
        context.close()
