"""Drift checks as the platform runs them: scheduled by a real beat onto their own queue, consumed by a real
worker, against the emulated cluster; and a hung cluster API that must hold up neither builds nor rollouts."""

import os
import re
import socket
import subprocess
import sys
import threading
import time

import pytest
from django.conf import settings
from django.db import connection

from accounts.permissions import Actor
from config.celery import app
from deployments.models import Drift, Environment, Rollout, RolloutState, TargetKind
from deployments.runners import drift
from deployments.runners import rollouts as rollout_runner
from deployments.services import rollouts
from deployments.services.environments import identity_for
from deployments.targets import kubeconfig_from_token
from deployments.tasks import check_drift
from tests.support.factories import RegistryFactory, VersionFactory, grant, succeeded_build
from tests.support.kube.fixtures import kube_backend, kube_cluster  # noqa: F401
from tests.support.services import ROOT, CeleryWorker, purge_queue, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
CHECK_SECONDS = 5  # the shortest interval the setting allows
HANG = 25  # how long the drift worker's requests to a hung cluster wait


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


def version_with_image(model, number):
    RegistryFactory()
    version = VersionFactory(model=model, number=number)
    build = succeeded_build(version, digest_char="abcdef"[number % 6])
    build.image_reference = f"registry.example.com/vision/good:v{number}"
    build.save()
    return version


def deployed(user, version, environment) -> Rollout:
    rollout = rollouts.rollout_start(actor=Actor(user=user), version=version, environment=environment)
    rollout_runner.execute(rollout_id=rollout.pk)
    rollout.refresh_from_db()
    assert rollout.state == RolloutState.SUCCEEDED, rollout.failure_reason
    return rollout


def worker_env() -> dict[str, str]:
    db = settings.DATABASES["default"]
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.test_settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{connection.settings_dict['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "SLIPWAY_DRIFT_CHECK_SECONDS": str(CHECK_SECONDS),
    }


@pytest.fixture
def workers(tmp_path):
    """Workers started by the test itself (stopped after it), as the platform runs them."""
    purge_queue(settings.REDIS_URL)
    started: list[CeleryWorker] = []

    def start(queues: str, concurrency: int = 1, **env: str) -> CeleryWorker:
        worker = CeleryWorker(
            connection.settings_dict["NAME"],
            tmp_path / f"worker-{len(started)}.log",
            concurrency=concurrency,
            queues=queues,
            extra_env={"SLIPWAY_DRIFT_CHECK_SECONDS": str(CHECK_SECONDS), **env},
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def beat(tmp_path):
    log = open(tmp_path / "beat.log", "ab")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
         "--schedule", str(tmp_path / "beat-schedule")],
        cwd=ROOT, env=worker_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    yield process
    process.terminate()
    process.wait(timeout=30)
    log.close()


def api_drift(client, rollout) -> str:
    return client.get(f"/api/v1/rollouts/{rollout.pk}/").json()["drift"]


def test_the_scheduled_check_finds_a_deployment_scaled_to_zero_within_one_interval(
    api,
    teammate,
    model,
    cluster_env,
    kube_cluster,  # noqa: F811
    workers,
    beat,
):
    release = deployed(teammate, version_with_image(model, 1), cluster_env)
    workers("drift")  # the drift queue's own worker: nothing else consumes it
    client = api.as_user(teammate)
    wait_until(lambda: api_drift(client, release) == Drift.IN_SYNC, timeout=3 * CHECK_SECONDS, interval=0.2,
               message="the first scheduled check")  # fmt: skip
    name, namespace = identity_for(cluster_env, model).name, kube_cluster.namespace

    kube_cluster.apps.patch_namespaced_deployment_scale(name, namespace, {"spec": {"replicas": 0}})
    scaled = time.monotonic()
    wait_until(lambda: api_drift(client, release) == Drift.MISSING, timeout=CHECK_SECONDS + 3, interval=0.2,
               message="the scaled-down Deployment to show as missing")  # fmt: skip
    detected = time.monotonic() - scaled

    release.refresh_from_db()
    assert release.drift_detail == f"iris does not run in dev: Deployment {name} is scaled to 0 replicas."
    assert ">missing</span>" in client.get(f"/environments/{cluster_env.pk}/").content.decode()
    assert ">missing</strong>" in client.get("/").content.decode()
    assert detected <= CHECK_SECONDS + 3

    # Back to 2, then one pod that never gets ready again: it runs, but not all replicas are available.
    kube_cluster.apps.patch_namespaced_deployment_scale(name, namespace, {"spec": {"replicas": 2}})
    wait_until(lambda: api_drift(client, release) == Drift.IN_SYNC, timeout=2 * CHECK_SECONDS + 3, interval=0.2,
               message="the Deployment back in sync")  # fmt: skip
    kube_cluster.require_emulator()
    kube_cluster.controller.ready_delay = 120
    pod = kube_cluster.core.list_namespaced_pod(namespace).items[0]
    kube_cluster.core.delete_namespaced_pod(pod.metadata.name, namespace)
    wait_until(lambda: api_drift(client, release) == Drift.UNHEALTHY, timeout=2 * CHECK_SECONDS + 3, interval=0.2,
               message="the Deployment with a pod that is not ready to show as unhealthy")  # fmt: skip
    release.refresh_from_db()
    assert re.fullmatch(rf"Deployment {name}: [01] of 2 replicas available\.", release.drift_detail)


@pytest.fixture
def hung_api():
    """An address that accepts connections and never answers: a cluster API server that hangs."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_a_hung_cluster_api_holds_up_neither_rollouts_nor_the_other_environments_checks(
    teammate,
    model,
    cluster_env,
    kube_cluster,  # noqa: F811
    workers,
    hung_api,
):
    assert app.amqp.router.route({}, check_drift.name)["queue"].name == settings.DRIFT_QUEUE
    hung = Environment.objects.create(
        name="edge", position=40, target=TargetKind.KUBERNETES, namespace="models",
        kubeconfig=kubeconfig_from_token(hung_api, "", "token", "models"),
    )  # fmt: skip
    version = version_with_image(model, 1)
    healthy_release = deployed(teammate, version, cluster_env)
    hung_release = Rollout.objects.create(
        environment=hung, model=model, version=version, build=healthy_release.build, image=healthy_release.image,
        state=RolloutState.SUCCEEDED, drift=Drift.IN_SYNC,
    )  # fmt: skip
    # One process for rollouts, as busy as it can be (one task at a time); another for drift,
    # whose requests to the hung cluster time out only after HANG seconds.
    rollout_worker = workers(settings.ROLLOUT_QUEUE)
    drift_worker = workers("drift", SLIPWAY_DRIFT_REQUEST_TIMEOUT=str(HANG))

    check_drift.delay()  # what beat sends; it reaches the drift worker and hangs on the edge cluster
    wait_until(lambda: b"check_drift[" in drift_worker.log_path.read_bytes(), timeout=15, message="the check to start")
    hung_since = time.monotonic()
    rollout = rollouts.rollout_start(
        actor=Actor(user=teammate), version=version_with_image(model, 2), environment=cluster_env
    )
    finished = wait_until(
        lambda: Rollout.objects.filter(pk=rollout.pk, state__in=RolloutState.final()).first(),
        timeout=HANG, message="the rollout while the drift check hangs",
    )  # fmt: skip

    assert finished.state == RolloutState.SUCCEEDED, finished.failure_reason
    hung_release.refresh_from_db()
    assert hung_release.drift == Drift.IN_SYNC, "the drift check was still hanging when the rollout succeeded"
    assert b"run_rollout[" not in drift_worker.log_path.read_bytes()
    assert b"check_drift[" not in rollout_worker.log_path.read_bytes()
    # The hung cluster costs one request timeout, no retries, and is reported as not checked, not as in sync.
    hung_release = wait_until(
        lambda: Rollout.objects.filter(pk=hung_release.pk, drift=Drift.UNKNOWN).first(),
        timeout=HANG + 10, message="the hung environment's release to be marked as not checked",
    )  # fmt: skip
    assert hung_release.drift_detail.startswith("Not checked: ")
    assert time.monotonic() - hung_since < HANG + 10


def test_one_check_of_a_hung_cluster_costs_one_short_timeout_and_is_not_claimed_in_sync(
    settings, teammate, model, hung_api
):
    settings.DRIFT_REQUEST_TIMEOUT = 1
    hung = Environment.objects.create(
        name="edge", position=40, target=TargetKind.KUBERNETES, namespace="models",
        kubeconfig=kubeconfig_from_token(hung_api, "", "token", "models"),
    )  # fmt: skip
    version = version_with_image(model, 1)
    release = Rollout.objects.create(
        environment=hung, model=model, version=version, build=version.builds.get(),
        image="registry.example.com/vision/good@sha256:" + "a" * 64, state=RolloutState.SUCCEEDED, drift=Drift.IN_SYNC,
    )  # fmt: skip

    started = time.monotonic()
    counts = drift.check_environment(hung)
    took = time.monotonic() - started

    assert counts[Drift.UNKNOWN] == 1
    assert took < 3, f"one check of a hung cluster took {took:.1f} s"
    release.refresh_from_db()
    assert release.drift == Drift.UNKNOWN and release.drift_checked_at is not None
    assert release.drift_detail.startswith("Not checked: ")
