"""/api/v1/audit/: read only, the page's filters, the project's pagination, the token's read scope."""

import pytest

URL = "/api/v1/audit/"


def listed(response):
    assert response.status_code == 200, response.content
    return [record["id"] for record in response.json()["results"]]


def test_a_member_lists_their_teams_events_newest_first(api, teammate, events):
    data = api.as_user(teammate).get(URL).json()
    assert data["count"] == 3
    assert [record["id"] for record in data["results"]] == [
        events[name].pk for name in ("approve", "refused", "create")
    ]
    approve = data["results"][0]
    assert {
        key: approve[key]
        for key in (
            "actor",
            "token_name",
            "action",
            "outcome",
            "team",
            "environment",
            "object_type",
            "object_id",
            "before",
            "after",
        )
    } == {
        "actor": "approver",
        "token_name": "release-bot",
        "action": "promotion.approve",
        "outcome": "succeeded",
        "team": "vision",
        "environment": "prod",
        "object_type": "deployments.promotionrequest",
        "object_id": "7",
        "before": {"state": "pending"},
        "after": {"state": "approved"},
    }
    assert approve["ip_address"] is None  # another person's address


def test_a_stranger_neither_lists_nor_retrieves_another_teams_events(api, stranger, events):
    client = api.as_user(stranger)
    assert set(listed(client.get(URL))) == {events["other"].pk, events["other_refused"].pk}
    assert client.get(f"{URL}{events['approve'].pk}/").status_code == 404
    assert listed(client.get(URL, {"team": "vision"})) == []


def test_a_site_admin_lists_everything(api, site_admin, events):
    assert api.as_user(site_admin).get(URL).json()["count"] == len(events)


def test_retrieve(api, teammate, events):
    record = api.as_user(teammate).get(f"{URL}{events['refused'].pk}/").json()
    assert (record["outcome"], record["reason"], record["ip_address"]) == (
        "refused",
        "you never approve your own request",
        "10.0.0.5",
    )


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"action": "promotion."}, ["approve", "platform", "refused"]),
        ({"outcome": "refused"}, ["other_refused", "refused"]),
        ({"actor": "stranger", "flagged": "true"}, ["other"]),
        ({"object_type": "deployments.promotionrequest", "object_id": "7"}, ["approve", "refused"]),
        ({"q": "break glass"}, ["other"]),
        ({"environment": "staging"}, ["other"]),
    ],
)
def test_filters(api, site_admin, events, params, expected):
    assert listed(api.as_user(site_admin).get(URL, params)) == [events[name].pk for name in expected]


def test_since_until_filters(api, site_admin, events):
    client = api.as_user(site_admin)
    assert listed(
        client.get(
            URL, {"since": events["platform"].created_at.isoformat(), "until": events["other"].created_at.isoformat()}
        )
    ) == [events["other"].pk, events["other_refused"].pk, events["platform"].pk]


def test_an_unreadable_filter_is_a_400_naming_it(api, site_admin, events):
    response = api.as_user(site_admin).get(URL, {"since": "tomorrow-ish"})
    assert response.status_code == 400 and "since" in response.json()


@pytest.mark.parametrize("key", ["actor", "action", "team", "environment", "object_id", "q"])
def test_a_nul_character_in_a_filter_is_a_400_naming_it_not_a_500(api, site_admin, events, key):
    response = api.as_user(site_admin).get(URL, {key: "a\x00b"})
    assert response.status_code == 400, response.content
    assert "Null characters" in str(response.json())


def test_pages_of_the_project_default_size(api, site_admin, events):
    data = api.as_user(site_admin).get(URL, {"page_size": 2}).json()
    assert data["count"] == len(events) and len(data["results"]) == 2 and data["next"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", ""),
        ("put", "{pk}/"),
        ("patch", "{pk}/"),
        ("delete", "{pk}/"),
    ],
)
def test_the_trail_cannot_be_written_through_the_api(api, site_admin, events, method, path):
    event = events["approve"]
    response = getattr(api.as_user(site_admin), method)(URL + path.format(pk=event.pk), {"reason": "x"}, format="json")
    assert response.status_code == 405
    event.refresh_from_db()
    assert event.reason == ""


def test_a_token_needs_the_read_scope(api, teammate, token_for, events):
    assert api.with_token(token_for(teammate, scopes=("deploy",))).get(URL).status_code == 403
    assert len(listed(api.with_token(token_for(teammate, scopes=("read",))).get(URL))) >= 3


def test_anonymous_requests_are_refused(api, events):
    assert api.get(URL).status_code in (401, 403)


def test_the_schema_documents_the_filters(api, site_admin):
    schema = api.as_user(site_admin).get("/api/schema/", {"format": "json"}).json()
    names = {parameter["name"] for parameter in schema["paths"]["/api/v1/audit/"]["get"]["parameters"]}
    assert {"action", "since", "until", "outcome", "q", "page"} <= names
    assert set(schema["paths"]["/api/v1/audit/{id}/"]) == {"get"}
