"""The /audit/ page: what it shows, to whom, filtered how; and marking an event reviewed."""

import pytest
from django.contrib.auth.models import Permission

from audit.models import AuditEvent, AuditReview
from tests.support.factories import UserFactory

URL = "/audit/"


def rows(response):
    return {event.pk for event in response.context["page"].object_list}


def test_it_needs_a_signed_in_user(client):
    response = client.get(URL)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_a_member_sees_their_teams_events_with_actor_token_outcome_and_changes(client, teammate, events):
    client.force_login(teammate)
    response = client.get(URL)
    assert response.status_code == 200
    assert rows(response) == {events[name].pk for name in ("create", "refused", "approve")}
    html = response.content.decode()
    assert "token · release-bot" in html
    assert 'class="badge badge-bad"><span class="dot"></span>refused' in html
    assert "you never approve your own request" in html
    # The diff of the approval: one changed key, with both values.
    assert '<th scope="row" class="mono">state</th><td class="audit-before mono">pending</td>' in html
    assert "fraud" not in html and "incident 4411" not in html


def test_a_stranger_sees_nothing_of_another_team(client, stranger, events):
    client.force_login(stranger)
    response = client.get(URL)
    assert rows(response) == {events["other"].pk, events["other_refused"].pk}
    assert "iris" not in response.content.decode()
    assert rows(client.get(URL, {"team": "vision"})) == set()


def test_a_site_admin_sees_everything(client, site_admin, events):
    client.force_login(site_admin)
    assert rows(client.get(URL)) == {event.pk for event in events.values()}


def test_client_details_show_only_to_the_actor_and_those_who_see_everything(client, teammate, approver, events):
    client.force_login(approver)
    html = client.get(URL).content.decode()
    assert "10.0.0.9" in html  # the approver's own event
    assert "10.0.0.5" not in html and "curl/8" not in html  # the teammate's
    client.force_login(teammate)
    assert "10.0.0.5" in client.get(URL).content.decode()


def test_the_filters_of_the_page(client, site_admin, events):
    client.force_login(site_admin)
    assert rows(client.get(URL, {"action": "promotion.", "outcome": "refused"})) == {events["refused"].pk}
    assert rows(client.get(URL, {"q": "incident"})) == {events["other"].pk}
    day = events["other"].created_at.date().isoformat()
    assert rows(client.get(URL, {"since": day, "until": day})) == {events["other"].pk}


def test_the_history_of_one_object_is_the_page_filtered_by_type_and_id(client, teammate, events):
    client.force_login(teammate)
    response = client.get(URL, {"object_type": "deployments.promotionrequest", "object_id": "7"})
    assert rows(response) == {events["refused"].pk, events["approve"].pk}
    assert "History of iris v3 → prod" in response.content.decode()


def test_an_unreadable_filter_shows_the_error_and_no_events(client, site_admin, events):
    client.force_login(site_admin)
    response = client.get(URL, {"since": "last tuesday"})
    assert response.status_code == 200 and rows(response) == set()
    assert "is not a date" in response.content.decode()


def test_a_nul_character_in_a_filter_is_a_400_not_a_500(client, site_admin, events):
    client.force_login(site_admin)
    assert client.get(URL, {"actor": "a\x00b"}).status_code == 400
    assert client.get("/audit/export.csv", {"q": "\x00"}).status_code == 400


def test_empty_states(client, teammate):
    client.force_login(teammate)
    assert "Nothing on the record yet" in client.get(URL).content.decode()
    assert "No events match these filters" in client.get(URL, {"action": "model."}).content.decode()


def test_the_page_has_fifty_events_and_a_next_page(client, teammate, team, make_event):
    for number in range(51):
        make_event(actor=teammate, team=team, object_id=str(number), days_ago=number / 100)
    client.force_login(teammate)
    first = client.get(URL)
    assert len(first.context["page"].object_list) == 50 and first.context["page"].has_next()
    assert [event.object_id for event in client.get(URL, {"page": 2}).context["page"].object_list] == ["50"]


def test_the_navigation_links_to_the_audit_page(client, viewer):
    client.force_login(viewer)
    assert f'href="{URL}"' in client.get(URL).content.decode()


def test_a_reviewer_marks_an_event_reviewed_with_a_new_row(client, site_admin, events):
    client.force_login(site_admin)
    event = events["other"]
    response = client.post(f"/audit/{event.pk}/review/", {"note": "Incident confirmed", "next": "/audit/?flagged=1"})
    assert response.status_code == 302 and response["Location"] == "/audit/?flagged=1"
    review = AuditReview.objects.get()
    assert (review.event, review.reviewer, review.note) == (event, site_admin, "Incident confirmed")
    assert AuditEvent.objects.get(pk=event.pk).reason == event.reason  # the event itself is untouched
    assert "reviewed" in client.get(URL, {"flagged": "1"}).content.decode()


def test_reviewing_needs_the_permission(client, owner, team, events):
    client.force_login(owner)  # a team admin, not a reviewer
    assert client.post(f"/audit/{events['approve'].pk}/review/").status_code == 403
    officer = UserFactory(username="officer")
    officer.user_permissions.add(
        Permission.objects.get(codename="add_auditreview"), Permission.objects.get(codename="view_auditevent")
    )
    client.force_login(officer)
    assert client.post(f"/audit/{events['approve'].pk}/review/").status_code == 302
    assert AuditReview.objects.filter(reviewer=officer).count() == 1


def test_an_event_out_of_sight_cannot_be_reviewed_even_by_url(client, stranger, events):
    stranger.user_permissions.add(Permission.objects.get(codename="add_auditreview"))
    client.force_login(stranger)
    assert client.post(f"/audit/{events['approve'].pk}/review/").status_code == 404


def test_an_outside_next_url_is_not_followed(client, site_admin, events):
    client.force_login(site_admin)
    response = client.post(f"/audit/{events['other'].pk}/review/", {"next": "https://evil.example/"})
    assert response["Location"] == URL


@pytest.mark.parametrize("path", ["/audit/", "/audit/export.csv", "/audit/export.jsonl"])
def test_every_page_answers_on_an_empty_trail(client, site_admin, path):
    client.force_login(site_admin)
    assert client.get(path).status_code == 200
