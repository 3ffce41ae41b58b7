"""Every answer under /api/ is JSON, 500s and unknown addresses included; pages stay HTML."""

import io
import json
import logging

import pytest
from django.test import Client

from config.logs import JsonFormatter, RequestIdFilter
from tests.support.factories import EnvironmentFactory


@pytest.fixture
def json_log():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)


def test_a_crash_in_an_api_view_answers_json_with_the_request_id_of_its_log_line(settings, json_log):
    settings.ROOT_URLCONF = "tests.support.failing_urls"
    response = Client(raise_request_exception=False).get("/api/v1/test-crash/")

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["request_id"] == response["X-Request-ID"]
    assert "Internal server error" in body["detail"]
    errors = [line for line in json_log() if line["level"] == "ERROR"]
    assert errors, "the failure was not logged"
    assert {line["request_id"] for line in errors} == {body["request_id"]}
    assert "Crash" in json.dumps(errors) or any("test-crash" in line["message"] for line in errors)


def test_an_unknown_api_address_answers_json():
    response = Client().get("/api/v1/no-such-thing/")

    assert response.status_code == 404
    assert response.json() == {"detail": "No API endpoint at /api/v1/no-such-thing/."}


def test_pages_keep_their_html_error_pages():
    response = Client().get("/no/such/page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/can-i/?action=deploy&object=team:%00",
        "/api/v1/can-i/?action=deploy&object=model:1&user=%00",
        "/api/v1/teams/%00/",
        "/api/v1/models/?team=a%00b",
    ],
)
def test_a_nul_character_in_an_api_address_is_a_json_400_not_a_500(site_admin, path):
    client = Client(raise_request_exception=False)
    client.force_login(site_admin)
    response = client.get(path)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert "Null characters" in response.json()["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/?team=%00", "/models/?q=%00", "/models/?team=%00", "/models/vision/%00/"])
def test_a_nul_character_in_a_page_address_is_a_400_page_not_a_500(site_admin, path):
    client = Client(raise_request_exception=False)
    client.force_login(site_admin)
    response = client.get(path)

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {"approver_groups": ["g\x00"]},
        {"deployment_settings": {"env": {"A": "b\x00"}}},
        {"description": "fine", "nested": [{"deep": "x\x00"}]},
    ],
)
def test_a_nul_character_in_a_json_body_is_a_400_not_a_500(site_admin, body):
    environment = EnvironmentFactory(name="dev")
    client = Client(raise_request_exception=False)
    client.force_login(site_admin)
    response = client.patch(
        f"/api/v1/environments/{environment.pk}/", json.dumps(body), content_type="application/json"
    )

    assert response.status_code == 400, response.content
    assert "Null characters" in response.json()["detail"]


# -- what an outside reviewer's bad input turned into 500s ------------------------------------------


@pytest.fixture
def admin_client(site_admin):
    client = Client(raise_request_exception=False)
    client.force_login(site_admin)
    return client


@pytest.mark.django_db
def test_can_i_takes_an_environment_by_id_or_name_and_names_the_field_when_there_is_none(api, teammate, model):
    dev = EnvironmentFactory(name="dev", team=model.team)
    client = api.as_user(teammate)
    by_id = client.get(f"/api/v1/can-i/?action=deploy&object=model:{model.pk}&environment={dev.pk}").json()
    by_name = client.get(f"/api/v1/can-i/?action=deploy&object=model:{model.pk}&environment=dev").json()
    assert by_name == by_id and by_name["allowed"] is True
    for name in ("prod", "7x"):
        response = client.get(f"/api/v1/can-i/?action=deploy&object=model:{model.pk}&environment={name}")
        assert response.status_code == 400, response.content
        assert f"No environment '{name}'" in response.json()["environment"][0]


@pytest.mark.django_db
@pytest.mark.parametrize("at", ["2026-02-30T10:00:00Z", "2026-11-25T25:00:00Z"])
def test_a_time_that_does_not_exist_is_a_400_naming_at_in_the_api_and_a_message_on_the_page(admin_client, at):
    environment = EnvironmentFactory(name="dev")
    response = admin_client.get(f"/api/v1/environments/{environment.pk}/releases/?at={at}")
    assert response.status_code == 400, response.content
    assert "ISO 8601" in response.json()["at"][0]

    page = admin_client.get(f"/environments/{environment.pk}/", {"at": at})
    assert page.status_code == 200
    assert "is not a date and time" in page.content.decode()


@pytest.mark.django_db
def test_a_deeply_nested_json_body_is_a_400_not_a_500(admin_client):
    response = admin_client.post("/api/v1/models/", "[" * 100_000, content_type="application/json")
    assert response.status_code == 400, response.content
    assert "nested deeper than" in response.json()["detail"]
    nested = json.dumps({"description": "x", "deployment_settings": {"env": nested_list(200)}})
    environment = EnvironmentFactory(name="dev")
    response = admin_client.patch(f"/api/v1/environments/{environment.pk}/", nested, content_type="application/json")
    assert response.status_code == 400 and "nested deeper than" in response.json()["detail"]


def nested_list(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.django_db
def test_a_deeply_nested_metrics_field_of_a_multipart_upload_is_a_400_naming_it(api, teammate, model):
    response = api.as_user(teammate).post(
        f"/api/v1/models/{model.pk}/versions/",
        {"framework": "sklearn", "metrics": "[" * 5000 + "]" * 5000},
        format="multipart",
    )
    assert response.status_code == 400, response.content
    assert response.json()["metrics"] == ["Not valid JSON: nested deeper than 64 levels at character 64."]


@pytest.mark.django_db
def test_deeply_nested_deployment_settings_in_the_environment_form_are_a_form_error(admin_client):
    environment = EnvironmentFactory(name="dev")
    response = admin_client.post(
        f"/environments/{environment.pk}/edit/", {"name": "dev", "deployment_settings": "[" * 5000 + "]" * 5000}
    )
    assert response.status_code == 400  # the form again, with its errors
    assert "Not valid JSON: nested deeper than 64 levels" in response.content.decode()
    environment.refresh_from_db()
    assert environment.deployment_settings != []


@pytest.mark.django_db
def test_a_body_over_the_upload_limit_is_a_json_413(admin_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = admin_client.post(
        "/api/v1/models/", json.dumps({"name": "big", "description": "x" * 4096}), content_type="application/json"
    )
    assert response.status_code == 413, response.content
    assert response["Content-Type"] == "application/json"
    assert "too large" in response.json()["detail"]
