import datetime

import pytest
from django.utils import timezone

from audit.models import AuditEvent

NOW = timezone.now()


@pytest.fixture
def make_event():
    """An event written directly, with the time and fields a test needs (inserts are all the trail allows)."""

    def make(*, actor=None, team=None, action="model.update", days_ago=0, **fields):
        fields.setdefault("actor_username", actor.get_username() if actor else "platform")
        return AuditEvent.objects.create(
            actor=actor, team=team, action=action, created_at=NOW - datetime.timedelta(days=days_ago), **fields
        )

    return make


@pytest.fixture
def events(make_event, team, other_team, teammate, stranger, approver):
    """A small trail: three events in "vision", two in "other", one of the platform's without a team."""
    return {
        "create": make_event(
            actor=teammate,
            team=team,
            action="model.create",
            object_type="registry.registeredmodel",
            object_id="1",
            object_repr="vision/iris",
            after={"name": "iris"},
            days_ago=10,
        ),
        "refused": make_event(
            actor=teammate,
            team=team,
            action="promotion.approve",
            outcome="refused",
            object_type="deployments.promotionrequest",
            object_id="7",
            object_repr="iris v3 → prod",
            reason="you never approve your own request",
            environment="prod",
            days_ago=5,
            ip_address="10.0.0.5",
            user_agent="curl/8",
        ),
        "approve": make_event(
            actor=approver,
            team=team,
            action="promotion.approve",
            object_type="deployments.promotionrequest",
            object_id="7",
            object_repr="iris v3 → prod",
            environment="prod",
            token_name="release-bot",
            before={"state": "pending"},
            after={"state": "approved"},
            days_ago=1,
            ip_address="10.0.0.9",
        ),
        "other": make_event(
            actor=stranger,
            team=other_team,
            action="rollout.start",
            object_type="deployments.rollout",
            object_id="3",
            object_repr="fraud v1 → staging",
            environment="staging",
            flagged=True,
            reason="break glass: incident 4411",
            days_ago=2,
        ),
        "other_refused": make_event(
            actor=stranger,
            team=other_team,
            action="build.cancel",
            outcome="refused",
            reason="needs the developer role",
            days_ago=3,
        ),
        "platform": make_event(
            action="promotion.expire",
            object_type="deployments.promotionrequest",
            object_id="9",
            object_repr="expired request",
            days_ago=4,
        ),
    }


def ids(events):
    return {event.pk for event in events}
