"""The audit page, its exports and the API do not grow their number of queries with their number of rows."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditReview
from tests.support.factories import UserFactory

URLS = [
    "/audit/",
    "/audit/?action=promotion.&outcome=refused",
    "/api/v1/audit/",
    "/audit/export.csv",
    "/audit/export.jsonl",
]


def add_events(make_event, team, count, reviewer):
    for number in range(count):
        actor = UserFactory(username=f"actor{number}-{team.pk}-{count}")
        event = make_event(
            actor=actor,
            team=team,
            action="promotion.approve",
            outcome="refused",
            token_name="ci",
            object_type="deployments.promotionrequest",
            object_id=str(number),
            before={"state": "pending"},
            after={"state": "approved"},
            reason="no",
        )
        AuditReview.objects.create(event=event, reviewer=reviewer, reviewer_username=reviewer.username)


def queries_for(client, url):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
        if response.streaming:
            b"".join(response.streaming_content)
    assert response.status_code == 200
    return len(captured)


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("who", ["teammate", "site_admin"])
def test_query_count_does_not_grow_with_rows(client, request, make_event, team, site_admin, url, who):
    client.force_login(request.getfixturevalue(who))
    add_events(make_event, team, 2, site_admin)
    few = queries_for(client, url)
    add_events(make_event, team, 25, site_admin)
    many = queries_for(client, url)
    assert many == few, f"{url}: {few} queries with 2 rows, {many} with 27"
