from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import tokens
from accounts.models import ApiToken
from tests.support.factories import MembershipFactory, ModelFactory


def test_the_secret_is_stored_only_as_a_keyed_digest(teammate, token_for):
    secret = token_for(teammate)
    token = ApiToken.objects.get(user=teammate)
    stored = [str(value) for value in ApiToken.objects.filter(pk=token.pk).values_list().get()]
    assert all(secret not in value and secret.split("_", 2)[2] not in value for value in stored)
    assert token.digest == tokens.digest(secret)
    assert len(token.digest) == 64


def test_a_token_authenticates_and_records_its_last_use(api, teammate, model, token_for):
    secret = token_for(teammate)
    assert ApiToken.objects.get().last_used_at is None
    response = api.with_token(secret).get(f"/api/v1/models/{model.pk}/")
    assert response.status_code == 200
    token = ApiToken.objects.get()
    assert token.last_used_at is not None
    assert timezone.now() - token.last_used_at < timedelta(seconds=5)


def test_a_token_used_again_within_a_minute_writes_nothing(api, teammate, model, token_for):
    # Every API read must stay a read: the last use is recorded at most once a minute, and a
    # request that finds it fresh issues no UPDATE at all.
    secret = token_for(teammate)
    client = api.with_token(secret)
    assert client.get(f"/api/v1/models/{model.pk}/").status_code == 200
    first_use = ApiToken.objects.get().last_used_at
    with CaptureQueriesContext(connection) as queries:
        assert client.get(f"/api/v1/models/{model.pk}/").status_code == 200
    assert not [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("UPDATE")]
    assert ApiToken.objects.get().last_used_at == first_use

    ApiToken.objects.update(last_used_at=timezone.now() - timedelta(minutes=2))
    assert client.get(f"/api/v1/models/{model.pk}/").status_code == 200
    assert timezone.now() - ApiToken.objects.get().last_used_at < timedelta(seconds=5)


def test_an_expired_token_is_refused(api, teammate, token_for):
    secret = token_for(teammate)
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = api.with_token(secret).get("/api/v1/models/")
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_a_revoked_token_is_refused(api, client, teammate, token_for):
    secret = token_for(teammate)
    client.force_login(teammate)
    token = ApiToken.objects.get()
    assert client.post(f"/settings/tokens/{token.pk}/revoke/").status_code == 302
    response = api.with_token(secret).get("/api/v1/models/")
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


@pytest.mark.parametrize("secret", ["slw_deadbeef_guess", "garbage", "slw_x_y"])
def test_an_unknown_token_is_refused(api, secret):
    assert api.with_token(secret).get("/api/v1/models/").status_code == 401


def test_a_token_with_a_right_prefix_but_wrong_secret_is_refused(api, teammate, token_for):
    secret = token_for(teammate)
    forged = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
    assert api.with_token(forged).get("/api/v1/models/").status_code == 401


def test_scopes_limit_what_a_token_does(api, teammate, model, token_for):
    read_only = token_for(teammate, scopes=["read"])
    client = api.with_token(read_only)
    assert client.get("/api/v1/models/").status_code == 200
    refused = client.post("/api/v1/models/", {"team": "vision", "name": "new"}, format="json")
    assert refused.status_code == 403
    assert "lacks the 'deploy' scope" in refused.json()["detail"]

    deploy_only = token_for(teammate, scopes=["deploy"])
    client = api.with_token(deploy_only)
    assert client.get("/api/v1/models/").status_code == 403
    assert client.post("/api/v1/models/", {"team": "vision", "name": "new"}, format="json").status_code == 201


def test_a_token_cannot_mint_another_token(api, teammate, token_for):
    response = api.with_token(token_for(teammate)).post("/api/v1/tokens/", {"name": "more"}, format="json")
    assert response.status_code == 403
    assert ApiToken.objects.count() == 1


def test_the_secret_is_shown_once(api, teammate):
    client = api.as_user(teammate)
    created = client.post("/api/v1/tokens/", {"name": "ci", "expires_in_days": 30}, format="json")
    assert created.status_code == 201
    assert created.json()["token"].startswith("slw_")
    listed = client.get("/api/v1/tokens/").json()["results"]
    assert listed[0]["name"] == "ci" and "token" not in listed[0]
    expires = ApiToken.objects.get().expires_at
    assert timedelta(days=29, hours=23) < expires - timezone.now() <= timedelta(days=30)


def test_tokens_expire_after_90_days_by_default(api, teammate):
    api.as_user(teammate).post("/api/v1/tokens/", {"name": "ci"}, format="json")
    lifetime = ApiToken.objects.get().expires_at - timezone.now()
    assert timedelta(days=89, hours=23) < lifetime <= timedelta(days=90)


def test_bad_token_requests_name_the_field(api, teammate):
    client = api.as_user(teammate)
    response = client.post(
        "/api/v1/tokens/", {"name": "x", "expires_in_days": 100000, "scopes": ["root"]}, format="json"
    )
    assert response.status_code == 400
    assert set(response.json()) == {"expires_in_days", "scopes"}


def test_the_tokens_page_shows_a_new_secret_once(client, teammate):
    client.force_login(teammate)
    response = client.post("/settings/tokens/", {"name": "laptop", "expires_in_days": 7, "scopes": ["read"]})
    assert response.status_code == 200
    token = ApiToken.objects.get()
    assert token.scopes == ["read"]
    page = response.content.decode()
    assert f"slw_{token.prefix}_" in page and "Copy it now" in page
    again = client.get("/settings/tokens/").content.decode()
    secret_start = page.index(f"slw_{token.prefix}_")
    assert page[secret_start : secret_start + 40] not in again


def test_revoking_someone_elses_token_is_not_found(client, teammate, approver, token_for):
    token_for(teammate)
    client.force_login(approver)
    token = ApiToken.objects.get()
    assert client.post(f"/settings/tokens/{token.pk}/revoke/").status_code == 404
    assert ApiToken.objects.get().revoked_at is None


def test_a_token_limited_to_a_team_reaches_only_that_team(api, teammate, model, other_team):

    MembershipFactory(team=other_team, user=teammate)
    theirs = ModelFactory(team=other_team, name="other-model")
    created = (
        api.as_user(teammate)
        .post("/api/v1/tokens/", {"name": "vision-ci", "teams": ["vision"], "environments": ["dev"]}, format="json")
        .json()
    )
    assert created["teams"] == ["vision"] and created["environments"] == ["dev"]
    client = api.with_token(created["token"])
    allowed = client.patch(f"/api/v1/models/{model.pk}/", {"task": "ranking"}, format="json")
    assert allowed.status_code == 200
    # The other team's objects are out of the token's sight altogether, as if they did not exist.
    refused = client.patch(f"/api/v1/models/{theirs.pk}/", {"task": "ranking"}, format="json")
    assert refused.status_code == 404
    assert client.get(f"/api/v1/models/{theirs.pk}/").status_code == 404


def test_a_token_cannot_be_limited_to_a_team_i_am_not_in(api, teammate, other_team):
    response = api.as_user(teammate).post("/api/v1/tokens/", {"name": "x", "teams": ["other"]}, format="json")
    assert response.status_code == 400 and "not a member of team 'other'" in response.json()["teams"][0]


def test_a_tokens_team_limits_are_read_once_and_hold_at_every_request(api, teammate, model, other_team):
    # The limits never change after the token is made, so a process reads them once; the token's own
    # row is read at every request (a revoked token is refused at once).
    MembershipFactory(team=other_team, user=teammate)
    theirs = ModelFactory(team=other_team, name="other-model")
    secret = api.as_user(teammate).post("/api/v1/tokens/", {"name": "ci", "teams": ["vision"]}, format="json")
    client = api.with_token(secret.json()["token"])
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert client.get(f"/api/v1/models/{model.pk}/").status_code == 200
            assert client.get(f"/api/v1/models/{theirs.pk}/").status_code == 404
    limits_read = [q for q in queries if q["sql"].lstrip().startswith('SELECT "accounts_apitoken_teams"')]
    tokens_read = [q for q in queries if q["sql"].lstrip().startswith('SELECT "accounts_apitoken"')]
    assert len(limits_read) == 1
    assert len(tokens_read) == 6
