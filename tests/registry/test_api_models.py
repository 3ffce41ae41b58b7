"""Registering and changing a model through the API: what it answers, and how bad input is refused
(never a silent 200 that changed less than asked)."""

import pytest

from accounts.models import Role
from accounts.services import token_create
from audit.models import AuditEvent
from registry.models import RegisteredModel
from tests.conftest import member
from tests.support.factories import MembershipFactory


def test_a_new_model_is_answered_with_its_address_and_author(api, teammate, team):
    response = api.as_user(teammate).post(
        "/api/v1/models/", {"team": team.slug, "name": "iris", "task": "classification"}, format="json"
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert response["Location"] == body["url"] == "/models/vision/iris/"
    assert (body["team"], body["name"], body["task"], body["created_by"]) == (
        "vision",
        "iris",
        "classification",
        "teammate",
    )
    assert (body["auto_build"], body["archived"], body["version_count"]) == (True, False, None)
    assert RegisteredModel.objects.get(pk=body["id"]).created_by == teammate


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("x" * 64, "at most 63 characters"),
        ("Not_A_Label", ""),
        ("", "may not be blank"),
    ],
)
def test_a_bad_name_is_a_400_naming_it_and_stores_nothing(api, teammate, team, name, reason):
    response = api.as_user(teammate).post("/api/v1/models/", {"team": team.slug, "name": name}, format="json")

    assert response.status_code == 400
    assert set(response.json()) == {"name"}, response.json()
    assert reason in response.json()["name"][0]
    assert not RegisteredModel.objects.exists()


def test_a_too_long_task_is_a_400_naming_it(api, teammate, team):
    response = api.as_user(teammate).post(
        "/api/v1/models/", {"team": team.slug, "name": "iris", "task": "t" * 65}, format="json"
    )

    assert response.status_code == 400
    assert set(response.json()) == {"task"}, response.json()
    assert not RegisteredModel.objects.exists()


def test_a_missing_team_is_a_400_naming_it(api, teammate):
    response = api.as_user(teammate).post("/api/v1/models/", {"name": "iris"}, format="json")

    assert response.status_code == 400
    assert set(response.json()) == {"team"}, response.json()


def test_a_patch_naming_read_only_fields_is_a_400_naming_them_and_changes_nothing(api, teammate, model, other_team):
    response = api.as_user(teammate).patch(
        f"/api/v1/models/{model.pk}/", {"team": other_team.slug, "name": "x", "description": "new"}, format="json"
    )
    assert response.status_code == 400, response.content
    assert set(response.json()) == {"team", "name"}
    assert "cannot be changed" in response.json()["name"][0]
    model.refresh_from_db()
    assert (model.team_id, model.name, model.description) == (model.team.pk, "iris", "")
    assert not AuditEvent.objects.filter(action="model.update").exists()


def test_a_patch_of_what_may_change_changes_it(api, teammate, model):
    response = api.as_user(teammate).patch(f"/api/v1/models/{model.pk}/", {"description": "new"}, format="json")
    assert response.status_code == 200, response.content
    assert RegisteredModel.objects.get(pk=model.pk).description == "new"


def test_a_team_given_as_a_number_is_a_400_naming_it(api, teammate, team):
    response = api.as_user(teammate).post("/api/v1/models/", {"team": team.pk, "name": "iris"}, format="json")

    assert response.status_code == 400
    assert set(response.json()) == {"team"}, response.json()
    assert not RegisteredModel.objects.exists()


def test_a_token_limited_to_another_team_cannot_name_this_one(api, team, other_team):
    both = member(other_team, "both", Role.ADMIN)
    MembershipFactory(team=team, user=both, role=Role.ADMIN)
    _, secret = token_create(user=both, name="other-only", scopes=["read", "deploy"], teams=["other"])
    client = api.with_token(secret)

    refused = client.post("/api/v1/models/", {"team": "vision", "name": "iris"}, format="json")
    allowed = client.post("/api/v1/models/", {"team": "other", "name": "iris"}, format="json")

    assert refused.status_code == 400
    assert refused.json()["team"] == ["Object with slug=vision does not exist."]
    assert allowed.status_code == 201, allowed.json()
    assert list(RegisteredModel.objects.values_list("team__slug", flat=True)) == ["other"]


def test_a_site_admin_names_any_team(api, site_admin, team):
    response = api.as_user(site_admin).post("/api/v1/models/", {"team": "vision", "name": "iris"}, format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["team"] == "vision"
