"""Request ids: made or taken from X-Request-ID, echoed back, in every log line written for the
request (SLIPWAY_LOG_FORMAT=json), and carried to the Celery tasks the request queues."""

import io
import json
import logging
import re

import pytest
from django.test import Client

from config.logs import JsonFormatter, RequestIdFilter, accept_request_id
from deployments.models import Build
from tests.support.factories import RegistryFactory, VersionFactory
from tests.support.services import wait_until


def test_every_response_carries_a_new_request_id():
    client = Client()
    first, second = client.get("/healthz"), client.get("/no/such/page")

    assert re.fullmatch(r"[0-9a-f]{32}", first["X-Request-ID"])
    assert re.fullmatch(r"[0-9a-f]{32}", second["X-Request-ID"])
    assert first["X-Request-ID"] != second["X-Request-ID"]


def test_a_clients_request_id_is_echoed_back():
    response = Client().get("/healthz", HTTP_X_REQUEST_ID="ci-pipeline-812.step-3")

    assert response["X-Request-ID"] == "ci-pipeline-812.step-3"


@pytest.mark.parametrize("hostile", ["a" * 65, "two words", "line\r\nSet-Cookie: x=1", "", "-starts-with-dash"])
def test_an_unfit_request_id_is_replaced_not_echoed(hostile):
    response = Client().get("/healthz", HTTP_X_REQUEST_ID=hostile)

    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])
    assert accept_request_id(hostile) != hostile


@pytest.fixture
def json_log():
    """What the root logger writes, formatted as SLIPWAY_LOG_FORMAT=json formats it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_json_log_lines_carry_the_request_id_of_the_request_they_were_written_for(json_log, settings):
    settings.METRICS_TOKEN = ""
    Client(REMOTE_ADDR="10.9.9.9").get("/metrics", HTTP_X_REQUEST_ID="scrape-1")  # refused: logs a warning too
    Client().get("/healthz", HTTP_X_REQUEST_ID="probe-2")

    lines = json_log()
    by_id = {}
    for line in lines:
        assert {"time", "level", "logger", "message", "request_id"} <= line.keys()
        by_id.setdefault(line["request_id"], []).append(line)
    request_lines = [line for line in lines if line["logger"] == "slipway.request"]
    assert [(line["request_id"], line["path"], line["status"]) for line in request_lines] == [
        ("scrape-1", "/metrics", 403),
        ("probe-2", "/healthz", 200),
    ]
    assert request_lines[0]["route"] == "/metrics"
    assert request_lines[0]["duration_ms"] >= 0
    # Lines other code writes while serving the request carry its id too.
    assert [line["message"] for line in by_id["scrape-1"] if line["logger"] == "config.metrics"] == [
        "metrics refused to 10.9.9.9 (not in SLIPWAY_METRICS_ALLOWED_NETWORKS, no valid token)"
    ]


# The module's Celery worker (tests.support.workers) writes JSON lines.
WORKER_ENV = {"SLIPWAY_LOG_FORMAT": "json"}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_build_queued_by_a_request_logs_in_the_worker_under_that_requests_id(celery_worker, api, teammate, token_for):
    RegistryFactory(team=None)
    version = VersionFactory(model__team=teammate.memberships.first().team)
    client = api.with_token(token_for(teammate))

    response = client.post("/api/v1/builds/", {"version": version.pk}, format="json", HTTP_X_REQUEST_ID="ci-run-42")
    assert response.status_code == 201, response.content
    assert response["X-Request-ID"] == "ci-run-42"
    build_id = response.json()["id"]
    wait_until(lambda: Build.objects.get(pk=build_id).is_finished, timeout=60, message="the build to finish")

    def task_lines():
        lines = [json.loads(line) for line in celery_worker.log_path.read_text().splitlines() if line.startswith("{")]
        return [line for line in lines if line["request_id"] == "ci-run-42"]

    lines = wait_until(task_lines, timeout=10, message="the worker's log lines for request ci-run-42")
    assert any("deployments.tasks.run_build" in line["message"] and "succeeded" in line["message"] for line in lines), (
        lines
    )
