"""Finding 7, in a real browser: with the Content-Security-Policy on, no page of ours trips it, and
what used to be inline code (the filter that submits itself, polling while visible) still works."""

from __future__ import annotations

import pytest

from tests.support.factories import EnvironmentFactory

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_pages_run_under_the_policy_without_a_violation(signed_in, owner, team, model):
    owner.set_password("owner-browser-pw")
    owner.save()
    EnvironmentFactory(team=team, name="prod", protected=True)
    session = signed_in("owner", "owner-browser-pw")
    violations: list[str] = []
    session.page.on(
        "console",
        lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
    )

    polls: list[str] = []
    session.page.on("request", lambda request: polls.append(request.url) if request.headers.get("hx-request") else None)

    page = session.go("/promotions/")
    with page.expect_navigation():
        page.select_option("#state", "approved")
    assert "state=approved" in page.url, "the filter still submits itself (data-autosubmit)"
    session.shot("security-promotions-desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    session.shot("security-promotions-phone")
    page.set_viewport_size({"width": 1280, "height": 800})

    page = session.go("/")
    page.wait_for_timeout(2_500)
    # The overview polls every second while the tab is visible (hx-trigger="every 1s" data-poll-visible).
    assert any(url.rstrip("/") == session.base_url.rstrip("/") for url in polls), polls
    session.shot("security-overview-desktop")
    session.go("/api/docs/").wait_for_selector(".swagger-ui", timeout=20_000)
    session.go(f"/models/{team.slug}/{model.name}/")
    assert violations == [], violations
