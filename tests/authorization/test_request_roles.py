"""A request reads its user's roles once, and never acts on a role it has itself just changed."""

from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from accounts import services
from accounts.models import Role
from accounts.permissions import Action, Actor, decide


def request_of(user):
    request = RequestFactory().post("/teams/vision/members/")
    request.user = user
    return request


def test_every_actor_of_one_request_shares_one_read_of_the_roles(owner, team, other_team):
    request = request_of(owner)
    with CaptureQueriesContext(connection) as captured:
        for _ in range(3):
            actor = Actor.from_request(request)
            assert decide(actor, Action.MANAGE_TEAM, team)
            assert not decide(actor, Action.VIEW, other_team)
    assert len([q for q in captured if '"accounts_membership"' in q["sql"]]) == 1


def test_an_admin_who_steps_down_in_a_request_is_no_longer_admin_in_it(owner, teammate, team):
    request = request_of(owner)
    actor = Actor.from_request(request)
    services.membership_set(actor=actor, team=team, user=teammate, role=Role.ADMIN)
    assert decide(actor, Action.MANAGE_TEAM, team)

    services.membership_set(actor=actor, team=team, user=owner, role=Role.VIEWER)

    assert not decide(Actor.from_request(request), Action.MANAGE_TEAM, team)
    assert not decide(actor, Action.MANAGE_TEAM, team)


def test_another_request_sees_a_role_changed_elsewhere(teammate, team):
    assert not decide(Actor.from_request(request_of(teammate)), Action.MANAGE_TEAM, team)
    team.memberships.filter(user=teammate).update(role=Role.ADMIN)  # another process's change: no signal here
    assert decide(Actor.from_request(request_of(teammate)), Action.MANAGE_TEAM, team)
