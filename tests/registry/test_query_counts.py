"""No list grows its number of queries with its number of rows, and a write reads what it needs once."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.support.factories import ModelFactory, RegistryFactory, VersionFactory

URLS = [
    "/api/v1/models/",
    "/api/v1/versions/",
    "/api/v1/models/{model}/versions/",
    "/api/v1/teams/",
    "/models/",
    "/models/vision/iris/",
]


def add_rows(team, model, count):
    for _ in range(count):
        ModelFactory(team=team)
        VersionFactory(model=model, metrics={"accuracy": 0.5, "loss": 0.1}, tags=["a", "b"])


def queries_for(client, url):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


@pytest.mark.parametrize("url", URLS)
def test_query_count_does_not_grow_with_rows(client, teammate, team, model, url):
    client.force_login(teammate)
    url = url.format(model=model.pk)
    add_rows(team, model, 2)
    few = queries_for(client, url)
    add_rows(team, model, 25)
    many = queries_for(client, url)
    assert many == few, f"{url}: {few} queries with 2 rows, {many} with 27"


def outside_parentheses(sql: str) -> str:
    while (inner := re.sub(r"\([^()]*\)", "", sql)) != sql:
        sql = inner
    return sql


def reading(captured, table: str) -> list[str]:
    """The SELECTs whose own FROM (not a subquery's) is `table`."""
    return [
        q["sql"]
        for q in captured
        if q["sql"].lstrip().startswith("SELECT") and f'FROM "{table}"' in outside_parentheses(q["sql"])
    ]


def test_an_upload_reads_the_token_and_the_users_roles_once(api, teammate, model, token_for):
    # The upload is checked three times (the view, the service, its automatic build) by one policy,
    # which reads the user's roles and the token's team limits once per request.
    RegistryFactory()
    client = api.with_token(token_for(teammate))
    with CaptureQueriesContext(connection) as captured:
        response = client.post(
            f"/api/v1/models/{model.pk}/versions/",
            {"framework": "sklearn", "artifact": SimpleUploadedFile("m.joblib", b"m")},
            format="multipart",
        )
    assert response.status_code == 201, response.json()
    assert len(reading(captured, "accounts_apitoken")) == 1
    assert len(reading(captured, "accounts_apitoken_teams")) == 1
    assert len(reading(captured, "accounts_membership")) == 1
    assert len(reading(captured, "deployments_containerregistry")) == 1


def test_a_new_model_reads_the_token_and_the_users_memberships_once(api, teammate, team, token_for):
    # The team named in the request is found among the user's memberships, read with their roles;
    # the permission check that follows reads nothing more.
    client = api.with_token(token_for(teammate))
    with CaptureQueriesContext(connection) as captured:
        response = client.post("/api/v1/models/", {"team": team.slug, "name": "iris"}, format="json")
    assert response.status_code == 201, response.json()
    assert len(reading(captured, "accounts_apitoken")) == 1
    assert len(reading(captured, "accounts_membership")) == 1
    assert reading(captured, "accounts_team") == []
    assert len(reading(captured, "registry_registeredmodel")) == 0  # uniqueness is the index's, not a query's
