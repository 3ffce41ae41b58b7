"""No list grows its number of queries with its number of rows."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.support.factories import ModelFactory, VersionFactory

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
