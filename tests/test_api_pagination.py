"""API lists count their rows without a COUNT query when the page asked for is the last one."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.support.factories import ModelFactory


@pytest.fixture
def five_models(team):
    return [ModelFactory(team=team, name=f"m{i}") for i in range(5)]


def page(client, query):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(f"/api/v1/models/?{query}")
    counted = [q["sql"] for q in captured if q["sql"].lstrip().startswith("SELECT COUNT(*)")]
    return response, counted


def test_a_list_that_fits_its_page_is_counted_without_a_count_query(api, teammate, five_models):
    response, counted = page(api.as_user(teammate), "page_size=10")
    body = response.json()
    assert body["count"] == 5 and len(body["results"]) == 5
    assert body["next"] is None and body["previous"] is None
    assert counted == []


def test_pages_before_the_last_are_counted_and_the_last_knows_its_count(api, teammate, five_models):
    client = api.as_user(teammate)
    first, counted = page(client, "page_size=2")
    assert first.json()["count"] == 5 and [m["name"] for m in first.json()["results"]] == ["m0", "m1"]
    assert "page=2" in first.json()["next"] and len(counted) == 1

    last, counted = page(client, "page_size=2&page=3")
    assert last.json()["count"] == 5 and [m["name"] for m in last.json()["results"]] == ["m4"]
    assert last.json()["next"] is None and "page=2" in last.json()["previous"]
    assert counted == []

    exactly_full, _ = page(client, "page_size=5")
    assert exactly_full.json()["count"] == 5 and exactly_full.json()["next"] is None


@pytest.mark.parametrize("number", ["4", "0", "-1", "two", "last"])
def test_a_page_out_of_range_or_not_a_number_is_a_404_naming_it(api, teammate, five_models, number):
    response, _ = page(api.as_user(teammate), f"page_size=2&page={number}")
    if number == "last":
        assert response.status_code == 200 and [m["name"] for m in response.json()["results"]] == ["m4"]
    else:
        assert response.status_code == 404
        assert "Invalid page" in response.json()["detail"]


def test_an_empty_list_is_one_empty_page(api, teammate, team):
    response, counted = page(api.as_user(teammate), "")
    assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}
    assert counted == []


def test_a_page_before_the_last_reads_its_rows_once(api, teammate, five_models):
    # The row past the page says that more pages follow; the page is then shown from the rows read,
    # not read a second time (with every prefetch of the list) after the COUNT.
    with CaptureQueriesContext(connection) as captured:
        response = api.as_user(teammate).get("/api/v1/models/?page_size=2")
    reads = [
        q["sql"]
        for q in captured
        if 'FROM "registry_registeredmodel"' in q["sql"] and not q["sql"].lstrip().startswith("SELECT COUNT(*)")
    ]
    assert [m["name"] for m in response.json()["results"]] == ["m0", "m1"] and response.json()["count"] == 5
    assert len(reads) == 1


def test_limit_sizes_the_page_of_every_list_the_audit_trail_included(api, owner, team, five_models):
    client = api.as_user(owner)
    for number in range(3):
        client.post("/api/v1/tokens/", {"name": f"t{number}", "scopes": ["read"]}, format="json")
    audit = client.get("/api/v1/audit/?limit=2").json()
    assert audit["count"] == 3 and len(audit["results"]) == 2 and "page=2" in audit["next"]
    models, _ = page(client, "limit=2")
    assert [m["name"] for m in models.json()["results"]] == ["m0", "m1"]
    both, _ = page(client, "limit=2&page_size=4")
    assert len(both.json()["results"]) == 4  # page_size, the list's own word, wins
