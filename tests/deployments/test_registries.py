import pytest
from django.db import connection

from accounts.models import Role
from deployments.models import ContainerRegistry
from tests.conftest import member


def stored_password(registry) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT password FROM deployments_containerregistry WHERE id = %s", [registry.pk])
        return cursor.fetchone()[0]


def test_a_team_admin_adds_a_registry_whose_password_is_encrypted_and_never_returned(api, owner, team):
    response = api.as_user(owner).post(
        "/api/v1/registries/",
        {
            "name": "team registry",
            "team": "vision",
            "url": "registry.example.com/ml",
            "username": "robot",
            "password": "s3cr3t-pass",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert "password" not in response.json() and response.json()["has_password"] is True
    registry = ContainerRegistry.objects.get()
    assert registry.password == "s3cr3t-pass"
    assert "s3cr3t" not in stored_password(registry) and stored_password(registry).startswith("gAAAA")
    listed = api.get("/api/v1/registries/").content.decode()
    assert "s3cr3t" not in listed


def test_the_password_is_kept_when_an_edit_leaves_it_out(api, owner, team):
    registry = ContainerRegistry.objects.create(
        name="r", team=team, url="r.example.com", username="u", password="keep-me"
    )
    response = api.as_user(owner).patch(f"/api/v1/registries/{registry.pk}/", {"username": "u2"}, format="json")
    assert response.status_code == 200
    registry.refresh_from_db()
    assert registry.password == "keep-me" and registry.username == "u2"


@pytest.mark.parametrize("caller", ["teammate", "approver", "viewer"])
def test_only_admins_manage_registries(request, api, team, caller):
    response = api.as_user(request.getfixturevalue(caller)).post(
        "/api/v1/registries/", {"name": "r", "team": "vision", "url": "r.example.com"}, format="json"
    )
    assert response.status_code == 403


def test_the_global_registry_is_for_site_admins(api, owner, site_admin):
    body = {"name": "global", "url": "registry.example.com"}
    assert api.as_user(owner).post("/api/v1/registries/", body, format="json").status_code == 403
    assert api.as_user(site_admin).post("/api/v1/registries/", body, format="json").status_code == 201


def test_plain_http_only_for_loopback(api, site_admin):
    response = api.as_user(site_admin).post(
        "/api/v1/registries/", {"name": "r", "url": "registry.example.com", "insecure": True}, format="json"
    )
    assert response.status_code == 400
    assert "loopback" in response.json()["insecure"][0]


def test_a_team_has_one_registry(api, owner, team):
    client = api.as_user(owner)
    body = {"name": "a", "team": "vision", "url": "a.example.com"}
    assert client.post("/api/v1/registries/", body, format="json").status_code == 201
    response = client.post("/api/v1/registries/", {**body, "name": "b"}, format="json")
    assert response.status_code == 400
    assert "already has a registry" in response.json()["team"][0]


def test_a_stranger_admin_cannot_see_another_teams_registry(api, other_team, team):
    outsider = member(other_team, "outsider-admin", Role.ADMIN)
    ContainerRegistry.objects.create(name="r", team=team, url="r.example.com")
    assert api.as_user(outsider).get("/api/v1/registries/").json()["count"] == 0


def test_the_registry_form_never_shows_the_password(client, owner, team):
    registry = ContainerRegistry.objects.create(
        name="r", team=team, url="r.example.com", username="u", password="never-shown"
    )
    client.force_login(owner)
    page = client.get(f"/settings/registries/{registry.pk}/").content.decode()
    assert "never-shown" not in page and "A password is stored" in page
