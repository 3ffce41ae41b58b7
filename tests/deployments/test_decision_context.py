"""What was approved is kept as it was: a request keeps what it changed when it was made, each approval
what its approver was shown, and after the deploy the page and the API show that, marked "as approved",
instead of comparing the request with the state its own deploy brought about."""

import pytest
from django.utils import timezone

from accounts.models import Role
from deployments.models import Approval, PromotionRequest, Rollout, RolloutState
from deployments.services import promotions, rollouts
from tests.deployments.test_promotions import decide, request_promotion
from tests.support.factories import EnvironmentFactory, RegistryFactory, VersionFactory, succeeded_build


def built(model, number, digest_char, packages, metrics):
    version = VersionFactory(model=model, number=number, metrics=metrics)
    build = succeeded_build(version, digest_char)
    build.bill_of_materials = [{"name": n, "version": v, "sha256": "x", "filename": f"{n}.whl"} for n, v in packages]
    build.save()
    return version, build


def runs(environment, version, build) -> Rollout:
    return Rollout.objects.create(
        environment=environment,
        model=version.model,
        version=version,
        build=build,
        image=build.digest_reference,
        state=RolloutState.SUCCEEDED,
        finished_at=timezone.now(),
        deployment_settings={"replicas": 1},
    )


@pytest.fixture
def prod(team):
    return EnvironmentFactory(
        name="prod", position=30, protected=True, deployment_settings={"replicas": 3}, grants={team: Role.ADMIN}
    )


@pytest.fixture
def staged(model, prod):
    """v1 runs in prod; v2 (numpy upgraded, scipy added, better accuracy) ran in staging."""
    RegistryFactory()
    staging = EnvironmentFactory(name="staging", position=20, grants={model.team: Role.ADMIN})
    old, old_build = built(model, 1, "c", [("numpy", "2.0.0")], {"accuracy": 0.9})
    runs(prod, old, old_build)
    new, new_build = built(model, 2, "d", [("numpy", "2.4.6"), ("scipy", "1.17.1")], {"accuracy": 0.95})
    staging_run = runs(staging, new, new_build)
    return new, staging_run


def deployed(promotion_id: int) -> PromotionRequest:
    """The approved request's rollout succeeds, as the runner ends one."""
    promotion = PromotionRequest.objects.select_related("rollout").get(pk=promotion_id)
    rollout = promotion.rollout
    Rollout.objects.filter(pk=rollout.pk).update(state=RolloutState.SUCCEEDED, finished_at=timezone.now())
    rollout.refresh_from_db()
    rollouts.release_succeeded(rollout)
    promotions.release_deployed(rollout)
    promotion.refresh_from_db()
    return promotion


def test_after_the_deploy_the_changes_are_shown_as_approved(api, teammate, approver, prod, staged):
    version, staging_run = staged
    promotion = request_promotion(api, teammate, version, prod).json()
    kept = promotion["decision_context"]
    assert kept["current"]["version"] == 1 and kept["proposed"]["image"] == promotion["image"]
    assert {d["key"]: d["change"] for d in kept["dependencies"]} == {"numpy": "changed", "scipy": "added"}
    assert kept["metrics"] == [{"key": "accuracy", "before": 0.9, "after": 0.95, "change": "changed"}]
    assert {"key": "replicas", "before": 1, "after": 3, "change": "changed"} in kept["settings"]
    assert kept["digest_history"] == [
        {"environment": "staging", "succeeded": 1, "failed": 0, "running_now": True, "last_rollout": staging_run.pk}
    ]
    shown = api.as_user(approver).get(f"/api/v1/promotions/{promotion['id']}/changes/").json()
    assert shown["as_of"] == "now"

    approved = decide(api, approver, promotion["id"], comment="ship it").json()
    assert approved["state"] == "approved"
    [approval] = approved["approvals"]
    assert approval["context"]["dependencies"] == shown["dependencies"]
    assert approval["context"]["current"]["version"] == 1

    promotion_row = deployed(promotion["id"])
    assert promotion_row.state == "deployed"
    # Compared afresh, the request would now change nothing: v2 runs.
    changes = api.as_user(teammate).get(f"/api/v1/promotions/{promotion['id']}/changes/").json()
    assert changes["as_of"] == "approved" and changes["recorded_by"] == "approver"
    assert changes["current"]["version"] == 1 and not changes["same_image"]
    assert {d["key"] for d in changes["dependencies"]} == {"numpy", "scipy"}
    assert changes["metrics"][0]["after"] == 0.95

    page = api.as_user(teammate).get(f"/promotions/{promotion['id']}/").content.decode()
    assert "as approved" in page and "same image already runs" not in page
    assert "scipy" in page and "1.17.1" in page and "not set" in page
    assert "Replicas" in page and "deployment_settings" not in page


def test_each_approval_keeps_what_its_approver_saw(api, teammate, approver, model, prod, staged, team):
    from tests.conftest import member  # noqa: PLC0415  the second approver only this test needs

    version, _ = staged
    prod.required_approvals = 2
    prod.save()
    promotion = request_promotion(api, teammate, version, prod).json()
    decide(api, approver, promotion["id"])
    # Between the two approvals, prod's release changes: the second approver sees another "now".
    v3, v3_build = built(model, 3, "e", [("numpy", "2.4.6")], {"accuracy": 0.92})
    Rollout.objects.filter(environment=prod, state=RolloutState.SUCCEEDED).update(state=RolloutState.SUPERSEDED)
    runs(prod, v3, v3_build)
    decide(api, member(team, "approver2", "approver"), promotion["id"])

    first, second = Approval.objects.filter(request_id=promotion["id"]).order_by("created_at")
    assert first.context["current"]["version"] == 1
    assert second.context["current"]["version"] == 3
    assert [d["key"] for d in second.context["dependencies"]] == ["scipy"]
    stored = PromotionRequest.objects.get(pk=promotion["id"]).decision_context
    assert stored["current"]["version"] == 1  # as requested, untouched
    changes = api.as_user(teammate).get(f"/api/v1/promotions/{promotion['id']}/changes/").json()
    assert changes["as_of"] == "approved" and changes["current"]["version"] == 3  # the deciding approval's


def test_the_request_page_links_its_parts_and_says_who_may_approve(api, teammate, approver, owner, prod, staged):
    version, staging_run = staged
    promotion = request_promotion(api, teammate, version, prod).json()
    page = api.as_user(teammate).get(f"/promotions/{promotion['id']}/").content.decode()
    build = promotion["build"]
    assert f'href="/models/vision/iris/v{version.number}/"' in page
    assert f'href="/builds/{build}/"' in page and f'href="/builds/{build}/#log"' in page
    assert f'href="/rollouts/{staging_run.pk}/"' in page
    digest = promotion["image"].split("@", 1)[1]
    assert f'<code class="mono small" id="promotion-digest">{digest}</code>' in page
    assert f'data-copy="{promotion["image"]}"' in page
    who = page.split('id="who-may-approve"', 1)[1].split("</p>", 1)[0]
    assert "approvers and admins of team vision" in who and "never from teammate" in who
    assert "<strong>approver</strong>" in who and "<strong>owner</strong>" in who
    assert "<strong>teammate</strong>" not in who
    assert "→ <" not in page.split("What changes", 1)[1]  # no arrow cells left empty
