"""audit.services.record: every field filled, the team and environment found, values made JSON-safe."""

import datetime
import ipaddress
import uuid
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils.functional import SimpleLazyObject

from accounts.models import ApiToken
from accounts.permissions import Action, Actor, require
from audit.models import AuditEvent
from audit.services import model_snapshot, record
from tests.support.factories import VersionFactory


@dataclass
class FakeToken:
    name: str


@dataclass
class FakeActor:
    user: object
    token: object = None
    ip_address: str | None = None
    user_agent: str = ""


def test_it_fills_every_field_from_an_actor_with_a_token(teammate, model):
    actor = FakeActor(user=teammate, token=FakeToken("ci"), ip_address="10.1.2.3", user_agent="curl/8.5")
    moment = datetime.datetime(2025, 3, 1, 12, 30, tzinfo=datetime.UTC)
    event = record(
        actor=actor,
        action="model.update",
        obj=model,
        before={"description": "old"},
        after={"description": "new", "at": moment, "price": Decimal("1.50"), "id": uuid.UUID(int=7)},
        reason="tidy up",
        environment="prod",
        flagged=True,
        request_id="req-1",
    )

    event = AuditEvent.objects.get(pk=event.pk)
    assert event.created_at is not None
    assert (event.actor, event.actor_username, event.token_name) == (teammate, "teammate", "ci")
    assert (event.action, event.outcome) == ("model.update", "succeeded")
    assert (event.object_type, event.object_id, event.object_repr) == (
        "registry.registeredmodel",
        str(model.pk),
        str(model),
    )
    assert event.team_id == model.team_id
    assert event.environment == "prod"
    assert event.before == {"description": "old"}
    assert event.after == {
        "description": "new",
        "at": "2025-03-01T12:30:00Z",
        "price": "1.50",
        "id": "00000000-0000-0000-0000-000000000007",
    }
    assert (event.reason, event.flagged, event.request_id) == ("tidy up", True, "req-1")
    assert (event.ip_address, event.user_agent) == ("10.1.2.3", "curl/8.5")


def test_created_at_comes_from_the_database_and_is_on_the_returned_event(teammate):
    event = record(actor=teammate, action="token.create")
    assert isinstance(event.created_at, datetime.datetime)


def test_it_finds_the_team_through_team_lookup(teammate, model):
    version = VersionFactory(model=model)
    event = record(actor=teammate, action="version.create", obj=version)
    assert event.team_id == model.team_id
    assert event.object_type == "registry.modelversion"


def test_a_team_is_its_own_team(owner, team):
    assert record(actor=owner, action="team.update", obj=team).team_id == team.pk


def test_an_explicit_team_wins(teammate, model, other_team):
    assert record(actor=teammate, action="model.update", obj=model, team_id=other_team.pk).team_id == other_team.pk


def test_a_plain_user_is_an_actor_without_token_or_address(teammate):
    event = record(actor=teammate, action="token.create")
    assert (event.actor, event.actor_username, event.token_name, event.ip_address) == (teammate, "teammate", "", None)


def test_no_actor_is_the_platform():
    event = record(actor=None, action="promotion.expire")
    assert (event.actor, event.actor_username) == (None, "platform")


def test_an_anonymous_visitor_is_named_so():
    event = record(
        actor=FakeActor(user=AnonymousUser()), action="deploy", outcome="refused", reason="you are not signed in"
    )
    assert (event.actor, event.actor_username, event.outcome) == (None, "anonymous", "refused")


def test_a_forged_forwarded_address_does_not_break_the_write(teammate):
    event = record(actor=FakeActor(user=teammate, ip_address="unknown, 1.2.3.4"), action="model.create")
    assert event.ip_address is None


def test_it_refuses_an_unknown_outcome_or_a_malformed_action(teammate):
    with pytest.raises(ValueError, match="outcome"):
        record(actor=teammate, action="model.create", outcome="maybe")
    with pytest.raises(ValueError, match="action"):
        record(actor=teammate, action="Model Create")
    assert not AuditEvent.objects.exists()


def test_a_long_repr_is_cut_to_200_characters(teammate, model):
    model.name = "x" * 300
    assert len(record(actor=teammate, action="model.update", obj=model).object_repr) == 200


def test_model_snapshot_takes_ids_of_relations_and_json_safe_values(model):
    assert model_snapshot(model, ["name", "team", "created_at"]) == {
        "name": "iris",
        "team": model.team_id,
        "created_at": model.created_at.isoformat().replace("+00:00", "Z"),
    }


def test_the_accounts_actor_of_a_request_is_read_as_is(rf, teammate, token_for, settings):
    # Behind two proxies we trust, the address they were given is the client's.
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("10.0.0.0/8")]
    token_for(teammate, scopes=("read",))
    request = rf.get("/", HTTP_USER_AGENT="pytest", HTTP_X_FORWARDED_FOR="203.0.113.9, 10.0.0.1")
    request.user = SimpleLazyObject(lambda: teammate)  # as AuthenticationMiddleware sets it
    request.auth = ApiToken.objects.get(user=teammate)
    event = record(actor=Actor.from_request(request), action="model.create")
    assert (event.actor_id, event.token_name, event.ip_address, event.user_agent) == (
        teammate.pk,
        "t-0",
        "203.0.113.9",
        "pytest",
    )


def test_a_change_recorded_in_a_transaction_that_rolls_back_is_gone_with_it(teammate, model):
    with pytest.raises(RuntimeError), transaction.atomic():
        record(actor=teammate, action="model.update", obj=model)
        raise RuntimeError("the change failed")
    assert not AuditEvent.objects.exists()


def test_a_refusal_recorded_before_the_transaction_survives_the_exception(teammate, model):
    def refuse():
        record(actor=teammate, action="model.archive", obj=model, outcome="refused", reason="needs admin")
        raise PermissionDenied("needs admin")

    with pytest.raises(PermissionDenied):
        refuse()
    assert AuditEvent.objects.get().outcome == "refused"


def test_the_require_check_of_accounts_records_a_refused_attempt(viewer, team):

    with pytest.raises(PermissionDenied):
        require(Actor(user=viewer), Action.DEPLOY, team)
    event = AuditEvent.objects.get()
    assert (event.actor, event.outcome, event.team_id, event.object_type) == (
        viewer,
        "refused",
        team.pk,
        "accounts.team",
    )
    assert "developer role" in event.reason


@pytest.mark.parametrize(
    ("path", "body", "action"),
    [
        (
            "/api/v1/registries/",
            {"name": "hub", "team": "vision", "url": "https://registry.example.com"},
            "registry.create",
        ),
        ("/api/v1/webhooks/", {"team": "vision", "url": "https://hooks.example.com/x", "events": []}, "webhook.create"),
        ("/api/v1/tokens/", {"name": "laptop", "scopes": ["read"]}, "token.create"),
    ],
)
def test_objects_made_through_the_api_with_a_session_record_where_from_and_with_what(client, owner, path, body, action):
    client.force_login(owner)
    response = client.post(
        path, body, content_type="application/json", REMOTE_ADDR="10.9.8.7", HTTP_USER_AGENT="reviewer/1"
    )
    assert response.status_code == 201, response.content
    event = AuditEvent.objects.get(action=action)
    assert (event.ip_address, event.user_agent, event.actor_username) == ("10.9.8.7", "reviewer/1", "owner")


def test_a_token_made_on_the_settings_page_records_where_from_and_with_what(client, owner):
    client.force_login(owner)
    response = client.post(
        "/settings/tokens/",
        {"name": "laptop", "expires_in_days": 7, "scopes": ["read"]},
        REMOTE_ADDR="10.9.8.7",
        HTTP_USER_AGENT="reviewer/1",
    )
    assert response.status_code in (200, 302), response.content
    event = AuditEvent.objects.get(action="token.create")
    assert (event.ip_address, event.user_agent) == ("10.9.8.7", "reviewer/1")
