"""Single sign-on through a real OpenID Connect provider (a process on loopback, see tests/support/oidc.py).

The browser's part is played by Django's test client and a POST to the provider's own sign-in
page; everything between Slipway and the provider (discovery, the code exchange, the keys, the
user info, the logout) is real HTTP. The full flow in Chromium is in test_sso_browser.py.
"""

import html
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from django.apps import apps
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.models import Membership, Role, SsoIdentity
from audit.models import AuditEvent
from config.env import ImproperlyConfigured, envgrouproles
from tests.support.factories import MembershipFactory, TeamFactory, UserFactory
from tests.support.oidc import CLIENT_ID


@pytest.fixture
def vision():
    return TeamFactory(slug="vision", name="Vision")


def sign_in(client: Client, provider, sub: str, next_url: str = ""):
    """Start at Slipway, sign in at the provider's page as `sub`, come back to the callback."""
    start = client.get("/oidc/authenticate/" + (f"?next={next_url}" if next_url else ""))
    assert start.status_code == 302, start.content
    return client.get(provider.authorize(start["Location"], sub))


def signed_in_user(client: Client):
    response = client.get("/teams/")
    return response.wsgi_request.user if response.status_code == 200 else None


def test_the_sign_in_page_offers_the_provider(sso, client):
    page = client.get("/login/").content.decode()
    assert "Sign in with Acme SSO" in page
    assert 'href="/oidc/authenticate/' in page
    assert 'name="password"' in page  # local passwords are still on


def test_without_sso_the_page_has_only_the_password_form(client, settings):
    settings.SSO_ENABLED = False
    page = client.get("/login/").content.decode()
    assert "Sign in with" not in page and 'name="password"' in page
    assert client.get("/oidc/authenticate/").status_code == 404


def test_it_signs_in_and_maps_groups_to_team_roles(sso, oidc_provider, client, vision):
    oidc_provider.set_user("u-alice", email="alice@example.com", preferred_username="alice", groups=["ml-approvers"])

    response = sign_in(client, oidc_provider, "u-alice")

    assert response.status_code == 302 and response["Location"] == "/"
    user = signed_in_user(client)
    assert user is not None and user.username == "alice" and user.email == "alice@example.com"
    assert not user.has_usable_password()
    assert Membership.objects.get(user=user, team=vision).role == Role.APPROVER
    identity = SsoIdentity.objects.get(user=user)
    assert (identity.issuer, identity.subject, identity.groups) == (oidc_provider.url, "u-alice", ["ml-approvers"])
    joined = AuditEvent.objects.get(action="membership.set", actor_username="alice")
    assert joined.reason == "via SSO: groups ml-approvers"
    assert joined.after == {"user": "alice", "role": "approver"} and joined.team_id == vision.pk
    assert AuditEvent.objects.filter(action="user.sign_in", actor_username="alice", reason="via SSO").exists()


def test_the_highest_role_of_the_users_groups_wins_and_a_team_not_yet_created_is_skipped(
    sso, oidc_provider, client, vision
):
    oidc_provider.set_user("u-dora", email="dora@example.com", groups=["ml-developers", "ml-platform-admins"])

    sign_in(client, oidc_provider, "u-dora")

    user = signed_in_user(client)
    assert list(Membership.objects.filter(user=user).values_list("team__slug", "role")) == [("vision", "admin")]


def test_a_site_admin_group_makes_a_site_admin_and_leaving_it_unmakes_one(sso, oidc_provider, client):
    oidc_provider.set_user("u-root", email="ops@example.com", groups=["slipway-site-admins"])
    sign_in(client, oidc_provider, "u-root")
    user = signed_in_user(client)
    assert user.is_superuser and user.is_staff

    oidc_provider.set_user("u-root", email="ops@example.com", groups=[])
    client.logout()
    sign_in(client, oidc_provider, "u-root")

    user.refresh_from_db()
    assert not user.is_superuser and not user.is_staff
    changes = AuditEvent.objects.filter(action="user.site_admin").order_by("id")
    assert [(e.after, e.reason) for e in changes] == [
        ({"site_admin": True}, "via SSO: groups slipway-site-admins"),
        ({"site_admin": False}, "via SSO: in none of the site admin groups"),
    ]


def test_leaving_a_group_takes_away_access_at_the_next_sign_in(sso, oidc_provider, client, vision):
    other = TeamFactory(slug="other")
    oidc_provider.set_user("u-erin", email="erin@example.com", groups=["ml-platform-admins"])
    sign_in(client, oidc_provider, "u-erin")
    user = signed_in_user(client)
    assert client.get("/teams/vision/").status_code == 200
    # A membership given by hand in a team the mapping does not name is not the provider's to take.
    MembershipFactory(team=other, user=user, role=Role.VIEWER)

    oidc_provider.set_user("u-erin", email="erin@example.com", groups=["ml-developers"])
    client.logout()
    sign_in(client, oidc_provider, "u-erin")
    assert Membership.objects.get(user=user, team=vision).role == Role.DEVELOPER

    oidc_provider.set_user("u-erin", email="erin@example.com", groups=[])
    client.logout()
    sign_in(client, oidc_provider, "u-erin")

    assert signed_in_user(client) == user  # still a Slipway user, but of vision no more
    assert client.get("/teams/vision/").status_code == 404
    assert list(Membership.objects.filter(user=user).values_list("team__slug", flat=True)) == ["other"]
    trail = AuditEvent.objects.filter(action__startswith="membership.", team=vision).order_by("id")
    assert [(e.action, e.before.get("role"), e.after.get("role"), e.reason) for e in trail] == [
        ("membership.set", None, "admin", "via SSO: groups ml-platform-admins"),
        ("membership.set", "admin", "developer", "via SSO: groups ml-developers"),
        ("membership.remove", "developer", None, "via SSO: in none of the team's groups"),
    ]


def test_a_first_sign_in_takes_over_the_local_account_with_the_same_verified_email(sso, oidc_provider, client):
    local = UserFactory(username="frank", email="frank@example.com")
    oidc_provider.set_user("u-frank", email="frank@example.com", email_verified=True, preferred_username="fz")
    sign_in(client, oidc_provider, "u-frank")
    assert signed_in_user(client) == local

    # Unverified, the same address gets an account of its own: an address alone proves nothing.
    UserFactory(username="grace", email="grace@example.com")
    oidc_provider.set_user("u-grace", email="grace@example.com", preferred_username="grace")
    client.logout()
    sign_in(client, oidc_provider, "u-grace")
    assert signed_in_user(client).username == "grace-2"


def test_a_deactivated_account_stays_out_and_keeps_its_memberships(sso, oidc_provider, client, vision):
    oidc_provider.set_user("u-hank", email="hank@example.com", preferred_username="hank", groups=["ml-approvers"])
    sign_in(client, oidc_provider, "u-hank")
    user = signed_in_user(client)
    client.logout()
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)
    oidc_provider.set_user("u-hank", email="hank@example.com", preferred_username="hank", groups=[])

    response = sign_in(client, oidc_provider, "u-hank")

    assert response.status_code == 403
    assert "Your Slipway account is deactivated" in response.content.decode()
    assert signed_in_user(client) is None
    assert Membership.objects.get(user=user, team=vision).role == Role.APPROVER  # nothing synced for it


def test_the_break_glass_account_is_never_taken_over(sso, oidc_provider, client):
    admin = UserFactory(username="admin", email="ops@example.com", is_superuser=True)
    oidc_provider.set_user("u-admin", email="ops@example.com", email_verified=True, preferred_username="admin")
    sign_in(client, oidc_provider, "u-admin")
    user = signed_in_user(client)
    assert user != admin and user.username == "admin-2" and not user.is_superuser


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("tampered", "The ID token's signature does not match its content"),
        ("wrong-audience", "The ID token was issued to another application, not to this Slipway"),
        ("expired", "The ID token has expired"),
    ],
)
def test_a_bad_id_token_is_refused_with_a_clear_page(
    sso, oidc_provider, forging_provider, client, vision, fault, reason
):
    sso(forging_provider.url)
    forging_provider.fault = fault
    oidc_provider.set_user("u-mallory", email="mallory@example.com", groups=["ml-approvers"])

    response = sign_in(client, oidc_provider, "u-mallory")

    assert response.status_code == 403
    page = html.unescape(response.content.decode())
    assert "Sign-in refused" in page and reason in page
    assert signed_in_user(client) is None
    assert not get_user_model().objects.filter(email="mallory@example.com").exists()
    assert not Membership.objects.filter(team=vision).exists()
    refusal = AuditEvent.objects.get(action="user.sign_in")
    assert refusal.outcome == "refused" and reason in refusal.reason and refusal.actor_username == "anonymous"


def test_the_forging_provider_honest_signs_in(sso, oidc_provider, forging_provider, client):
    # The control for the test above: re-issued unchanged by the same provider, the token is accepted.
    sso(forging_provider.url)
    oidc_provider.set_user("u-nina", email="nina@example.com")
    assert sign_in(client, oidc_provider, "u-nina").status_code == 302
    assert signed_in_user(client).email == "nina@example.com"


def test_a_denied_sign_in_at_the_provider_says_so(sso, oidc_provider, client):
    start = client.get("/oidc/authenticate/")
    answer = requests.post(start["Location"], data={"action": "deny"}, allow_redirects=False, timeout=10)
    response = client.get(answer.headers["Location"])
    assert response.status_code == 403
    assert "The identity provider did not sign you in" in response.content.decode()


def test_a_callback_that_no_sign_in_started_is_refused_and_leaves_the_trail_alone(sso, client):
    response = client.get("/oidc/callback/?code=abc&state=forged")
    assert response.status_code == 403
    assert "start again" in response.content.decode()
    assert not AuditEvent.objects.exists()  # anybody can send this: it must not fill the trail


def test_an_unreachable_provider_is_named_on_the_page(sso, client):
    sso("http://127.0.0.1:9")  # nothing listens on the discard port
    response = client.get("/oidc/authenticate/")
    assert response.status_code == 503
    assert "discovery document at http://127.0.0.1:9/.well-known/openid-configuration" in response.content.decode()


def test_a_discovery_document_naming_another_issuer_is_refused(sso, forging_provider, client):
    # The same server under another name: its document names the issuer it was set up with.
    sso(forging_provider.url.replace("127.0.0.1", "localhost"))
    response = client.get("/oidc/authenticate/")
    assert response.status_code == 503
    assert f"names issuer {forging_provider.url}, not" in response.content.decode()


def test_signing_out_ends_the_providers_session(sso, oidc_provider, client):
    oidc_provider.set_user("u-olga", email="olga@example.com")
    sign_in(client, oidc_provider, "u-olga")
    id_token = client.session["oidc_id_token"]

    response = client.post("/logout/")

    assert response.status_code == 302
    target = urlparse(response["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{oidc_provider.url}/oauth2/end_session"
    query = parse_qs(target.query)
    assert query == {
        "id_token_hint": [id_token],
        "post_logout_redirect_uri": ["http://testserver/login/"],
        "client_id": [CLIENT_ID],
    }
    assert signed_in_user(client) is None


def test_a_password_session_signs_out_locally(sso, client):
    client.force_login(UserFactory(username="pat"))
    response = client.post("/logout/")
    assert response.status_code == 302 and response["Location"] == "/login/"


def test_with_passwords_on_a_wrong_one_is_said_and_a_right_one_signs_in(sso, client):
    user = UserFactory(username="sam", password="sam-password-1")
    wrong = client.post("/login/", {"username": "sam", "password": "nope"})
    assert "That username and password did not match" in wrong.content.decode()
    assert client.post("/login/", {"username": "sam", "password": "sam-password-1"}).status_code == 302
    assert signed_in_user(client) == user


class TestLocalLoginOff:
    @pytest.fixture(autouse=True)
    def _passwords_off(self, sso, settings):
        settings.LOCAL_LOGIN = False
        settings.BREAK_GLASS_USERS = ["admin"]

    def test_the_page_offers_only_the_provider(self, client):
        page = client.get("/login/").content.decode()
        assert "Sign in with Acme SSO" in page and 'name="password"' not in page
        assert "Passwords are turned off" in page

    def test_a_password_is_refused_with_the_reason(self, client):
        UserFactory(username="quinn", password="quinn-password-1")
        response = client.post("/login/?local=1", {"username": "quinn", "password": "quinn-password-1"})
        assert response.status_code == 200
        assert "Password sign-in is turned off here" in response.content.decode()
        assert signed_in_user(client) is None

    def test_the_admin_sites_password_form_is_refused_too(self, client):
        UserFactory(username="rita", password="rita-password-1", is_staff=True, is_superuser=True)
        client.post("/admin/login/", {"username": "rita", "password": "rita-password-1"})
        assert client.get("/admin/").status_code == 302  # back to the admin's sign-in: not signed in

    def test_the_break_glass_admin_still_signs_in_and_is_flagged(self, client):
        admin = UserFactory(username="admin", password="admin-password-1", is_staff=True, is_superuser=True)
        response = client.post("/login/?local=1", {"username": "admin", "password": "admin-password-1"})
        assert response.status_code == 302
        assert signed_in_user(client) == admin
        event = AuditEvent.objects.get(action="user.sign_in", actor_username="admin")
        assert event.flagged and "break-glass" in event.reason

    def test_a_break_glass_name_that_is_no_site_admin_gets_no_password(self, client):
        UserFactory(username="admin", password="admin-password-1")
        client.post("/login/?local=1", {"username": "admin", "password": "admin-password-1"})
        assert signed_in_user(client) is None


def test_the_mapping_is_read_as_group_team_role(monkeypatch):
    monkeypatch.setenv("SLIPWAY_TEST_ROLES", " ml-admins=vision:admin, ml-admins=nlp:viewer ")
    assert envgrouproles("SLIPWAY_TEST_ROLES") == [("ml-admins", "vision", "admin"), ("ml-admins", "nlp", "viewer")]


def test_a_mapping_of_the_wrong_shape_stops_the_start(monkeypatch):
    monkeypatch.setenv("SLIPWAY_TEST_ROLES", "ml-admins=vision:admin,ml-approvers=vision")
    with pytest.raises(ImproperlyConfigured, match="SLIPWAY_TEST_ROLES: 'ml-approvers=vision' is not group=team:role"):
        envgrouproles("SLIPWAY_TEST_ROLES")


def test_a_mapping_to_an_unknown_role_stops_the_start(settings):
    settings.OIDC_GROUP_ROLES = [("ml-approvers", "vision", "boss")]
    with pytest.raises(ImproperlyConfigured, match="ml-approvers=vision:boss names no role; use one of viewer"):
        apps.get_app_config("accounts").ready()
