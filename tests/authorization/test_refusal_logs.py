"""A refused action is a normal outcome: one WARNING line naming who, what and on what, no traceback,
and the refusal still on the audit trail."""

import logging

import pytest
from django.test import Client

from audit.models import AuditEvent


@pytest.fixture
def browser():
    return Client(raise_request_exception=False)


def lines_at_or_above_warning(caplog):
    return [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_a_page_action_the_policy_refuses_logs_one_warning_line_and_no_traceback(caplog, browser, viewer, version):
    browser.force_login(viewer)

    with caplog.at_level(logging.INFO):
        response = browser.post("/models/vision/iris/v1/build/")

    assert response.status_code == 403
    [line] = lines_at_or_above_warning(caplog)
    assert line.levelno == logging.WARNING and line.exc_info is None
    assert line.getMessage() == (
        "refused: viewer build.start on vision/iris:v1: building or cancelling an image build needs the "
        "developer role in team 'vision'; you are a viewer there"
    )
    event = AuditEvent.objects.get(outcome="refused")
    assert (event.actor, event.action, event.object_id) == (viewer, "build.start", str(version.pk))


def test_a_refusal_a_view_raises_itself_logs_one_warning_line_naming_the_page(caplog, browser, viewer):
    browser.force_login(viewer)

    with caplog.at_level(logging.INFO):
        response = browser.post("/environments/new/", {"name": "dev"})

    assert response.status_code == 403
    [line] = lines_at_or_above_warning(caplog)
    assert line.levelno == logging.WARNING and line.exc_info is None
    assert line.getMessage() == (
        "refused: viewer page.environment_create on POST /environments/new/: "
        "Adding an environment needs the admin role in a team."
    )
    assert AuditEvent.objects.get(outcome="refused").action == "page.environment_create"


def test_an_api_refusal_logs_the_same_one_line(caplog, api, viewer, version):
    with caplog.at_level(logging.INFO):
        response = api.as_user(viewer).post("/api/v1/builds/", {"version": version.pk}, format="json")

    assert response.status_code == 403, response.json()
    [line] = lines_at_or_above_warning(caplog)
    assert line.levelno == logging.WARNING and line.exc_info is None
    assert line.getMessage().startswith("refused: viewer build.start on vision/iris:v1: ")


def test_a_forbidden_answer_that_is_no_refusal_is_still_logged_by_django(caplog, viewer, version):
    browser_without_csrf = Client(enforce_csrf_checks=True, raise_request_exception=False)
    browser_without_csrf.force_login(viewer)

    with caplog.at_level(logging.INFO):
        response = browser_without_csrf.post("/models/vision/iris/v1/build/")

    assert response.status_code == 403
    assert [r.name for r in lines_at_or_above_warning(caplog)] == ["django.security.csrf"]
    assert not AuditEvent.objects.filter(outcome="refused").exists()
