"""Promotions into protected environments: who may ask, who may approve, and what voids an approval."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Role
from audit.models import AuditEvent
from deployments.models import FourEyes, FreezeWindow, PromotionRequest, PromotionState, Rollout, RolloutState
from deployments.services.promotions import expire_promotions, rebind_to_new_build
from tests.conftest import member
from tests.support.factories import EnvironmentFactory, ModelFactory, RegistryFactory, VersionFactory, succeeded_build


@pytest.fixture
def prod(team):
    return EnvironmentFactory(name="prod", position=30, protected=True, required_approvals=2, grants={team: Role.ADMIN})


@pytest.fixture
def version(model):
    RegistryFactory()
    version = VersionFactory(model=model, number=1, metrics={"accuracy": 0.93})
    succeeded_build(version)
    return version


@pytest.fixture
def second_approver(team):
    return member(team, "approver2", Role.APPROVER)


def request_promotion(api, user, version, environment, reason="Better recall on the March data"):
    return api.as_user(user).post(
        "/api/v1/promotions/", {"version": version.pk, "environment": environment.pk, "reason": reason}, format="json"
    )


def decide(api, user, promotion_id, decision="approve", comment=""):
    """Decide as the page does: on the image by digest the request shows now."""
    digest = PromotionRequest.objects.get(pk=promotion_id).digest
    return api.as_user(user).post(
        f"/api/v1/promotions/{promotion_id}/{decision}/", {"comment": comment, "digest": digest}, format="json"
    )


def test_a_developer_requests_and_approvers_are_emailed(
    api,
    teammate,
    approver,
    owner,
    version,
    prod,
    django_capture_on_commit_callbacks,
):
    approver.email, owner.email = "approver@example.com", "owner@example.com"
    approver.save()
    owner.save()
    with django_capture_on_commit_callbacks(execute=True):
        response = request_promotion(api, teammate, version, prod)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["state"] == "pending" and body["required_approvals"] == 2
    assert body["image"].endswith("@sha256:" + "a" * 64)
    assert len(mail.outbox) == 1
    assert set(mail.outbox[0].to) == {"approver@example.com", "owner@example.com"}
    assert AuditEvent.objects.filter(action="promotion.request", outcome="succeeded").count() == 1


def test_the_requester_never_approves_their_own_request(api, approver, version, prod):
    promotion = request_promotion(api, approver, version, prod).json()
    response = decide(api, approver, promotion["id"])
    assert response.status_code == 403
    assert "you requested this promotion" in response.json()["detail"]
    assert AuditEvent.objects.filter(action="promotion.approve", outcome="refused").count() == 1


def test_a_token_of_the_requester_cannot_approve_either(api, approver, version, prod, token_for):
    promotion = request_promotion(api, approver, version, prod).json()
    secret = token_for(approver, scopes=["read", "approve"])
    response = api.with_token(secret).post(
        f"/api/v1/promotions/{promotion['id']}/approve/", {"digest": promotion["image"]}, format="json"
    )
    assert response.status_code == 403


def test_a_token_without_the_approve_scope_never_approves(api, teammate, approver, version, prod, token_for):
    promotion = request_promotion(api, teammate, version, prod).json()
    secret = token_for(approver, scopes=["read", "deploy"])
    response = api.with_token(secret).post(
        f"/api/v1/promotions/{promotion['id']}/approve/", {"digest": promotion["image"]}, format="json"
    )
    assert response.status_code == 403
    assert "lacks the 'approve' scope" in response.json()["detail"]


def test_n_approvals_from_different_people_queue_one_deployment(
    api,
    teammate,
    approver,
    second_approver,
    version,
    prod,
    django_capture_on_commit_callbacks,
):
    promotion = request_promotion(api, teammate, version, prod).json()
    first = decide(api, approver, promotion["id"], comment="looks fine")
    assert first.json()["state"] == "pending" and first.json()["approvals_counted"] == 1
    assert decide(api, approver, promotion["id"]).status_code == 400  # counts once
    with django_capture_on_commit_callbacks():
        second = decide(api, second_approver, promotion["id"])
    assert second.json()["state"] == "approved"
    rollout = Rollout.objects.get()
    assert rollout.environment == prod and rollout.image == promotion["image"]
    assert rollout.requested_by == teammate
    assert second.json()["rollout"] == rollout.pk
    record = api.as_user(teammate).get(f"/api/v1/rollouts/{rollout.pk}/").json()
    assert record["promotion"] == promotion["id"] and sorted(record["approved_by"]) == ["approver", "approver2"]


def test_a_viewer_or_developer_is_not_eligible(api, teammate, viewer, version, prod):
    promotion = request_promotion(api, teammate, version, prod).json()
    other_dev = member(version.model.team, "dev2", Role.DEVELOPER)
    for user in (viewer, other_dev):
        response = decide(api, user, promotion["id"])
        assert response.status_code == 403
        assert "approver role" in response.json()["detail"]


def test_named_groups_decide_who_approves(api, teammate, approver, version, prod, other_team):
    group = Group.objects.create(name="release-managers")
    prod.approver_groups.add(group)
    manager = member(other_team, "manager", Role.VIEWER)
    manager.groups.add(group)
    version.model.team.memberships.create(user=manager, role=Role.VIEWER)
    promotion = request_promotion(api, teammate, version, prod).json()
    assert decide(api, approver, promotion["id"]).status_code == 403
    assert decide(api, manager, promotion["id"]).status_code == 200


def test_any_rejection_ends_the_request_and_needs_a_comment(api, teammate, approver, version, prod):
    promotion = request_promotion(api, teammate, version, prod).json()
    without = decide(api, approver, promotion["id"], "reject")
    assert without.status_code == 400 and "comment is required" in without.json()["comment"][0]
    rejected = decide(api, approver, promotion["id"], "reject", comment="accuracy dropped on segment B")
    assert rejected.json()["state"] == "rejected"
    assert decide(api, approver, promotion["id"]).status_code == 400
    assert not Rollout.objects.exists()


def test_a_rebuild_voids_the_approvals_already_given(api, teammate, approver, second_approver, version, prod):

    promotion = request_promotion(api, teammate, version, prod).json()
    decide(api, approver, promotion["id"])
    rebuilt = succeeded_build(version, digest_char="b")
    assert rebind_to_new_build(rebuilt) == 1
    after = decide(api, second_approver, promotion["id"]).json()
    assert after["state"] == "pending" and after["approvals_counted"] == 1
    assert after["image"].endswith("b" * 64)
    # The first approver may approve again, for the new digest.
    assert decide(api, approver, promotion["id"]).json()["state"] == "approved"
    assert Rollout.objects.get().image.endswith("b" * 64)


@pytest.mark.parametrize("decision", ["approve", "reject"])
@pytest.mark.parametrize("digest", ["garbage", "sha256:abc", "registry/vision/iris@md5:00"])
def test_a_malformed_digest_is_a_400_naming_the_field_not_a_rebuild(
    api, teammate, approver, version, prod, decision, digest
):
    promotion = request_promotion(api, teammate, version, prod).json()
    response = api.as_user(approver).post(
        f"/api/v1/promotions/{promotion['id']}/{decision}/", {"digest": digest, "comment": "no"}, format="json"
    )
    assert response.status_code == 400, response.json()
    assert "sha256:" in response.json()["digest"][0]
    assert PromotionRequest.objects.get().approvals.count() == 0


def test_an_expired_request_can_no_longer_be_approved(api, teammate, approver, version, prod):

    promotion = request_promotion(api, teammate, version, prod).json()
    PromotionRequest.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = decide(api, approver, promotion["id"])
    assert response.status_code == 400 and "expired" in response.json()["non_field_errors"][0]
    assert PromotionRequest.objects.get().state == PromotionState.EXPIRED
    assert expire_promotions() == 0


def test_requests_expire_after_the_policy_s_hours(api, teammate, version, prod):
    prod.approval_expiry_hours = 24
    prod.save()
    body = request_promotion(api, teammate, version, prod).json()
    promotion = PromotionRequest.objects.get(pk=body["id"])
    assert timedelta(hours=23, minutes=59) < promotion.expires_at - promotion.created_at <= timedelta(hours=24)


def test_a_freeze_window_blocks_requests_unless_an_admin_breaks_the_glass(api, teammate, owner, version, prod):
    FreezeWindow.objects.create(
        environment=prod,
        starts_at=timezone.now() - timedelta(hours=1),
        ends_at=timezone.now() + timedelta(hours=1),
        reason="quarter-end close",
    )
    frozen = request_promotion(api, teammate, version, prod)
    assert frozen.status_code == 400 and "quarter-end close" in frozen.json()["environment"][0]
    not_admin = api.as_user(teammate).post(
        "/api/v1/promotions/",
        {"version": version.pk, "environment": prod.pk, "reason": "hotfix", "break_glass_justification": "please"},
        format="json",
    )
    assert not_admin.status_code == 403
    override = api.as_user(owner).post(
        "/api/v1/promotions/",
        {
            "version": version.pk,
            "environment": prod.pk,
            "reason": "hotfix for incident 4411",
            "break_glass_justification": "Incident 4411: fraud model rejects all EU cards",
        },
        format="json",
    )
    assert override.status_code == 201
    event = AuditEvent.objects.get(action="promotion.request", outcome="succeeded")
    assert event.flagged and "Incident 4411" in event.reason


def test_the_previous_stage_must_have_run_the_same_digest(api, teammate, version, prod):
    staging = EnvironmentFactory(name="staging", position=20, grants={version.model.team: Role.ADMIN})
    prod.requires_previous_stage = True
    prod.save()
    refused = request_promotion(api, teammate, version, prod)
    assert refused.status_code == 400
    assert "has not succeeded in staging" in refused.json()["version"][0]
    build = version.builds.get()
    Rollout.objects.create(
        environment=staging,
        model=version.model,
        version=version,
        build=build,
        image=build.digest_reference,
        state=RolloutState.SUCCEEDED,
        finished_at=timezone.now(),
    )
    assert request_promotion(api, teammate, version, prod).status_code == 201


def test_protected_environments_refuse_direct_deploys(api, teammate, version, prod):
    response = api.as_user(teammate).post(
        "/api/v1/rollouts/", {"version": version.pk, "environment": prod.pk}, format="json"
    )
    assert response.status_code == 403
    assert "request a promotion" in response.json()["detail"]


def test_the_changes_show_dependency_and_metric_differences(api, teammate, approver, model, prod):
    RegistryFactory()
    old = VersionFactory(model=model, number=1, metrics={"accuracy": 0.9})
    old_build = succeeded_build(old, "c")
    old_build.bill_of_materials = [{"name": "numpy", "version": "2.0.0", "sha256": "x", "filename": "n.whl"}]
    old_build.save()
    Rollout.objects.create(
        environment=prod,
        model=model,
        version=old,
        build=old_build,
        image=old_build.digest_reference,
        state=RolloutState.SUCCEEDED,
        finished_at=timezone.now(),
    )
    new = VersionFactory(model=model, number=2, metrics={"accuracy": 0.95})
    new_build = succeeded_build(new, "d")
    new_build.bill_of_materials = [
        {"name": "numpy", "version": "2.4.6", "sha256": "y", "filename": "n.whl"},
        {"name": "scipy", "version": "1.17.1", "sha256": "z", "filename": "s.whl"},
    ]
    new_build.save()
    promotion = request_promotion(api, teammate, new, prod).json()
    changes = api.as_user(approver).get(f"/api/v1/promotions/{promotion['id']}/changes/").json()
    assert changes["current"]["version"] == 1 and changes["proposed"]["version"] == 2
    assert {d["key"]: d["change"] for d in changes["dependencies"]} == {"numpy": "changed", "scipy": "added"}
    assert changes["metrics"] == [{"key": "accuracy", "before": 0.9, "after": 0.95, "change": "changed"}]
    page = api.as_user(approver).get(f"/promotions/{promotion['id']}/").content.decode()
    assert "scipy" in page and "0.95" in page and "Approve" in page


def test_the_inbox_lists_what_i_may_decide(api, client, teammate, approver, viewer, version, prod):
    promotion = request_promotion(api, teammate, version, prod).json()
    listed = api.as_user(approver).get("/api/v1/promotions/?inbox=1").json()["results"]
    assert [p["id"] for p in listed] == [promotion["id"]]
    assert api.as_user(viewer).get("/api/v1/promotions/?inbox=1").json()["results"] == []
    assert api.as_user(teammate).get("/api/v1/promotions/?inbox=1").json()["results"] == []
    client.force_login(approver)
    assert '<span class="count" aria-label="1 waiting">1</span>' in client.get("/models/").content.decode()


@pytest.mark.parametrize("four_eyes", [FourEyes.REQUESTER, FourEyes.AUTHORS])
def test_the_navigations_inbox_count_reads_the_same_statements_for_2_or_12_pending_requests(
    api, client, team, teammate, approver, prod, four_eyes
):
    # Every page an approver opens counts their inbox; the environment's grants (who approves in a
    # global environment) were read again for each pending request, and so was each build where the
    # environment refuses the build's trigger as an approver.
    prod.four_eyes = four_eyes
    prod.save()

    def pending(first, count):
        for number in range(first, first + count):
            model = ModelFactory(team=team, name=f"m-{number}")
            version = VersionFactory(model=model, number=1)
            succeeded_build(version)
            assert request_promotion(api, teammate, version, prod).status_code == 201

    client.force_login(approver)
    pending(0, 2)
    client.get("/models/")
    with CaptureQueriesContext(connection) as few:
        page = client.get("/models/").content.decode()
    assert '<span class="count" aria-label="2 waiting">2</span>' in page
    pending(2, 10)
    with CaptureQueriesContext(connection) as many:
        page = client.get("/models/").content.decode()
    assert '<span class="count" aria-label="12 waiting">12</span>' in page
    assert len(many) == len(few)


def test_can_i_explains_the_decision(api, teammate, approver, owner, version, prod):
    promotion = request_promotion(api, teammate, version, prod).json()
    mine = api.as_user(teammate).get("/api/v1/can-i/", {"action": "approve", "object": f"promotion:{promotion['id']}"})
    assert mine.json() == {
        "user": "teammate",
        "action": "approve",
        "object": f"promotion:{promotion['id']}",
        "allowed": False,
        "reason": "approving or rejecting a promotion needs the approver role in team 'vision'; "
        "you are a developer there",
    }
    theirs = api.as_user(owner).get(
        "/api/v1/can-i/", {"action": "approve", "object": f"promotion:{promotion['id']}", "user": "approver"}
    )
    assert theirs.json()["allowed"] is True and "approver" in theirs.json()["reason"]
    manage = api.as_user(approver).get("/api/v1/can-i/", {"action": "manage_team", "object": "team:vision"})
    assert manage.json()["reason"].endswith("; you are an approver there")
    nosy = api.as_user(teammate).get(
        "/api/v1/can-i/", {"action": "approve", "object": f"promotion:{promotion['id']}", "user": "approver"}
    )
    assert nosy.status_code == 403
    deploy = api.as_user(teammate).get(
        "/api/v1/can-i/", {"action": "deploy", "object": f"version:{version.pk}", "environment": prod.pk}
    )
    assert deploy.json()["allowed"] is False and "protected" in deploy.json()["reason"]
