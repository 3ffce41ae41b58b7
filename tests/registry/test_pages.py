import hashlib

from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import Membership, Role
from registry.models import ModelVersion, RegisteredModel
from tests.support.factories import ModelFactory, VersionFactory


def test_a_developer_registers_a_model_from_the_form(client, teammate, team):
    client.force_login(teammate)
    response = client.post(
        "/models/new/", {"team": team.pk, "name": "face-detector", "task": "detection", "auto_build": "on"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/models/vision/face-detector/versions/new/"
    assert RegisteredModel.objects.get(name="face-detector").created_by == teammate


def test_an_invalid_name_is_explained_beside_the_field(client, teammate, team):
    client.force_login(teammate)
    response = client.post("/models/new/", {"team": team.pk, "name": "Face_Detector"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "id_name_errors" in page
    assert "DNS-1123 label" in page and "lowercase letters, digits and &#x27;-&#x27;" in page
    assert not RegisteredModel.objects.exists()


def test_a_duplicate_name_is_explained(client, teammate, team, model):
    client.force_login(teammate)
    response = client.post("/models/new/", {"team": team.pk, "name": model.name})
    assert response.status_code == 400
    assert "already has a model" in response.content.decode()


def test_a_version_uploads_from_the_form(client, teammate, model):
    client.force_login(teammate)
    content = b"weights" * 50
    response = client.post(
        "/models/vision/iris/versions/new/",
        {
            "framework": "sklearn",
            "artifact": SimpleUploadedFile("model.joblib", content),
            "label": "2024.1",
            "metrics": '{"f1": 0.81}',
            "tags": "baseline, nightly",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    version = ModelVersion.objects.get()
    assert version.artifact_sha256 == hashlib.sha256(content).hexdigest()
    assert version.tags == ["baseline", "nightly"]
    page = client.get(response["Location"]).content.decode()
    assert version.artifact_sha256 in page and "2024.1" in page and "f1" in page


def test_a_too_large_upload_from_the_form_shows_the_limit(client, teammate, model, settings):
    settings.MAX_ARTIFACT_SIZE = 10 * 1024
    client.force_login(teammate)
    response = client.post(
        "/models/vision/iris/versions/new/",
        {
            "framework": "sklearn",
            "artifact": SimpleUploadedFile("big.joblib", b"x" * 20 * 1024),
        },
    )
    assert response.status_code == 413
    assert "larger than the limit" in response.content.decode()
    assert not ModelVersion.objects.exists()


def test_bad_json_metrics_are_shown_beside_the_field(client, teammate, model):
    client.force_login(teammate)
    response = client.post(
        "/models/vision/iris/versions/new/",
        {
            "framework": "sklearn",
            "artifact": SimpleUploadedFile("m.joblib", b"m"),
            "metrics": "{oops",
        },
    )
    assert response.status_code == 400
    assert 'id="id_metrics_errors"' in response.content.decode()


def test_an_infinite_metric_is_shown_beside_the_field_and_nothing_is_stored(client, teammate, model):
    client.force_login(teammate)
    response = client.post(
        "/models/vision/iris/versions/new/",
        {"framework": "sklearn", "artifact": SimpleUploadedFile("m.joblib", b"m"), "metrics": '{"a": 1e999}'},
    )
    assert response.status_code == 400
    assert "metrics.a must be a finite number" in response.content.decode()
    assert not ModelVersion.objects.exists()


def test_the_model_list_searches_and_filters_by_team(client, teammate, team, other_team):
    Membership.objects.create(team=other_team, user=teammate, role=Role.VIEWER)
    ModelFactory(team=team, name="fraud-detector", description="card fraud")
    ModelFactory(team=other_team, name="churn")
    client.force_login(teammate)
    assert "fraud-detector" in client.get("/models/?q=fraud").content.decode()
    assert "churn" not in client.get("/models/?q=fraud").content.decode()
    by_team = client.get("/models/?team=other").content.decode()
    assert "churn" in by_team and "fraud-detector" not in by_team
    partial = client.get("/models/?q=churn", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in partial and "churn" in partial


def test_the_model_page_shows_versions_with_their_metrics(client, viewer, model):
    VersionFactory(model=model, number=1, metrics={"accuracy": 0.91})
    VersionFactory(model=model, number=2, metrics={"accuracy": 0.95, "f1": 0.9})
    client.force_login(viewer)
    page = client.get("/models/vision/iris/").content.decode()
    assert "0.95" in page and "0.91" in page and ">f1<" in page
    assert "Upload version" not in page  # a viewer is not offered what they may not do


def test_an_empty_registry_says_what_to_do_next(client, teammate):
    client.force_login(teammate)
    assert "Register your first model" in client.get("/models/").content.decode()


def test_a_team_admin_manages_members(client, owner, viewer, team):
    client.force_login(owner)
    response = client.post("/teams/vision/", {"username": "viewer", "role": "developer"})
    assert response.status_code == 302
    assert Membership.objects.get(team=team, user=viewer).role == Role.DEVELOPER
    assert client.post("/teams/vision/members/viewer/remove/").status_code == 302
    assert not Membership.objects.filter(team=team, user=viewer).exists()


def test_a_developer_cannot_manage_members(client, teammate, viewer):
    client.force_login(teammate)
    assert client.post("/teams/vision/", {"username": "viewer", "role": "admin"}).status_code == 403
    assert Membership.objects.get(user=viewer).role == Role.VIEWER


def test_the_last_admin_cannot_be_removed(client, owner, team):
    client.force_login(owner)
    client.post("/teams/vision/members/owner/remove/")
    assert Membership.objects.filter(team=team, user=owner, role=Role.ADMIN).exists()
