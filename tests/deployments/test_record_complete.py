"""The record is complete: every rollout's outcome and every deletion made through the API is on the
audit trail, and the release history shows failed and rolled-back attempts beside what ran.

Rollouts run against the Kubernetes API emulated over HTTP, the runner called directly (as in
test_rollouts_kubernetes.py): fast, and a bad image fails for real.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.permissions import Actor
from audit.models import AuditEvent
from deployments.models import Environment, Rollout, RolloutKind, RolloutState, TargetKind, Webhook
from deployments.runners import rollouts as rollout_runner
from deployments.services import rollouts
from tests.deployments.test_rollouts_kubernetes import deploy, version_with_image
from tests.support.factories import EnvironmentFactory, grant
from tests.support.kube.fixtures import kube_backend, kube_cluster  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cluster_env(kube_cluster, settings, team):  # noqa: F811
    settings.ROLLOUT_TIMEOUT = 60
    environment = Environment.objects.create(
        name="prod",
        position=30,
        target=TargetKind.KUBERNETES,
        namespace=kube_cluster.namespace,
        kubeconfig=kube_cluster.kubeconfig.read_text(),
        deployment_settings={"replicas": 1, "progress_deadline_seconds": 30},
    )
    return grant(environment, team)


def outcomes(rollout) -> list[tuple[str, str]]:
    return list(
        AuditEvent.objects.filter(object_type="deployments.rollout", object_id=str(rollout.pk))
        .exclude(action="rollout.start")
        .order_by("pk")
        .values_list("action", "outcome")
    )


def test_every_rollout_outcome_is_on_the_audit_trail(teammate, model, cluster_env, kube_cluster):  # noqa: F811
    kube_cluster.require_emulator()
    good = deploy(teammate, version_with_image(model, 1), cluster_env)
    assert outcomes(good) == [("rollout.succeeded", "succeeded")]
    event = AuditEvent.objects.get(action="rollout.succeeded")
    assert event.environment == "prod" and event.actor_username == "platform"
    assert event.after["requested_by"] == "teammate" and event.after["image"] == good.image

    bad = deploy(teammate, version_with_image(model, 2, image_suffix="bad-image"), cluster_env)
    assert bad.state == RolloutState.FAILED
    assert outcomes(bad) == [("rollout.failed", "failed")]
    assert "ImagePull" in AuditEvent.objects.get(action="rollout.failed").reason
    automatic = Rollout.objects.get(kind=RolloutKind.AUTO_ROLLBACK)
    rollout_runner.execute(rollout_id=automatic.pk)
    assert outcomes(automatic) == [("rollout.succeeded", "succeeded")]

    second = deploy(teammate, version_with_image(model, 3), cluster_env)
    back = rollouts.rollout_rollback(
        actor=Actor(user=teammate),
        environment=cluster_env,
        model=model,
    )
    rollout_runner.execute(rollout_id=back.pk)
    second.refresh_from_db()
    assert second.state == RolloutState.ROLLED_BACK
    assert outcomes(second) == [("rollout.succeeded", "succeeded"), ("rollout.rolled_back", "succeeded")]
    assert AuditEvent.objects.get(action="rollout.rolled_back").after["by_rollout"] == back.pk


def test_a_rollout_the_reaper_fails_is_on_the_audit_trail(teammate, model, cluster_env, settings):
    settings.BUILD_STALE_AFTER = 60
    version = version_with_image(model, 1)
    rollout = rollouts.queue_rollout(version=version, environment=cluster_env, requested_by=teammate)
    Rollout.objects.filter(pk=rollout.pk).update(
        state=RolloutState.PROGRESSING, heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    assert rollout_runner.reap()["reaped"] == 1
    event = AuditEvent.objects.get(action="rollout.failed")
    assert event.outcome == "failed" and "worker running this rollout was lost" in event.reason


def test_deletions_through_the_api_are_on_the_audit_trail(api, owner, team):
    client = api.as_user(owner)
    environment = EnvironmentFactory(name="scratch", team=team)
    window = client.post(
        "/api/v1/freeze-windows/",
        {
            "environment": environment.pk,
            "starts_at": timezone.now().isoformat(),
            "ends_at": (timezone.now() + timedelta(hours=1)).isoformat(),
            "reason": "Quarter close",
        },
        format="json",
    )
    assert window.status_code == 201, window.json()
    hook = client.post(
        "/api/v1/webhooks/", {"team": "vision", "url": "https://hooks.example.com/x", "events": []}, format="json"
    )
    assert hook.status_code == 201, hook.json()

    assert client.delete(f"/api/v1/freeze-windows/{window.json()['id']}/").status_code == 204
    assert client.delete(f"/api/v1/webhooks/{hook.json()['id']}/").status_code == 204
    assert client.delete(f"/api/v1/environments/{environment.pk}/").status_code == 204

    deleted = {e.action: e for e in AuditEvent.objects.filter(action__endswith=".delete")}
    assert set(deleted) == {"freeze.delete", "webhook.delete", "environment.delete"}
    assert all(e.actor_username == "owner" and e.team_id == team.pk for e in deleted.values())
    assert deleted["webhook.delete"].before["url"] == "https://hooks.example.com/***"  # the path may hold a token
    assert deleted["environment.delete"].before["name"] == "scratch"
    assert not Webhook.objects.exists() and not Environment.objects.filter(name="scratch").exists()


def test_release_history_shows_failed_and_rolled_back_attempts_beside_what_ran(
    api,
    teammate,
    model,
    cluster_env,
    kube_cluster,  # noqa: F811
):
    kube_cluster.require_emulator()
    cluster_env.auto_rollback = False
    cluster_env.save()
    client = api.as_user(teammate)
    url = f"/api/v1/environments/{cluster_env.pk}/releases/"

    first = deploy(teammate, version_with_image(model, 1), cluster_env)
    failed = deploy(teammate, version_with_image(model, 2, image_suffix="bad-image"), cluster_env)
    after_failure = timezone.now()
    [release] = client.get(url, {"at": after_failure.isoformat()}).json()
    assert release["id"] == first.pk
    assert [(a["id"], a["state"]) for a in release["attempts"]] == [(failed.pk, "failed")]
    assert "ImagePull" in release["attempts"][0]["failure_reason"]

    third = deploy(teammate, version_with_image(model, 3), cluster_env)
    response = client.post(f"/api/v1/environments/{cluster_env.pk}/rollback/", {"model": model.pk}, format="json")
    back = Rollout.objects.get(pk=response.json()["id"])
    assert back.kind == RolloutKind.ROLLBACK
    rollout_runner.execute(rollout_id=back.pk)

    [now] = client.get(url).json()
    assert now["id"] == back.pk and now["version_number"] == 1
    assert [(a["id"], a["state"]) for a in now["attempts"]] == [(third.pk, "rolled_back")]
    # Back then, v1 ran with its failed attempt beside it; what came later is not shown.
    [then] = client.get(url, {"at": after_failure.isoformat()}).json()
    assert then["id"] == first.pk and [a["id"] for a in then["attempts"]] == [failed.pk]

    page = client.get(f"/environments/{cluster_env.pk}/")
    assert f'href="/rollouts/{third.pk}/"' in page.content.decode()
    page = client.get(f"/environments/{cluster_env.pk}/", {"at": after_failure.isoformat()})
    assert f'href="/rollouts/{failed.pk}/"' in page.content.decode()


def test_a_model_that_only_ever_failed_shows_its_attempts(api, teammate, model, cluster_env, kube_cluster):  # noqa: F811
    kube_cluster.require_emulator()
    failed = deploy(teammate, version_with_image(model, 1, image_suffix="bad-image"), cluster_env)
    page = client_page(api, teammate, cluster_env)
    tried = page.split("Tried, but nothing of these models runs", 1)[1].split("History", 1)[0]
    assert f'href="/rollouts/{failed.pk}/"' in tried and "ImagePull" in tried
    assert api.as_user(teammate).get(f"/api/v1/environments/{cluster_env.pk}/releases/").json() == []


def client_page(api, user, environment) -> str:
    page = api.as_user(user).get(f"/environments/{environment.pk}/")
    assert page.status_code == 200
    return page.content.decode()
