"""Finding 7: thin authentication hardening. Each test is the attack: guessing passwords, a weak
password, a cookie over plain HTTP, an injected inline script, a silent public key, and /readyz
telling strangers what the database said."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.test import Client

from accounts import throttle

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def limits(settings):
    settings.SIGNIN_MAX_FAILURES_PER_ACCOUNT = 5
    settings.SIGNIN_MAX_FAILURES_PER_ADDRESS = 20
    return settings


@pytest.fixture
def victim():
    user = get_user_model().objects.create_user(f"victim-{secrets.token_hex(4)}", password=PASSWORD)
    yield user
    throttle.record_success(None, user.username)


@pytest.fixture
def strangers():
    """Usernames nobody has, unique to this test, whose counters are cleared after."""
    names = [f"nobody-{secrets.token_hex(4)}-{n}" for n in range(20)]
    yield names
    for name in names:
        throttle.record_success(None, name)


@pytest.fixture
def address():
    """A connecting address of this test's own, and its counter cleared after."""
    value = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"
    yield value
    cache.delete(throttle._key("address", value))


def _sign_in(path: str, username: str, password: str, address: str):
    client = Client(REMOTE_ADDR=address)
    response = client.post(path, {"username": username, "password": password, "next": "/"})
    return client, response


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_guessing_one_accounts_password_is_throttled(limits, victim, address, path):
    for _ in range(5):
        _, response = _sign_in(path, victim.username, "wrong-guess", address)
        assert response.status_code == 200
    client, response = _sign_in(path, victim.username, PASSWORD, f"{address[:-1]}9")  # even the right one
    assert response.status_code == 200
    assert "Too many failed sign-ins for this account" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_guessing_many_accounts_from_one_address_is_throttled(limits, victim, address, strangers):
    for name in strangers:
        _sign_in("/login/", name, "wrong-guess", address)
    client, response = _sign_in("/login/", victim.username, PASSWORD, address)
    assert "Too many failed sign-ins for your address" in response.content.decode()
    assert "_auth_user_id" not in client.session
    other, response = _sign_in("/login/", victim.username, PASSWORD, "192.0.2.77")
    assert response.status_code == 302 and "_auth_user_id" in other.session, "other addresses still sign in"


def test_x_forwarded_for_does_not_reset_the_address_count(limits, victim, address, strangers):
    for n, name in enumerate(strangers):
        client = Client(REMOTE_ADDR=address, HTTP_X_FORWARDED_FOR=f"198.51.100.{n}")
        client.post("/login/", {"username": name, "password": "x"})
    client = Client(REMOTE_ADDR=address, HTTP_X_FORWARDED_FOR="198.51.100.250")
    response = client.post("/login/", {"username": victim.username, "password": PASSWORD})
    assert "Too many failed sign-ins for your address" in response.content.decode()


@pytest.mark.parametrize("password", ["Sh0rt!pw", "password1234", "20261128123456", "victim-slipway-1"])
def test_a_weak_password_is_refused(password):
    user = get_user_model()(username="victim-slipway", email="victim@example.com")
    with pytest.raises(ValidationError):
        validate_password(password, user)


def _settings_of(env: dict[str, str], *names: str) -> list[str]:
    """The settings a fresh process computes from this environment (as web, worker and beat do)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SLIPWAY_")}
    code = "from django.conf import settings\n" + "".join(
        f"print(repr(getattr(settings, {n!r}, None)))\n" for n in names
    )
    completed = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + code],
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [*completed.stdout.splitlines(), completed.stderr]


def test_cookies_are_secure_unless_turned_off_and_hsts_and_the_proxy_header_are_settings():
    secure, csrf, hsts, proxy, _ = _settings_of(
        {"SLIPWAY_SECRET_KEY": "k" * 50, "SLIPWAY_HSTS_SECONDS": "31536000", "SLIPWAY_TRUST_X_FORWARDED_PROTO": "1"},
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_HSTS_SECONDS",
        "SECURE_PROXY_SSL_HEADER",
    )
    assert (secure, csrf, hsts) == ("True", "True", "31536000")
    assert proxy == "('HTTP_X_FORWARDED_PROTO', 'https')"


def test_the_insecure_defaults_switch_warns_at_every_start():
    for _ in range(2):
        *_, stderr = _settings_of({"SLIPWAY_ALLOW_INSECURE_DEFAULTS": "1"}, "SECRET_KEY")
        assert "WARNING: SLIPWAY_SECRET_KEY is not set, so a public development key is used" in stderr


def test_every_page_carries_a_policy_that_forbids_inline_scripts(client):
    response = client.get("/login/")
    policy = response["Content-Security-Policy"]
    script_src = re.search(r"script-src ([^;]*)", policy)[1]
    assert script_src == "'self'"
    assert "frame-ancestors 'none'" in policy


INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I), "an inline <script>"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "an inline event handler"),
    (re.compile(r"javascript:", re.I), "a javascript: URL"),
    (re.compile(r"hx-on", re.I), "htmx code that needs eval"),
]
# A condition in brackets after a trigger runs through eval; a CSS selector after from: does not.
TRIGGER = re.compile(r'hx-trigger="([^"]*)"')


def test_no_template_has_an_inline_script():
    found = [
        f"{path.relative_to(ROOT)}: {what}"
        for path in (ROOT / "templates").rglob("*.html")
        for pattern, what in INLINE
        if pattern.search(path.read_text())
    ]
    found += [
        f"{path.relative_to(ROOT)}: an htmx trigger condition (needs eval)"
        for path in (ROOT / "templates").rglob("*.html")
        for trigger in TRIGGER.findall(path.read_text())
        if "[" in re.sub(r"from:\S+", "", trigger)
    ]
    assert found == []


def test_readyz_names_what_is_down_without_its_error_text(client, settings, django_user_model):
    settings.REDIS_URL = "redis://secret-user:hunter2@127.0.0.1:1/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "problems": {"redis": "unreachable"}}
    admin = django_user_model.objects.create_superuser("ops", password=PASSWORD)
    client.force_login(admin)
    assert "details" in client.get("/readyz").json(), "a signed-in site admin sees the error text"
