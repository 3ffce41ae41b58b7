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
