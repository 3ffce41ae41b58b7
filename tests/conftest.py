"""Shared fixtures: the users every permission test speaks of, and clients for them.

In team "vision": owner (admin), teammate (developer), approver, viewer.
In team "other":  stranger (developer) — must learn nothing about "vision".
"""

import pytest
from django.db import connection
from rest_framework.test import APIClient

from accounts import services as account_services
from accounts.models import Role
from tests.support.factories import MembershipFactory, ModelFactory, TeamFactory, UserFactory

# Real services (Docker engine, OCI registry, Celery workers) as fixtures.
pytest_plugins = [
    "tests.support.services",
    "tests.support.workers",
    "tests.support.browser",
    "tests.support.serving",
    "tests.support.oidc",
    "tests.support.sshd",
]


# Tests of parts that never touch the database (the image runtime, the Kubernetes emulator, the
# log viewer in a browser) run without one; every other test gets the database unless it asks
# for something else.
DATABASE_FREE = ("builder", "kube", "browser", "targets", "serving", "osv")


def pytest_collection_modifyitems(items):
    for item in items:
        folder = item.path.parent.name
        if folder not in DATABASE_FREE and item.get_closest_marker("django_db") is None:
            item.add_marker(pytest.mark.django_db)


@pytest.fixture(scope="session", autouse=True)
def _postgres_only(django_db_setup, django_db_blocker):
    # The product runs on PostgreSQL; a green run on SQLite would prove little.
    with django_db_blocker.unblock():
        assert connection.vendor == "postgresql", "tests must run on PostgreSQL: set DATABASE_URL (see Makefile)"


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def team():
    return TeamFactory(slug="vision", name="Vision")


@pytest.fixture
def other_team():
    return TeamFactory(slug="other", name="Other")


def member(team, username, role):
    user = UserFactory(username=username)
    MembershipFactory(team=team, user=user, role=role)
    return user


@pytest.fixture
def owner(team):
    return member(team, "owner", Role.ADMIN)


@pytest.fixture
def teammate(team):
    return member(team, "teammate", Role.DEVELOPER)


@pytest.fixture
def approver(team):
    return member(team, "approver", Role.APPROVER)


@pytest.fixture
def viewer(team):
    return member(team, "viewer", Role.VIEWER)


@pytest.fixture
def stranger(other_team):
    return member(other_team, "stranger", Role.DEVELOPER)


@pytest.fixture
def site_admin():
    return UserFactory(username="root", is_superuser=True, is_staff=True)


@pytest.fixture
def model(team, teammate):
    return ModelFactory(team=team, name="iris", created_by=teammate)


@pytest.fixture
def api():
    """An API client; `api.as_user(u)` signs in with a session, `api.with_token(secret)` uses a token."""
    client = APIClient()

    def as_user(user):
        client.force_authenticate(user=None)
        client.force_login(user)
        return client

    def with_token(secret):
        client.logout()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        return client

    client.as_user = as_user
    client.with_token = with_token
    return client


@pytest.fixture
def token_for():
    def make(user, scopes=("read", "deploy"), days=None):
        _, secret = account_services.token_create(
            user=user, name=f"t-{len(user.api_tokens.all())}", scopes=list(scopes), expires_in_days=days
        )
        return secret

    return make
