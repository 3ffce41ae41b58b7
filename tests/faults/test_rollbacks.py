"""Automatic rollback happens when the cluster was changed, and only then: after a failure, after a
cancel, and after the reaper fails a rollout whose worker died. Against the emulated Kubernetes API."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.permissions import Actor
from deployments.models import Environment, Rollout, RolloutKind, RolloutState, TargetKind
from deployments.runners import rollouts as rollout_runner
from deployments.services import rollouts
from deployments.services.environments import identity_for, target_for
from tests.support.factories import RegistryFactory, VersionFactory, grant, succeeded_build
from tests.support.services import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cluster_env(kube_cluster, settings, team):
    kube_cluster.require_emulator()
    settings.ROLLOUT_TIMEOUT = 60
    environment = Environment.objects.create(
        name="dev",
        position=10,
        target=TargetKind.KUBERNETES,
        namespace=kube_cluster.namespace,
        kubeconfig=kube_cluster.kubeconfig.read_text(),
        deployment_settings={"replicas": 1, "progress_deadline_seconds": 30},
    )
    return grant(environment, team)


def version(model, number):
    RegistryFactory()
    made = VersionFactory(model=model, number=number)
    succeeded_build(made, digest_char="abcdef"[number % 6])
    return made


def deployed_image(kube_cluster, name):
    deployment = kube_cluster.apps.read_namespaced_deployment(name, kube_cluster.namespace)
    return deployment.spec.template.spec.containers[0].image


def log_text(rollout) -> str:
    return "\n".join(rollout.log_lines.order_by("seq").values_list("text", flat=True))


def start(user, made, environment) -> Rollout:
    return rollouts.rollout_start(actor=Actor(user=user), version=made, environment=environment)


def run(rollout) -> Rollout:
    rollout_runner.execute(rollout_id=rollout.pk)
    rollout.refresh_from_db()
    return rollout


def test_a_rollout_that_failed_before_changing_the_deployment_is_not_rolled_back(
    teammate,
    model,
    cluster_env,
    kube_cluster,
):
    good = run(start(teammate, version(model, 1), cluster_env))
    assert good.state == RolloutState.SUCCEEDED
    kube_cluster.emulator.fail_next(1, status=409, path="services")  # the Service apply is refused

    failed = run(start(teammate, version(model, 2), cluster_env))

    assert failed.state == RolloutState.FAILED, log_text(failed)
    assert not Rollout.objects.filter(kind=RolloutKind.AUTO_ROLLBACK).exists()
    assert "dev still runs v1: nothing to roll back" in log_text(failed)
    assert deployed_image(kube_cluster, identity_for(good.environment, good.model).name) == good.image


def test_a_running_rollout_cancelled_through_the_api_stops_and_rolls_back_what_it_changed(
    api,
    teammate,
    model,
    cluster_env,
    kube_cluster,
):
    good = run(start(teammate, version(model, 1), cluster_env))
    kube_cluster.controller.ready_delay = 60  # the new pods never get ready while the test watches
    second = start(teammate, version(model, 2), cluster_env)

    def work():
        try:
            rollout_runner.execute(rollout_id=second.pk)
        finally:
            connection.close()  # the thread's own connection, or the test database cannot be dropped

    runner = threading.Thread(target=work, daemon=True)
    runner.start()
    wait_until(
        lambda: Rollout.objects.get(pk=second.pk).state == RolloutState.PROGRESSING, timeout=20, message="progress"
    )
    assert deployed_image(kube_cluster, identity_for(good.environment, good.model).name) == second.image

    answer = api.as_user(teammate).post(f"/api/v1/rollouts/{second.pk}/cancel/")
    assert answer.status_code == 200 and answer.json()["state"] == "progressing"
    runner.join(timeout=20)
    second.refresh_from_db()

    assert second.state == RolloutState.CANCELLED
    assert second.failure_reason == "Cancelled at a user's request."
    rollback = Rollout.objects.get(kind=RolloutKind.AUTO_ROLLBACK)
    assert rollback.replaces == second and rollback.version == good.version
    kube_cluster.controller.ready_delay = 0
    assert run(rollback).state == RolloutState.SUCCEEDED
    assert deployed_image(kube_cluster, identity_for(good.environment, good.model).name) == good.image


@pytest.mark.parametrize("worker_changed_the_cluster", [True, False])
def test_the_reaper_rolls_back_a_lost_rollout_only_when_its_worker_changed_the_cluster(
    teammate,
    model,
    cluster_env,
    kube_cluster,
    settings,
    worker_changed_the_cluster,
):
    good = run(start(teammate, version(model, 1), cluster_env))
    lost = start(teammate, version(model, 2), cluster_env)
    if worker_changed_the_cluster:  # what the worker did before it died: the new Deployment is applied
        spec = rollout_runner.deploy_spec(lost)
        target = target_for(cluster_env)
        deployment = next(m for m in target.render(spec) if m["kind"] == "Deployment")
        target.api.apply(deployment, manager="slipway")
    long_ago = timezone.now() - timedelta(seconds=settings.BUILD_STALE_AFTER + 5)
    Rollout.objects.filter(pk=lost.pk).update(
        state=RolloutState.PROGRESSING, started_at=long_ago, heartbeat_at=long_ago
    )

    assert rollout_runner.reap()["reaped"] == 1

    lost.refresh_from_db()
    assert lost.state == RolloutState.FAILED and "worker running this rollout was lost" in lost.failure_reason
    rollback = Rollout.objects.filter(kind=RolloutKind.AUTO_ROLLBACK).first()
    if not worker_changed_the_cluster:
        assert rollback is None
        assert "dev still runs v1: nothing to roll back" in log_text(lost)
        return
    assert rollback is not None and rollback.replaces == lost
    assert deployed_image(kube_cluster, identity_for(good.environment, good.model).name) == lost.image
    assert run(rollback).state == RolloutState.SUCCEEDED
    assert deployed_image(kube_cluster, identity_for(good.environment, good.model).name) == good.image
