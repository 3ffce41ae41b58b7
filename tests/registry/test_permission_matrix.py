"""Every registry endpoint and page, for every kind of caller.

A user outside the team must learn nothing: the team's objects answer 404 exactly like
objects that do not exist. Members without the role for an action get 403 with the reason.
"""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.support.factories import ModelFactory, VersionFactory

CALLERS = ["viewer", "teammate", "approver", "owner", "stranger", "site_admin", "anonymous"]


@pytest.fixture
def world(model):
    return {"model": model, "version": VersionFactory(model=model, number=1)}


def client_as(request, api, caller):
    if caller == "anonymous":
        return api
    return api.as_user(request.getfixturevalue(caller))


def version_upload():
    return {"framework": "sklearn", "artifact": SimpleUploadedFile("m.joblib", b"m")}


API_CASES = [
    # (method, url template, body, expected status per caller in CALLERS order)
    ("get", "/api/v1/teams/vision/", None, [200, 200, 200, 200, 404, 200, 401]),
    ("get", "/api/v1/models/{model}/", None, [200, 200, 200, 200, 404, 200, 401]),
    ("get", "/api/v1/models/{model}/versions/", None, [200, 200, 200, 200, 404, 200, 401]),
    ("get", "/api/v1/versions/{version}/", None, [200, 200, 200, 200, 404, 200, 401]),
    ("patch", "/api/v1/models/{model}/", {"task": "detection"}, [403, 200, 200, 200, 404, 200, 401]),
    ("post", "/api/v1/models/{model}/archive/", None, [403, 403, 403, 200, 404, 200, 401]),
    ("post", "/api/v1/models/", {"team": "vision", "name": "new-model"}, [403, 201, 201, 201, 400, 201, 401]),
    ("post", "/api/v1/models/{model}/versions/", version_upload, [403, 201, 201, 201, 404, 201, 401]),
]


@pytest.mark.parametrize(("method", "url", "body", "expected"), API_CASES, ids=[f"{c[0]} {c[1]}" for c in API_CASES])
@pytest.mark.parametrize("caller", CALLERS)
def test_api_roles_matrix(request, api, world, caller, method, url, body, expected):
    client = client_as(request, api, caller)
    url = url.format(model=world["model"].pk, version=world["version"].pk)
    payload = body() if callable(body) else body
    kwargs = {"format": "multipart"} if callable(body) else {"format": "json"}
    response = getattr(client, method)(url, payload, **kwargs) if payload is not None else getattr(client, method)(url)
    assert response.status_code == expected[CALLERS.index(caller)], response.content[:300]
    if response.status_code == 403:
        assert "role" in response.json()["detail"]


def test_a_stranger_cannot_tell_a_hidden_team_from_a_missing_one(api, stranger, team):
    client = api.as_user(stranger)
    hidden = client.post("/api/v1/models/", {"team": "vision", "name": "x"}, format="json")
    missing = client.post("/api/v1/models/", {"team": "no-such-team", "name": "x"}, format="json")
    assert hidden.status_code == missing.status_code == 400
    assert hidden.json()["team"][0].replace("vision", "T") == missing.json()["team"][0].replace("no-such-team", "T")


def test_lists_show_only_the_callers_teams(api, stranger, world, other_team):

    ModelFactory(team=other_team, name="theirs")
    client = api.as_user(stranger)
    assert [m["name"] for m in client.get("/api/v1/models/").json()["results"]] == ["theirs"]
    assert client.get("/api/v1/versions/").json()["count"] == 0
    assert [t["slug"] for t in client.get("/api/v1/teams/").json()["results"]] == ["other"]


PAGE_CASES = [
    ("get", "/models/vision/iris/", [200, 200, 200, 200, 404, 200]),
    ("get", "/models/vision/iris/v1/", [200, 200, 200, 200, 404, 200]),
    ("get", "/models/vision/iris/versions/new/", [403, 200, 200, 200, 404, 200]),
    ("get", "/models/vision/iris/edit/", [403, 200, 200, 200, 404, 200]),
    ("post", "/models/vision/iris/archive/", [403, 403, 403, 302, 404, 302]),
    ("get", "/teams/vision/", [200, 200, 200, 200, 404, 200]),
    ("get", "/models/new/", [403, 200, 200, 200, 200, 200]),
]


@pytest.mark.parametrize(("method", "url", "expected"), PAGE_CASES, ids=[f"{c[0]} {c[1]}" for c in PAGE_CASES])
@pytest.mark.parametrize("caller", CALLERS[:-1])
def test_page_roles_matrix(request, client, world, caller, method, url, expected):
    client.force_login(request.getfixturevalue(caller))
    response = getattr(client, method)(url)
    assert response.status_code == expected[CALLERS.index(caller)]


@pytest.mark.parametrize("url", ["/models/", "/models/vision/iris/", "/settings/tokens/", "/teams/"])
def test_pages_send_anonymous_visitors_to_sign_in(client, world, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
