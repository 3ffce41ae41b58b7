"""Rollouts to Kubernetes, through the official client, against the API emulated over real HTTP.

The runner is called directly (no Celery) so each test drives one rollout from start to end. With
SLIPWAY_TEST_KUBECONFIG set, the same tests talk to a real cluster (those needing fault injection skip).
"""

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from accounts.models import Role
from accounts.permissions import Actor
from audit.models import AuditEvent
from deployments.models import Drift, Environment, Rollout, RolloutKind, RolloutState, TargetKind
from deployments.runners import drift
from deployments.runners import rollouts as rollout_runner
from deployments.services import rollouts
from deployments.services.environments import identity_for
from deployments.targets import manifests
from deployments.targets.kubeconfig import USER_AGENT
from tests.support.factories import (
    MembershipFactory,
    ModelFactory,
    RegistryFactory,
    TeamFactory,
    VersionFactory,
    grant,
    succeeded_build,
)
from tests.support.kube.fixtures import kube_backend, kube_cluster  # noqa: F401
from tests.support.services import CeleryWorker, purge_queue, wait_until

pytestmark = pytest.mark.django_db(transaction=True)
AT_ONCE = 4


@pytest.fixture
def cluster_env(kube_cluster, settings, team):  # noqa: F811
    settings.ROLLOUT_TIMEOUT = 60
    environment = Environment.objects.create(
        name="dev",
        position=10,
        target=TargetKind.KUBERNETES,
        namespace=kube_cluster.namespace,
        kubeconfig=kube_cluster.kubeconfig.read_text(),
        deployment_settings={"replicas": 2, "progress_deadline_seconds": 30},
    )
    return grant(environment, team)


def version_with_image(model, number, image_suffix="good"):
    RegistryFactory()
    version = VersionFactory(model=model, number=number)
    build = succeeded_build(version, digest_char="abcdef"[number % 6])
    build.image_reference = f"registry.example.com/vision/{image_suffix}:v{number}"
    build.save()
    return version


def deploy(actor_user, version, environment) -> Rollout:

    rollout = rollouts.rollout_start(actor=Actor(user=actor_user), version=version, environment=environment)
    rollout_runner.execute(rollout_id=rollout.pk)
    rollout.refresh_from_db()
    return rollout


def name_of(rollout) -> str:
    return identity_for(rollout.environment, rollout.model).name


def log_text(rollout) -> str:
    return "\n".join(rollout.log_lines.order_by("seq").values_list("text", flat=True))


def test_a_rollout_succeeds_with_progress_events_and_manifests(teammate, model, cluster_env, kube_cluster):  # noqa: F811
    version = version_with_image(model, 1)
    rollout = deploy(teammate, version, cluster_env)
    assert rollout.state == RolloutState.SUCCEEDED, f"{rollout.failure_reason}\n{log_text(rollout)}"
    assert rollout.progress["ready"] == rollout.progress["desired"] == 2
    kinds = [m["kind"] for m in rollout.manifests]
    assert "Deployment" in kinds and "Service" in kinds
    deployment = kube_cluster.apps.read_namespaced_deployment(name_of(rollout), kube_cluster.namespace)
    assert deployment.spec.template.spec.containers[0].image == rollout.image  # by digest, never a tag
    assert "@sha256:" in rollout.image
    assert rollout.endpoint


def test_a_rollout_renders_once_and_asks_the_cluster_only_what_it_must_before_applying(
    teammate,
    model,
    cluster_env,
    kube_cluster,  # noqa: F811
    monkeypatch,
):
    emulator, _ = kube_cluster.require_emulator()
    validated: list[str] = []
    validate = manifests.kubernetes_validate.validate

    def counted(obj, *args, **kwargs):
        validated.append(obj["kind"])
        return validate(obj, *args, **kwargs)

    monkeypatch.setattr(manifests.kubernetes_validate, "validate", counted)
    first = deploy(teammate, version_with_image(model, 1), cluster_env)
    assert first.state == RolloutState.SUCCEEDED, log_text(first)
    assert sorted(validated) == ["Deployment", "Service"], "rendered and validated once, not again to deploy"

    emulator.requests.clear()
    second = deploy(teammate, version_with_image(model, 2), cluster_env)
    assert second.state == RolloutState.SUCCEEDED, log_text(second)
    ours = [r for r in emulator.requests if r.user_agent.startswith(USER_AGENT)]
    name = name_of(second)
    first_apply = next(n for n, r in enumerate(ours) if r.method == "PATCH" and r.path.endswith(f"/deployments/{name}"))
    # The server's version is known from the first rollout; new events are told from old by the apply's time.
    assert [(r.method, r.path.rsplit("/", 2)[-2]) for r in ours[:first_apply]] == [
        ("PATCH", "services"),
        ("DELETE", "horizontalpodautoscalers"),
    ]


def serving(kube_cluster, rollout) -> bool:  # noqa: F811
    """Its Deployment is fully available with its image, and its Service selects its pods and only those."""
    namespace, name = kube_cluster.namespace, name_of(rollout)
    deployment = kube_cluster.apps.read_namespaced_deployment(name, namespace)
    service = kube_cluster.core.read_namespaced_service(name, namespace)
    selector = ",".join(f"{key}={value}" for key, value in service.spec.selector.items())
    selected = kube_cluster.core.list_namespaced_pod(namespace, label_selector=selector).items
    return (
        deployment.status.available_replicas == deployment.spec.replicas
        and deployment.spec.template.spec.containers[0].image == rollout.image
        and bool(selected)
        and {pod.metadata.labels["slipway.io/deployment-id"] for pod in selected} == {str(rollout.pk)}
    )


def test_two_environments_in_one_namespace_and_colliding_team_model_pairs_run_side_by_side(
    teammate,
    model,
    cluster_env,
    kube_cluster,  # noqa: F811
):
    prod = Environment.objects.create(
        name="prod",
        position=30,
        target=TargetKind.KUBERNETES,
        namespace=kube_cluster.namespace,
        kubeconfig=kube_cluster.kubeconfig.read_text(),
        deployment_settings={"replicas": 1, "progress_deadline_seconds": 30},
    )
    grant(prod, model.team)
    version = version_with_image(model, 1)
    released = []
    for environment in (cluster_env, prod):
        rollout = deploy(teammate, version, environment)
        assert rollout.state == RolloutState.SUCCEEDED, log_text(rollout)
        released.append(rollout)
        assert all(serving(kube_cluster, earlier) for earlier in released)

    # `f"{team}-{model}"` once gave both of these the Service "ml-search-ranker": one replaced the other's.
    for slug, name in (("ml", "search-ranker"), ("ml-search", "ranker")):
        team = TeamFactory(slug=slug, name=slug)
        MembershipFactory(team=team, user=teammate, role=Role.DEVELOPER)
        grant(cluster_env, team)  # one global environment, three teams
        other = ModelFactory(team=team, name=name, created_by=teammate)
        rollout = deploy(teammate, version_with_image(other, 1), cluster_env)
        assert rollout.state == RolloutState.SUCCEEDED, log_text(rollout)
        released.append(rollout)
        assert all(serving(kube_cluster, earlier) for earlier in released)

    deployments = kube_cluster.apps.list_namespaced_deployment(kube_cluster.namespace).items
    assert len(deployments) == 4
    assert {d.metadata.labels["slipway.io/environment"] for d in deployments} == {"dev", "prod"}
    assert drift.check_environment(cluster_env)[Drift.IN_SYNC] == 3
    assert drift.check_environment(prod)[Drift.IN_SYNC] == 1


def test_a_bad_image_fails_with_its_reason_and_rolls_back(teammate, model, cluster_env, kube_cluster):  # noqa: F811
    kube_cluster.require_emulator()
    good = deploy(teammate, version_with_image(model, 1), cluster_env)
    assert good.state == RolloutState.SUCCEEDED
    bad = deploy(teammate, version_with_image(model, 2, image_suffix="bad-image"), cluster_env)
    assert bad.state == RolloutState.FAILED
    assert "ImagePullBackOff" in bad.failure_reason or "ErrImagePull" in bad.failure_reason
    assert "Failed to pull image" in log_text(bad)
    rollback = Rollout.objects.get(kind=RolloutKind.AUTO_ROLLBACK)
    assert rollback.replaces == bad and rollback.version == good.version and rollback.requested_by is None
    rollout_runner.execute(rollout_id=rollback.pk)
    rollback.refresh_from_db()
    assert rollback.state == RolloutState.SUCCEEDED
    deployment = kube_cluster.apps.read_namespaced_deployment(name_of(good), kube_cluster.namespace)
    assert deployment.spec.template.spec.containers[0].image == good.image


def test_a_crash_loop_fails_with_the_container_log(teammate, model, cluster_env, kube_cluster):  # noqa: F811
    kube_cluster.require_emulator()
    rollout = deploy(teammate, version_with_image(model, 1, image_suffix="crashloop"), cluster_env)
    assert rollout.state == RolloutState.FAILED
    assert "CrashLoopBackOff" in rollout.failure_reason
    assert "Traceback" in log_text(rollout)
    assert not Rollout.objects.filter(kind=RolloutKind.AUTO_ROLLBACK).exists()  # nothing earlier to go back to


def test_a_model_that_cannot_load_fails_in_seconds_and_rolls_back(teammate, model, cluster_env, kube_cluster):  # noqa: F811
    kube_cluster.require_emulator()
    cluster_env.deployment_settings = {"replicas": 2, "progress_deadline_seconds": 600}
    cluster_env.save()
    good = deploy(teammate, version_with_image(model, 1), cluster_env)
    assert good.state == RolloutState.SUCCEEDED

    # The emulated kubelet runs it as the runtime would: readiness 503 with the error, then exit code 3.
    broken = deploy(teammate, version_with_image(model, 2, image_suffix="unloadable"), cluster_env)

    assert broken.state == RolloutState.FAILED
    assert broken.failure_reason == (
        "The model server reported a load failure (exit code 3): "
        "model failed to load: UnpicklingError: invalid load key, 't'."
    )
    assert (broken.finished_at - broken.started_at).total_seconds() < 15  # not the 600 s deadline
    log = log_text(broken)
    assert "log lines of model (previous run):" in log and '"event": "exiting"' in log
    rollback = Rollout.objects.get(kind=RolloutKind.AUTO_ROLLBACK, replaces=broken)
    rollout_runner.execute(rollout_id=rollback.pk)
    rollback.refresh_from_db()
    assert rollback.state == RolloutState.SUCCEEDED and rollback.version == good.version
    deployment = kube_cluster.apps.read_namespaced_deployment(name_of(good), kube_cluster.namespace)
    assert deployment.spec.template.spec.containers[0].image == good.image


def test_the_progress_deadline_fails_the_rollout(teammate, model, cluster_env, kube_cluster):  # noqa: F811
    kube_cluster.require_emulator()
    kube_cluster.controller.ready_delay = 30
    cluster_env.deployment_settings = {"replicas": 1, "progress_deadline_seconds": 5}
    cluster_env.save()
    rollout = deploy(teammate, version_with_image(model, 1), cluster_env)
    assert rollout.state == RolloutState.FAILED
    assert "ProgressDeadlineExceeded" in rollout.failure_reason


def test_api_errors_are_retried_and_the_rollout_still_succeeds(teammate, model, cluster_env, kube_cluster):  # noqa: F811
    kube_cluster.require_emulator()
    kube_cluster.emulator.fail_next(2, status=500, path="deployments")
    rollout = deploy(teammate, version_with_image(model, 1), cluster_env)
    assert rollout.state == RolloutState.SUCCEEDED, log_text(rollout)


def test_a_second_rollout_of_the_same_model_is_refused_while_one_runs(teammate, model, cluster_env):

    first = rollouts.rollout_start(
        actor=Actor(user=teammate), version=version_with_image(model, 1), environment=cluster_env
    )
    with pytest.raises(Exception, match=f"rollout #{first.pk} of v1 is still queued"):
        rollouts.rollout_start(
            actor=Actor(user=teammate), version=version_with_image(model, 2), environment=cluster_env
        )

    refusal = AuditEvent.objects.get(action="rollout.start", outcome="refused")
    assert f"rollout #{first.pk}" in refusal.reason


def test_drift_is_found_after_the_image_changes_behind_our_back(teammate, model, cluster_env, kube_cluster):  # noqa: F811
    kube_cluster.require_emulator()
    rollout = deploy(teammate, version_with_image(model, 1), cluster_env)
    assert drift.check_environment(cluster_env)[Drift.IN_SYNC] == 1
    deployment = kube_cluster.emulator.get("deployments", kube_cluster.namespace, name_of(rollout))
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example.com/hotfix:latest"
    kube_cluster.emulator.put(deployment)
    assert drift.check_environment(cluster_env)[Drift.DRIFTED] == 1
    rollout.refresh_from_db()
    assert rollout.drift == Drift.DRIFTED and "hotfix" in rollout.drift_detail
    kube_cluster.emulator.delete("deployments", kube_cluster.namespace, name_of(rollout))
    assert drift.check_environment(cluster_env)[Drift.MISSING] == 1


def test_what_ran_at_a_given_time(teammate, model, cluster_env, api):
    first = deploy(teammate, version_with_image(model, 1), cluster_env)
    between = timezone.now()
    second = deploy(teammate, version_with_image(model, 2), cluster_env)
    assert second.state == RolloutState.SUCCEEDED
    first.refresh_from_db()
    assert first.state == RolloutState.SUPERSEDED
    client = api.as_user(teammate)
    then = client.get(f"/api/v1/environments/{cluster_env.pk}/releases/", {"at": between.isoformat()}).json()
    now = client.get(f"/api/v1/environments/{cluster_env.pk}/releases/").json()
    assert [r["version_number"] for r in then] == [1]
    assert [r["version_number"] for r in now] == [2]
    bad = client.get(f"/api/v1/environments/{cluster_env.pk}/releases/", {"at": "yesterday"})
    assert bad.status_code == 400 and "ISO 8601" in bad.json()["at"][0]


def test_rollback_redeploys_the_previous_release(teammate, model, cluster_env, api):
    deploy(teammate, version_with_image(model, 1), cluster_env)
    current = deploy(teammate, version_with_image(model, 2), cluster_env)
    response = api.as_user(teammate).post(
        f"/api/v1/environments/{cluster_env.pk}/rollback/", {"model": model.pk}, format="json"
    )
    assert response.status_code == 201, response.json()
    rollback = Rollout.objects.get(pk=response.json()["id"])
    assert rollback.kind == RolloutKind.ROLLBACK and rollback.replaces == current and rollback.version.number == 1
    rollout_runner.execute(rollout_id=rollback.pk)
    current.refresh_from_db()
    assert current.state == RolloutState.ROLLED_BACK


def test_test_connection_reports_version_namespace_and_permissions(owner, site_admin, cluster_env, api, kube_cluster):  # noqa: F811
    report = api.as_user(site_admin).post(f"/api/v1/environments/{cluster_env.pk}/test-connection/").json()
    assert report["ok"] is True and report["namespace_exists"] is True
    assert report["server_version"]
    assert all(report["permissions"].values())
    assert api.as_user(owner).post(f"/api/v1/environments/{cluster_env.pk}/test-connection/").status_code == 403


def test_rollouts_asked_for_together_run_together_in_the_rollout_worker(
    teammate,
    model,
    cluster_env,
    kube_cluster,  # noqa: F811
    tmp_path,
):
    # Each rollout waits on the cluster for seconds; in the two build processes, twenty took turns.
    _, controller = kube_cluster.require_emulator()
    controller.ready_delay = 3
    purge_queue(settings.REDIS_URL)
    worker = CeleryWorker(
        connection.settings_dict["NAME"],
        tmp_path / "rollouts.log",
        queues=settings.ROLLOUT_QUEUE,
        pool="threads",
        concurrency=AT_ONCE,
    )
    try:
        models = [model] + [
            ModelFactory(team=model.team, name=f"iris-{n}", created_by=teammate) for n in range(1, AT_ONCE)
        ]
        asked = [
            rollouts.rollout_start(
                actor=Actor(user=teammate), version=version_with_image(m, 1), environment=cluster_env
            )
            for m in models
        ]
        finished = Rollout.objects.filter(pk__in=[r.pk for r in asked], state__in=RolloutState.final())
        wait_until(lambda: finished.count() == AT_ONCE, timeout=120, message="the rollouts to finish")
        done = list(finished)
    finally:
        worker.stop()
    assert all(r.state == RolloutState.SUCCEEDED for r in done), [(r.pk, r.failure_reason) for r in done]
    assert max(r.started_at for r in done) < min(r.finished_at for r in done), "one waited for another to finish"
    log = worker.log_path.read_bytes()
    assert b"run_rollout[" in log
    assert log.index(b"the Kubernetes client is loaded") < log.index(b"run_rollout["), "loaded as the worker started"
