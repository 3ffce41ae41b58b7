"""Who sees which events, and the filters the page, the exports and the API share."""

import pytest
from django.contrib.auth.models import AnonymousUser, Permission
from django.core.exceptions import ValidationError

from audit.selectors import event_list
from tests.audit.conftest import ids
from tests.support.factories import UserFactory


def visible(user, **filters):
    return ids(event_list(user=user, filters=filters))


def test_a_member_sees_their_teams_events_and_their_own(teammate, events):
    assert visible(teammate) == ids([events["create"], events["refused"], events["approve"]])


def test_a_stranger_sees_only_their_own_teams_events(stranger, events):
    assert visible(stranger) == ids([events["other"], events["other_refused"]])


def test_an_event_of_another_team_is_visible_to_its_actor(stranger, team, make_event, events):
    attempt = make_event(actor=stranger, team=team, action="deploy", outcome="refused", reason="not a member")
    assert attempt.pk in visible(stranger)


def test_a_site_admin_sees_everything(site_admin, events):
    assert visible(site_admin) == ids(events.values())


def test_the_view_permission_makes_a_compliance_officer_who_sees_everything(events):
    officer = UserFactory(username="officer")
    officer.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    assert visible(officer) == ids(events.values())


def test_an_inactive_admin_or_anonymous_visitor_sees_nothing(events):

    assert visible(AnonymousUser()) == set()
    assert visible(UserFactory(username="gone", is_superuser=True, is_active=False)) == set()


def test_the_newest_event_comes_first(site_admin, events):
    listed = list(event_list(user=site_admin, filters={}))
    assert [event.created_at for event in listed] == sorted((event.created_at for event in listed), reverse=True)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"action": "promotion."}, ["refused", "approve", "platform"]),
        ({"action": "promotion.*"}, ["refused", "approve", "platform"]),
        ({"action": "promotion.approve"}, ["refused", "approve"]),
        ({"action": "promotion"}, []),
        ({"outcome": "refused"}, ["refused", "other_refused"]),
        ({"actor": "stranger"}, ["other", "other_refused"]),
        ({"actor": "platform"}, ["platform"]),
        ({"team": "other"}, ["other", "other_refused"]),
        ({"environment": "prod"}, ["refused", "approve"]),
        ({"flagged": "true"}, ["other"]),
        ({"flagged": "0"}, ["create", "refused", "approve", "other_refused", "platform"]),
        ({"object_type": "deployments.promotionrequest", "object_id": "7"}, ["refused", "approve"]),
        ({"q": "INCIDENT 4411"}, ["other"]),
        ({"q": "iris"}, ["create", "refused", "approve"]),
        ({"action": "promotion.", "outcome": "succeeded"}, ["approve", "platform"]),
    ],
)
def test_filters(site_admin, events, filters, expected):
    assert visible(site_admin, **filters) == ids(events[name] for name in expected)


def test_since_and_until_take_dates_as_whole_days_and_datetimes_exactly(site_admin, events):
    day_of = events["other"].created_at.date().isoformat()  # 2 days ago
    assert visible(site_admin, since=day_of, until=day_of) == ids([events["other"]])
    moment = events["other_refused"].created_at.isoformat()  # 3 days ago, exactly
    assert visible(site_admin, until=moment) == ids(
        [events["create"], events["refused"], events["platform"], events["other_refused"]]
    )
    assert visible(site_admin, since=moment) == ids([events["approve"], events["other"], events["other_refused"]])


def test_an_offset_whose_plus_became_a_space_in_the_url_still_reads(site_admin, events):
    moment = events["other_refused"].created_at.isoformat()
    assert moment.endswith("+00:00")
    assert visible(site_admin, since=moment.replace("+", " ")) == visible(site_admin, since=moment)


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2025-13-45"}, "until"),
        ({"outcome": "maybe"}, "outcome"),
        ({"flagged": "perhaps"}, "flagged"),
    ],
)
def test_a_filter_that_cannot_be_read_is_an_error_not_ignored(site_admin, filters, field):
    with pytest.raises(ValidationError) as raised:
        event_list(user=site_admin, filters=filters)
    assert field in raised.value.message_dict


def test_a_nul_character_in_a_filter_is_refused_naming_it(site_admin, events):
    with pytest.raises(ValidationError) as refused:
        list(event_list(user=site_admin, filters={"actor": "a\x00b"}))
    assert "actor" in refused.value.message_dict
