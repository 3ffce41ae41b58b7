"""Issue 12's findings, each replayed as the attack it described; each must now fail, leaving nothing
behind but the refusal on the audit trail."""

import html
import ipaddress
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from accounts import throttle
from accounts.models import Role
from accounts.permissions import Actor, Refused
from accounts.services import token_create
from audit.models import AuditEvent
from deployments.models import (
    Approval,
    Environment,
    EnvironmentGrant,
    FourEyes,
    FreezeWindow,
    ModelEnvironmentSettings,
    PromotionRequest,
    PromotionState,
    Rollout,
)
from deployments.services import promotions, rollouts
from deployments.services.promotions import rebind_to_new_build
from tests.authorization.conftest import released
from tests.conftest import member
from tests.support.factories import (
    EnvironmentFactory,
    MembershipFactory,
    ModelFactory,
    RegistryFactory,
    VersionFactory,
    grant,
    succeeded_build,
)


def refusals(action):
    return AuditEvent.objects.filter(action=action, outcome="refused")


# -- 1. a member of two teams deploys into the team where they only view ---------------------------------


def test_a_two_team_member_cannot_deploy_into_the_team_where_they_are_a_viewer_through_the_api(
    api, dual, version, other_dev, other_team
):
    response = api.as_user(dual).post(
        "/api/v1/rollouts/", {"version": version.pk, "environment": other_dev.pk}, format="json"
    )
    assert response.status_code == 403, response.content
    assert "other-dev" in response.json()["detail"] and "team 'other'" in response.json()["detail"]
    assert not Rollout.objects.exists()
    # Recorded once, by the policy (the API's own net records only what nothing recorded before).
    assert list(AuditEvent.objects.filter(outcome="refused").values_list("action", "environment")) == [
        ("rollout.start", "other-dev")
    ]


def test_nor_through_the_form(client, dual, version, other_dev):
    client.force_login(dual)
    response = client.post("/models/vision/iris/v1/deploy/", {"environment": other_dev.pk})
    assert response.status_code == 403
    assert not Rollout.objects.exists()


def test_nor_request_a_promotion_into_its_protected_environment(api, dual, version, other_prod):
    response = api.as_user(dual).post(
        "/api/v1/promotions/",
        {"version": version.pk, "environment": other_prod.pk, "reason": "ship it"},
        format="json",
    )
    assert response.status_code == 403
    assert not PromotionRequest.objects.exists()
    assert refusals("promotion.request").count() == AuditEvent.objects.filter(outcome="refused").count() == 1


def test_even_a_developer_of_both_teams_cannot_put_one_teams_model_into_the_others_environment(
    api, dual, version, other_dev, other_team
):
    dual.memberships.filter(team=other_team).update(role=Role.DEVELOPER)
    response = api.as_user(dual).post(
        "/api/v1/rollouts/", {"version": version.pk, "environment": other_dev.pk}, format="json"
    )
    assert response.status_code == 403
    assert "team 'vision' has no role there" in response.json()["detail"]
    assert not Rollout.objects.exists()


def test_a_member_of_another_team_sees_none_of_its_releases_in_a_shared_environment(api, version, stranger, team):
    shared = EnvironmentFactory(name="shared", position=10, grants={team: Role.ADMIN})
    released(version, shared)
    assert api.as_user(stranger).get(f"/api/v1/environments/{shared.pk}/releases/").status_code == 404
    grant(shared, stranger.memberships.get().team, role=Role.VIEWER)  # seen now: still none of vision's
    assert api.as_user(stranger).get(f"/api/v1/environments/{shared.pk}/releases/").json() == []


def test_nor_roll_back_or_set_model_settings_there(api, dual, version, other_dev, other_team):
    dual.memberships.filter(team=other_team).update(role=Role.ADMIN)
    client = api.as_user(dual)
    rollback = client.post(f"/api/v1/environments/{other_dev.pk}/rollback/", {"model": version.model.pk}, format="json")
    settings = client.post(
        f"/api/v1/environments/{other_dev.pk}/model-settings/",
        {"model": version.model.pk, "deployment_settings": {"replicas": 3}},
        format="json",
    )
    assert rollback.status_code == settings.status_code == 403
    assert not ModelEnvironmentSettings.objects.exists()


def test_a_global_environment_with_grants_takes_only_the_granted_teams_up_to_their_role(
    api, teammate, version, other_team
):
    shared = EnvironmentFactory(name="shared", position=10)
    EnvironmentGrant.objects.create(environment=shared, team=other_team, role=Role.DEVELOPER)
    body = {"version": version.pk, "environment": shared.pk}
    refused = api.as_user(teammate).post("/api/v1/rollouts/", body, format="json")
    assert refused.status_code == 400 and refused.json() == {"environment": ["No such environment."]}
    EnvironmentGrant.objects.create(environment=shared, team=version.model.team, role=Role.VIEWER)
    capped = api.as_user(teammate).post("/api/v1/rollouts/", body, format="json")
    assert capped.status_code == 403 and "granted viewer at most" in capped.json()["detail"]
    EnvironmentGrant.objects.filter(environment=shared, team=version.model.team).update(role=Role.DEVELOPER)
    assert api.as_user(teammate).post("/api/v1/rollouts/", body, format="json").status_code == 201


# -- a global environment takes only the teams it grants a role -----------------------------------------------


@pytest.fixture
def shared():
    return EnvironmentFactory(name="shared", position=10)


@pytest.fixture
def shared_prod():
    return EnvironmentFactory(name="shared-prod", position=30, protected=True)


MISSING_GRANT = "global environment '{}' grants no role to team 'vision'"


def test_a_developer_cannot_deploy_into_a_global_environment_that_grants_their_team_nothing(
    api, client, teammate, version, shared, other_team
):
    # Granting none of their teams a role, it is not theirs to see: not found, as another team's is.
    response = api.as_user(teammate).post(
        "/api/v1/rollouts/", {"version": version.pk, "environment": shared.pk}, format="json"
    )
    assert response.status_code == 400, response.content
    assert response.json() == {"environment": ["No such environment."]}
    client.force_login(teammate)
    assert client.post("/models/vision/iris/v1/deploy/", {"environment": shared.pk}).status_code == 404
    # Seen through another of their teams, it still takes none of this team's models, and says why.
    teammate.memberships.create(team=other_team, role=Role.DEVELOPER)
    EnvironmentGrant.objects.create(environment=shared, team=other_team, role=Role.DEVELOPER)
    response = api.as_user(teammate).post(
        "/api/v1/rollouts/", {"version": version.pk, "environment": shared.pk}, format="json"
    )
    assert response.status_code == 403, response.content
    assert MISSING_GRANT.format("shared") in response.json()["detail"]
    form = client.post("/models/vision/iris/v1/deploy/", {"environment": shared.pk})
    assert form.status_code == 403
    assert MISSING_GRANT.format("shared") in html.unescape(form.content.decode())
    assert not Rollout.objects.exists()
    assert list(refusals("rollout.start").values_list("environment", flat=True)) == ["shared", "shared"]


def test_nor_request_a_promotion_into_one(api, client, teammate, version, shared_prod, other_team):
    body = {"version": version.pk, "environment": shared_prod.pk, "reason": "ship it"}
    unseen = api.as_user(teammate).post("/api/v1/promotions/", body, format="json")
    assert unseen.status_code == 400 and unseen.json() == {"environment": ["No such environment."]}
    teammate.memberships.create(team=other_team, role=Role.DEVELOPER)
    EnvironmentGrant.objects.create(environment=shared_prod, team=other_team, role=Role.DEVELOPER)
    response = api.as_user(teammate).post("/api/v1/promotions/", body, format="json")
    assert response.status_code == 403, response.content
    assert MISSING_GRANT.format("shared-prod") in response.json()["detail"]
    client.force_login(teammate)
    form = client.post("/models/vision/iris/v1/promote/", {"environment": shared_prod.pk, "reason": "ship it"})
    assert form.status_code == 403
    assert not PromotionRequest.objects.exists()
    assert refusals("promotion.request").count() == 2


def test_a_grant_lets_the_team_in_at_the_granted_role_and_no_higher(
    api, client, teammate, owner, version, shared, shared_prod, team
):
    EnvironmentGrant.objects.create(environment=shared, team=team, role=Role.DEVELOPER)
    EnvironmentGrant.objects.create(environment=shared_prod, team=team, role=Role.DEVELOPER)
    deployed = api.as_user(teammate).post(
        "/api/v1/rollouts/", {"version": version.pk, "environment": shared.pk}, format="json"
    )
    assert deployed.status_code == 201, deployed.content
    client.force_login(teammate)
    form = client.post("/models/vision/iris/v1/promote/", {"environment": shared_prod.pk, "reason": "ship it"})
    promotion = PromotionRequest.objects.get(environment=shared_prod)
    assert form.status_code == 302 and form.url == f"/promotions/{promotion.pk}/"
    # The team's admin acts there as a developer only: no break-glass through a freeze.
    freeze(shared)
    glass = api.as_user(owner).post(
        "/api/v1/rollouts/",
        {"version": version.pk, "environment": shared.pk, "break_glass_justification": "outage"},
        format="json",
    )
    assert glass.status_code == 403
    assert "team 'vision' is granted developer at most" in glass.json()["detail"]


def test_a_teams_approvers_approve_in_a_global_environment_only_as_far_as_it_grants_the_team(
    api, client, teammate, approver, version, shared_prod, team
):
    grant = EnvironmentGrant.objects.create(environment=shared_prod, team=team, role=Role.DEVELOPER)
    body = {"version": version.pk, "environment": shared_prod.pk, "reason": "ship it"}
    promotion = api.as_user(teammate).post("/api/v1/promotions/", body, format="json").json()
    url = f"/api/v1/promotions/{promotion['id']}/approve/"
    refused = api.as_user(approver).post(url, {"digest": promotion["image"]}, format="json")
    assert refused.status_code == 403
    assert "team 'vision' is granted developer at most" in refused.json()["detail"]
    client.force_login(teammate)
    who = client.get(f"/promotions/{promotion['id']}/").content.decode().split('id="who-may-approve"', 1)[1]
    assert "while shared-prod grants the team the approver role" in who.split("</p>", 1)[0]
    assert "<strong>approver</strong>" not in who.split("</p>", 1)[0]
    grant.role = Role.APPROVER
    grant.save()
    approved = api.as_user(approver).post(url, {"digest": promotion["image"]}, format="json")
    assert approved.status_code == 200, approved.content


# -- 2. the freeze override armed in advance ----------------------------------------------------------------


@pytest.fixture
def prod(team):
    return EnvironmentFactory(name="prod", position=30, protected=True, grants={team: Role.ADMIN})


def freeze(environment, *, starts_in=timedelta(0), lasts=timedelta(hours=2)):
    now = timezone.now()
    return FreezeWindow.objects.create(
        environment=environment, starts_at=now + starts_in, ends_at=now + starts_in + lasts, reason="year-end close"
    )


def test_a_justification_filed_while_nothing_is_frozen_is_refused(api, owner, version, prod):
    response = api.as_user(owner).post(
        "/api/v1/promotions/",
        {"version": version.pk, "environment": prod.pk, "reason": "r", "break_glass_justification": "just in case"},
        format="json",
    )
    assert response.status_code == 400
    assert "break-glass applies only during a freeze" in response.json()["break_glass_justification"][0]
    assert not PromotionRequest.objects.exists()


def test_a_freeze_that_starts_after_the_request_holds_its_deploy_and_a_developer_cannot_push_it(
    api, teammate, approver, owner, version, prod
):
    promotion = (
        api.as_user(teammate)
        .post("/api/v1/promotions/", {"version": version.pk, "environment": prod.pk, "reason": "r"}, format="json")
        .json()
    )
    PromotionRequest.objects.filter(pk=promotion["id"]).update(created_at=timezone.now() - timedelta(minutes=5))
    freeze(prod, starts_in=-timedelta(minutes=1))
    approved = api.as_user(approver).post(
        f"/api/v1/promotions/{promotion['id']}/approve/", {"digest": promotion["image"]}, format="json"
    )
    assert approved.json()["state"] == "approved" and approved.json()["rollout"] is None
    assert "frozen" in approved.json()["note"]
    pushed = api.as_user(teammate).post(f"/api/v1/promotions/{promotion['id']}/deploy/", {}, format="json")
    assert pushed.status_code == 400 and "frozen until" in pushed.json()["environment"][0]
    blank = api.as_user(owner).post(
        f"/api/v1/promotions/{promotion['id']}/deploy/", {"break_glass_justification": "  "}, format="json"
    )
    assert blank.status_code == 400 and "frozen until" in blank.json()["environment"][0]
    refusals = AuditEvent.objects.filter(action="promotion.deploy", outcome="refused")
    assert sorted(refusals.values_list("actor_username", flat=True)) == ["owner", "teammate"]
    assert all("frozen until" in event.reason for event in refusals)
    assert not AuditEvent.objects.filter(action="promotion.deploy", outcome="succeeded").exists()
    glass = api.as_user(teammate).post(
        f"/api/v1/promotions/{promotion['id']}/deploy/", {"break_glass_justification": "outage"}, format="json"
    )
    assert glass.status_code == 403 and "admin" in glass.json()["detail"]
    assert not Rollout.objects.exists()
    by_admin = api.as_user(owner).post(
        f"/api/v1/promotions/{promotion['id']}/deploy/", {"break_glass_justification": "outage"}, format="json"
    )
    assert by_admin.status_code == 200 and by_admin.json()["rollout"] is not None
    event = AuditEvent.objects.get(action="promotion.deploy", outcome="succeeded", actor_username="owner")
    assert event.flagged and "Break-glass" in event.reason
    assert PromotionRequest.objects.get(pk=promotion["id"]).break_glass_justification == "outage"


def test_a_rollback_during_a_freeze_needs_break_glass_unless_the_environment_allows_it(
    api, teammate, owner, version, model
):
    dev = EnvironmentFactory(name="dev", team=model.team, position=10)
    older = VersionFactory(model=model, number=2)
    succeeded_build(older, digest_char="b")
    released(older, dev, minutes_ago=30)
    released(version, dev, minutes_ago=10)
    Rollout.objects.filter(version=older).update(state="superseded")
    freeze(dev, starts_in=-timedelta(minutes=1))
    url = f"/api/v1/environments/{dev.pk}/rollback/"
    plain = api.as_user(teammate).post(url, {"model": model.pk}, format="json")
    assert plain.status_code == 400 and "frozen" in str(plain.json())
    by_developer = api.as_user(teammate).post(url, {"model": model.pk, "break_glass_justification": "x"}, format="json")
    assert by_developer.status_code == 403
    assert refusals("rollout.rollback").count() == 1 and refusals("freeze.break_glass").count() == 1
    Environment.objects.filter(pk=dev.pk).update(rollback_during_freeze=True)
    allowed = api.as_user(teammate).post(url, {"model": model.pk}, format="json")
    assert allowed.status_code == 201, allowed.content


# -- 3. an approval not bound to what the approver saw -----------------------------------------------------


@pytest.fixture
def pending(api, teammate, version, prod):
    response = api.as_user(teammate).post(
        "/api/v1/promotions/", {"version": version.pk, "environment": prod.pk, "reason": "r"}, format="json"
    )
    return PromotionRequest.objects.get(pk=response.json()["id"])


def test_approve_through_the_api_carries_the_digest(api, approver, pending):
    response = api.as_user(approver).post(f"/api/v1/promotions/{pending.pk}/approve/", {}, format="json")
    assert response.status_code == 400 and "digest" in response.json()


def test_an_approval_of_an_image_rebuilt_since_the_page_loaded_is_a_conflict_and_records_nothing(
    api, approver, pending, version
):
    seen = pending.digest
    rebind_to_new_build(succeeded_build(version, digest_char="c"))
    response = api.as_user(approver).post(f"/api/v1/promotions/{pending.pk}/approve/", {"digest": seen}, format="json")
    assert response.status_code == 409
    assert "rebuilt" in response.json()["detail"]
    assert not Approval.objects.exists()
    assert not AuditEvent.objects.filter(action="promotion.approve").exists()


def test_the_approve_form_carries_the_digest_it_showed(client, approver, pending, version):
    client.force_login(approver)
    page = client.get(f"/promotions/{pending.pk}/").content.decode()
    assert f'name="digest" value="{pending.digest}"' in page
    rebind_to_new_build(succeeded_build(version, digest_char="c"))
    response = client.post(f"/promotions/{pending.pk}/approve/", {"digest": pending.digest}, follow=True)
    assert "rebuilt" in response.content.decode()
    assert not Approval.objects.exists()


def test_an_approve_form_without_the_digest_says_it_was_incomplete_not_that_the_version_was_rebuilt(
    client, approver, pending
):
    client.force_login(approver)
    response = client.post(f"/promotions/{pending.pk}/approve/", {}, follow=True)
    page = response.content.decode()
    assert "The form was incomplete" in page and "not the one you saw" not in page
    assert not Approval.objects.exists()


def test_a_rebuild_that_never_ran_in_the_previous_stage_cannot_ride_a_pending_request(api, teammate, version, model):
    staging = EnvironmentFactory(name="staging", position=20, grants={model.team: Role.ADMIN})
    prod = EnvironmentFactory(
        name="prod", position=30, protected=True, requires_previous_stage=True, grants={model.team: Role.ADMIN}
    )
    released(version, staging)
    request = api.as_user(teammate).post(
        "/api/v1/promotions/", {"version": version.pk, "environment": prod.pk, "reason": "r"}, format="json"
    )
    assert request.status_code == 201, request.content
    rebind_to_new_build(succeeded_build(version, digest_char="d"))
    promotion = PromotionRequest.objects.get()
    assert promotion.state == PromotionState.CANCELLED
    assert "has not succeeded in staging" in promotion.note
    assert promotion.image.endswith("a" * 64)  # still names what was asked for, never the untested image


# -- 4. token limits and scopes -----------------------------------------------------------------------------


@pytest.fixture
def two_team_owner(team, other_team):
    user = member(other_team, "both", Role.ADMIN)
    MembershipFactory(team=team, user=user, role=Role.ADMIN)
    return user


def limited_token(user, *, teams=(), environments=(), scopes=("read",)):
    return token_create(
        user=user,
        name=f"limited-{len(user.api_tokens.all())}",
        scopes=list(scopes),
        teams=list(teams),
        environments=list(environments),
    )[1]


def test_a_token_limited_to_one_team_reads_nothing_of_another(api, two_team_owner, version, other_team):
    ModelFactory(team=other_team, name="theirs")
    AuditEvent.objects.create(action="model.create", actor_username="x", team=version.model.team)
    client = api.with_token(limited_token(two_team_owner, teams=["other"]))
    build = version.builds.get()
    assert [m["name"] for m in client.get("/api/v1/models/").json()["results"]] == ["theirs"]
    assert client.get(f"/api/v1/models/{version.model.pk}/").status_code == 404
    assert client.get(f"/api/v1/versions/{version.pk}/").status_code == 404
    assert client.get(f"/api/v1/versions/{version.pk}/artifact/").status_code == 404
    assert client.get(f"/api/v1/builds/{build.pk}/log/").status_code == 404
    assert client.get("/api/v1/teams/vision/").status_code == 404
    assert all(e["team"] != "vision" for e in client.get("/api/v1/audit/").json()["results"])


def test_environment_limits_hold_on_rollback_and_on_deploying_a_promotion(api, owner, version, prod, approver):
    dev = EnvironmentFactory(name="dev", team=version.model.team, position=10)
    token = limited_token(owner, environments=["staging"], scopes=("read", "deploy"))
    # Out of the token's sight, dev is not found; the services refuse it too, whoever reaches them.
    rollback = api.with_token(token).post(f"/api/v1/environments/{dev.pk}/rollback/", {"model": version.model.pk})
    assert rollback.status_code == 404
    actor = Actor(user=owner, token=owner.api_tokens.get())
    with pytest.raises(Refused, match="limited to other environments"):
        rollouts.rollout_rollback(actor=actor, environment=dev, model=version.model)
    promotion = PromotionRequest.objects.create(
        environment=prod,
        model=version.model,
        version=version,
        build=version.builds.get(),
        image=version.builds.get().digest_reference,
        requested_by=approver,
        reason="r",
        state=PromotionState.APPROVED,
        expires_at=timezone.now() + timedelta(hours=1),
    )
    deploy = api.with_token(token).post(f"/api/v1/promotions/{promotion.pk}/deploy/", {}, format="json")
    assert deploy.status_code == 404
    with pytest.raises(Refused, match="limited to other environments"):
        promotions.promotion_deploy(actor=actor, promotion=promotion)
    assert not Rollout.objects.exists()
    assert refusals("rollout.rollback").count() == refusals("rollout.start").count() == 1


def test_a_token_limited_to_one_environment_reads_nothing_of_the_others(api, owner, version, team):
    dev = EnvironmentFactory(name="dev", team=team, position=10)
    prod = EnvironmentFactory(name="prod", team=team, position=30, protected=True)
    mine, theirs = released(version, dev), released(version, prod)
    for rollout in (mine, theirs):
        rollout.log_lines.create(seq=1, text=f"rolled out to {rollout.environment.name}")
        rollout.drift = "drifted"
        rollout.save()
    request = PromotionRequest.objects.create(
        environment=prod,
        model=version.model,
        version=version,
        build=version.builds.get(),
        image=mine.image,
        requested_by=owner,
        reason="r",
        expires_at=timezone.now() + timedelta(hours=1),
    )
    AuditEvent.objects.create(action="rollout.succeeded", actor_username="platform", team=team, environment="prod")
    AuditEvent.objects.create(action="rollout.succeeded", actor_username="platform", team=team, environment="dev")
    client = api.with_token(limited_token(owner, environments=["dev"]))

    assert [r["id"] for r in client.get("/api/v1/rollouts/").json()["results"]] == [mine.pk]
    assert [e["name"] for e in client.get("/api/v1/environments/").json()["results"]] == ["dev"]
    assert client.get("/api/v1/promotions/").json()["results"] == []
    assert {e["environment"] for e in client.get("/api/v1/audit/").json()["results"]} == {"dev", ""}
    for url in (
        f"/api/v1/rollouts/{theirs.pk}/",
        f"/api/v1/rollouts/{theirs.pk}/log/",
        f"/api/v1/rollouts/{theirs.pk}/log/download/",
        f"/api/v1/environments/{prod.pk}/",
        f"/api/v1/environments/{prod.pk}/releases/",
        f"/api/v1/promotions/{request.pk}/",
        f"/api/v1/promotions/{request.pk}/changes/",
    ):
        assert client.get(url).status_code == 404, url
    # Its own environment reads as before: the release, its drift and its log.
    assert client.get(f"/api/v1/rollouts/{mine.pk}/").json()["drift"] == "drifted"
    assert [r["id"] for r in client.get(f"/api/v1/environments/{dev.pk}/releases/").json()] == [mine.pk]
    assert client.get(f"/api/v1/rollouts/{mine.pk}/log/").json()["lines"][0]["text"] == "rolled out to dev"


def test_a_read_only_token_cannot_cancel_a_promotion(api, teammate, pending):
    token = limited_token(teammate, scopes=("read",))
    response = api.with_token(token).post(f"/api/v1/promotions/{pending.pk}/cancel/")
    assert response.status_code == 403 and "'deploy' scope" in response.json()["detail"]
    pending.refresh_from_db()
    assert pending.state == PromotionState.PENDING


def test_a_read_only_token_cannot_revoke_its_owners_other_tokens(api, teammate):
    keep = limited_token(teammate, scopes=("read", "deploy"))
    reader = limited_token(teammate, scopes=("read",))
    target = teammate.api_tokens.get(name="limited-0")
    response = api.with_token(reader).delete(f"/api/v1/tokens/{target.pk}/")
    assert response.status_code == 403
    target.refresh_from_db()
    assert target.revoked_at is None
    assert api.with_token(keep).get("/api/v1/models/").status_code == 200
    assert refusals("token.revoke").exists()


# -- 5. a throwaway team environment in front of a global one ------------------------------------------------


def test_a_team_admin_cannot_satisfy_a_global_stage_with_a_throwaway_environment(api, owner, version, team):
    EnvironmentFactory(name="staging", position=20, grants={team: Role.ADMIN})
    prod = EnvironmentFactory(
        name="prod", position=30, protected=True, requires_previous_stage=True, grants={team: Role.ADMIN}
    )
    throwaway = EnvironmentFactory(name="scratch", team=team, position=25)
    released(version, throwaway)
    response = api.as_user(owner).post(
        "/api/v1/promotions/", {"version": version.pk, "environment": prod.pk, "reason": "r"}, format="json"
    )
    assert response.status_code == 400
    assert "has not succeeded in staging" in response.json()["version"][0]


# -- 6. four eyes --------------------------------------------------------------------------------------------


def test_four_eyes_can_exclude_the_uploader_and_the_builder(api, team, approver, model, token_for):
    RegistryFactory()
    version = VersionFactory(model=model, number=1, created_by=approver)
    build = succeeded_build(version)
    build.started_by = approver
    build.save()
    prod = EnvironmentFactory(
        name="prod", position=30, protected=True, four_eyes=FourEyes.AUTHORS, grants={team: Role.ADMIN}
    )
    ci = member(team, "ci", Role.DEVELOPER)
    promotion = (
        api.with_token(token_for(ci))
        .post("/api/v1/promotions/", {"version": version.pk, "environment": prod.pk, "reason": "r"}, format="json")
        .json()
    )
    response = api.as_user(approver).post(
        f"/api/v1/promotions/{promotion['id']}/approve/", {"digest": promotion["image"]}, format="json"
    )
    assert response.status_code == 403 and "you uploaded this version" in response.json()["detail"]
    Environment.objects.filter(pk=prod.pk).update(four_eyes=FourEyes.REQUESTER)
    response = api.as_user(approver).post(
        f"/api/v1/promotions/{promotion['id']}/approve/", {"digest": promotion["image"]}, format="json"
    )
    assert response.status_code == 200


# -- 7. the audit trail ------------------------------------------------------------------------------------


def test_a_client_cannot_choose_the_address_the_audit_trail_records(api, viewer, version, settings):
    settings.TRUSTED_PROXIES = []
    api.as_user(viewer).post(
        "/api/v1/builds/", {"version": version.pk}, format="json", HTTP_X_FORWARDED_FOR="203.0.113.9"
    )
    assert refusals("build.start").get().ip_address == "127.0.0.1"


def test_behind_a_trusted_proxy_the_forwarded_address_is_recorded(api, viewer, version, settings):
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.0/8")]
    api.as_user(viewer).post(
        "/api/v1/builds/",
        {"version": version.pk},
        format="json",
        HTTP_X_FORWARDED_FOR="198.51.100.7, 203.0.113.9, 127.0.0.5",
    )
    assert refusals("build.start").get().ip_address == "203.0.113.9"


def test_the_sign_in_throttle_reads_the_client_address_the_same_way(rf, settings):
    """Behind the trusted proxy, each client is counted on its own; a header from anyone else changes
    nothing (the same rule as the audit trail's)."""
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    settings.SIGNIN_MAX_FAILURES_PER_ADDRESS = 2
    cache.clear()
    guesser = rf.post("/login/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.9")
    colleague = rf.post("/login/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.10")
    throttle.record_failure(guesser, None)
    throttle.record_failure(guesser, None)
    assert "your address" in throttle.refusal(guesser, None)
    assert throttle.refusal(colleague, None) is None
    spoofing = rf.post("/login/", REMOTE_ADDR="198.51.100.3", HTTP_X_FORWARDED_FOR="203.0.113.10")
    throttle.record_failure(spoofing, None)
    throttle.record_failure(spoofing, None)
    assert throttle.refusal(colleague, None) is None
    assert throttle.refusal(rf.post("/login/", REMOTE_ADDR="198.51.100.3"), None) is not None
    cache.clear()


@pytest.mark.parametrize(
    ("method", "url", "action"),
    [
        ("get", "/environments/{env}/edit/", "team.manage"),
        ("post", "/teams/vision/", "team.manage"),
        ("get", "/models/vision/iris/versions/new/", "version.create"),
        ("get", "/settings/registries/", "page.registry_list"),
    ],
)
def test_refusals_raised_by_pages_are_on_the_audit_trail(client, viewer, model, team, method, url, action):
    environment = EnvironmentFactory(name="dev", team=team)
    client.force_login(viewer)
    response = getattr(client, method)(url.format(env=environment.pk), {"username": "viewer", "role": "admin"})
    assert response.status_code == 403
    assert refusals(action).filter(actor_username="viewer").count() == 1


def test_an_api_refusal_by_a_permission_class_is_on_the_audit_trail(api, teammate, model):
    token = limited_token(teammate, scopes=("deploy",))
    assert api.with_token(token).get(f"/api/v1/models/{model.pk}/").status_code == 403
    assert refusals("api.model_detail").get().token_name.startswith("limited-")


# -- 8. what a viewer is offered ----------------------------------------------------------------------------


def test_a_viewer_is_not_offered_a_rollback(client, viewer, version):
    dev = EnvironmentFactory(name="dev", team=version.model.team, position=10)
    rollout = released(version, dev)
    client.force_login(viewer)
    for url in (f"/environments/{dev.pk}/", f"/rollouts/{rollout.pk}/"):
        assert "Roll back" not in client.get(url).content.decode()


def test_a_viewer_is_not_offered_to_add_an_environment(client, viewer, team):
    client.force_login(viewer)
    assert "Add environment" not in client.get("/environments/").content.decode()
    assert client.get("/environments/new/").status_code == 403


def test_an_action_url_opened_with_get_goes_to_its_object_with_a_message(client, teammate, version):
    dev = EnvironmentFactory(name="dev", team=version.model.team, position=10)
    client.force_login(teammate)
    response = client.get(f"/environments/{dev.pk}/rollback/", follow=True)
    assert response.redirect_chain == [(f"/environments/{dev.pk}/", 302)]
    assert "performs an action" in response.content.decode()


def test_refusals_name_the_missing_role_in_plain_words(api, viewer, pending, model):
    PromotionRequest.objects.filter(pk=pending.pk).update(state=PromotionState.DEPLOYED)  # as in the finding
    approve = api.as_user(viewer).post(
        f"/api/v1/promotions/{pending.pk}/approve/", {"digest": pending.digest}, format="json"
    )
    assert approve.status_code == 403
    assert "approving or rejecting a promotion needs the approver role in team 'vision'" in approve.json()["detail"]
    upload = api.as_user(viewer).post(f"/api/v1/models/{model.pk}/versions/", {"framework": "sklearn"})
    assert "uploading a version needs the developer role" in upload.json()["detail"]
    assert "upload_version" not in upload.json()["detail"]
