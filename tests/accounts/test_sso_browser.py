"""Signing in through the identity provider in headless Chromium: from Slipway's sign-in page to the
provider's, back to the overview, and out of both again. Screenshots land in test-artifacts/."""

import pytest

from accounts.models import Membership, Role, Team
from tests.support.browser import ARTIFACTS

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_person_signs_in_through_the_provider_and_out_of_both(chromium, live_server, oidc_provider, sso):
    vision = Team.objects.create(slug="vision", name="Vision")
    oidc_provider.set_user(
        "u-alice", email="alice@example.com", preferred_username="alice", name="Alice", groups=["ml-developers"]
    )
    ARTIFACTS.mkdir(exist_ok=True)
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{live_server.url}/models/")
        page.wait_for_url(f"{live_server.url}/login/?next=/models/")
        page.screenshot(path=str(ARTIFACTS / "sso-sign-in.png"), full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=str(ARTIFACTS / "sso-sign-in-390.png"), full_page=True)
        page.set_viewport_size({"width": 1280, "height": 800})

        page.get_by_role("link", name="Sign in with Acme SSO").click()
        page.wait_for_url(f"{oidc_provider.url}/oauth2/authorize?**")
        page.fill("input[name=sub]", "u-alice")
        page.get_by_role("button", name="Authorize").click()

        page.wait_for_url(f"{live_server.url}/models/")
        page.goto(f"{live_server.url}/")
        assert "alice" in page.locator(".user-menu").inner_text()
        page.screenshot(path=str(ARTIFACTS / "sso-overview.png"), full_page=True)
        assert Membership.objects.get(team=vision, user__username="alice").role == Role.DEVELOPER

        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(f"{oidc_provider.url}/oauth2/end_session?**")
        assert "Recommended parameter" not in page.content()  # the ID token was sent as the hint
        page.get_by_role("button", name="End session").click()
        page.wait_for_url(f"{live_server.url}/login/")
        page.goto(f"{live_server.url}/")
        page.wait_for_url(f"{live_server.url}/login/?next=/")
    finally:
        context.close()
    assert not errors, f"JavaScript errors: {errors}"


def test_the_passwords_off_and_refused_pages_read_well_on_a_phone_and_a_desktop(chromium, live_server, sso, settings):
    settings.LOCAL_LOGIN = False
    context = chromium.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        for width, suffix in ((390, "-390"), (1280, "")):
            page.set_viewport_size({"width": width, "height": 800})
            page.goto(f"{live_server.url}/login/")
            assert page.locator("input[name=password]").count() == 0
            assert page.get_by_role("link", name="Sign in with Acme SSO").is_visible()
            page.screenshot(path=str(ARTIFACTS / f"sso-sign-in-passwords-off{suffix}.png"), full_page=True)
            page.goto(f"{live_server.url}/oidc/callback/?code=stolen&state=forged")
            assert "Sign-in refused" in page.locator("h1").inner_text()
            page.screenshot(path=str(ARTIFACTS / f"sso-refused{suffix}.png"), full_page=True)
    finally:
        context.close()
