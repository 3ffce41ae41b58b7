"""KubernetesTarget against the emulated API server (real HTTP, the official client) and its controller."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from deployments.targets import (
    Autoscaling,
    KubernetesTarget,
    Resources,
    RolloutStopped,
    TargetError,
    TransientTargetError,
    kubeconfig_from_token,
)
from tests.support.services import free_port
from tests.support.targets import KUBE_IDENTITY

NAME = KUBE_IDENTITY.name


def read_deployment(kube_cluster) -> dict:
    response = kube_cluster.apps.read_namespaced_deployment(NAME, kube_cluster.namespace, _preload_content=False)
    return json.loads(response.data)


def managers_of_replicas(deployment: dict) -> set[str]:
    """Field managers that own spec.replicas, from managedFields (server-side apply bookkeeping)."""
    return {
        entry["manager"]
        for entry in deployment["metadata"].get("managedFields") or []
        if "f:replicas" in ((entry.get("fieldsV1") or {}).get("f:spec") or {})
    }


def test_a_deploy_applies_service_and_deployment_and_waits_until_all_pods_are_available(
    kube_cluster, kube_target, spec_for, recorder
):
    spec = spec_for(replicas=2)

    endpoint = kube_target.deploy(spec, **recorder.kwargs)

    assert endpoint == f"http://{NAME}.{kube_cluster.namespace}.svc:80"
    deployment = kube_cluster.apps.read_namespaced_deployment(NAME, kube_cluster.namespace)
    assert deployment.status.available_replicas == 2 and deployment.status.updated_replicas == 2
    assert deployment.spec.template.spec.containers[0].image == spec.image
    service = kube_cluster.core.read_namespaced_service(NAME, kube_cluster.namespace)
    assert service.spec.ports[0].target_port == "http"
    assert recorder.progress[-1].desired == 2 and recorder.progress[-1].available == 2
    assert any(p.available < 2 for p in recorder.progress), "progress is reported while rolling out"
    assert f"Event: Normal Deployment/{NAME}: ScalingReplicaSet" in recorder.text
    assert f"SuccessfulCreate: Created pod: {NAME}-" in recorder.text
    assert "Rollout complete: 2 of 2 pods updated and available" in recorder.text
    # Every event is logged once, even though each poll lists them all again.
    events = [line for line in recorder.lines if line.startswith("Event: ")]
    assert len(events) == len(set(events))
    applies = [r for r in kube_cluster.emulator.requests if r.content_type.startswith("application/apply-patch")]
    assert {r.query.get("fieldManager") for r in applies} == {"slipway"}
    assert all(r.query.get("force") == "true" for r in applies)


def test_only_the_events_of_the_rollout_are_logged_not_older_ones_of_its_deployment(
    kube_cluster, kube_target, spec_for, recorder
):
    kube_target.deploy(spec_for(replicas=1), log=lambda _: None, on_progress=lambda _: None, should_stop=lambda: None)
    deployment = kube_cluster.apps.read_namespaced_deployment(NAME, kube_cluster.namespace)
    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    involved = {"kind": "Deployment", "name": NAME, "namespace": kube_cluster.namespace, "uid": deployment.metadata.uid}
    kube_cluster.core.create_namespaced_event(
        kube_cluster.namespace,
        {
            "metadata": {"name": f"{NAME}.old"},
            "involvedObject": involved,
            "reason": "SomethingLongAgo",
            "message": "from an earlier rollout",
            "type": "Normal",
            "firstTimestamp": an_hour_ago,
            "lastTimestamp": an_hour_ago,
            "count": 1,
            "source": {"component": "deployment-controller"},
        },
    )

    kube_target.deploy(spec_for(replicas=1), **recorder.kwargs)

    assert "SomethingLongAgo" not in recorder.text
    assert f"Event: Normal Deployment/{NAME}: ScalingReplicaSet" in recorder.text
    assert f"SuccessfulCreate: Created pod: {NAME}-" in recorder.text  # a replica set's event, since the apply


def test_a_redeploy_replaces_the_pods_and_reports_old_ones_going_away(kube_cluster, kube_target, spec_for, recorder):
    kube_target.deploy(spec_for(replicas=2), log=lambda _: None, on_progress=lambda _: None, should_stop=lambda: None)
    second = spec_for(replicas=2)

    kube_target.deploy(second, **recorder.kwargs)

    pods = kube_cluster.core.list_namespaced_pod(kube_cluster.namespace).items
    assert {p.metadata.labels["slipway.io/deployment-id"] for p in pods} == {str(second.deployment_id)}
    assert "old still running" in recorder.text
    assert kube_target.live_state(KUBE_IDENTITY).image == second.image


def test_a_new_autoscaled_deployment_starts_at_min_replicas(kube_cluster, kube_target, spec_for, recorder):
    kube_target.deploy(spec_for(autoscaling=Autoscaling(min_replicas=2, max_replicas=4)), **recorder.kwargs)

    hpa = kube_cluster.autoscaling.read_namespaced_horizontal_pod_autoscaler(NAME, kube_cluster.namespace)
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (2, 4)
    deployment = read_deployment(kube_cluster)
    assert deployment["spec"]["replicas"] == 2 and deployment["status"]["availableReplicas"] == 2
    # Straight to min_replicas: not created with the API server's default of 1 and scaled up later.
    scaling = [line for line in recorder.lines if "ScalingReplicaSet" in line]
    assert scaling and scaling[0].endswith("from 0 to 2"), scaling


@pytest.mark.parametrize("whole_object_apply", [False, True], ids=["fields-per-manager", "whole-object-apply"])
def test_autoscaling_takes_replicas_over_without_resetting_them_and_gives_them_back(
    kube_cluster, kube_target, spec_for, recorder, whole_object_apply
):
    # The handover must not rely on server-side apply sharing fields between managers: an API server that
    # takes each apply as the whole object gives the same counts.
    emulator, _ = kube_cluster.require_emulator()
    emulator.core.whole_object_apply = whole_object_apply
    namespace, apps = kube_cluster.namespace, kube_cluster.apps
    kube_target.deploy(spec_for(replicas=3), **recorder.kwargs)

    # Turning autoscaling on must not drop replicas to the API server's default of 1 (nor to min_replicas).
    kube_target.deploy(spec_for(autoscaling=Autoscaling(min_replicas=2, max_replicas=5)), **recorder.kwargs)
    deployment = read_deployment(kube_cluster)
    assert deployment["spec"]["replicas"] == 3 and deployment["status"]["availableReplicas"] == 3
    hpa = kube_cluster.autoscaling.read_namespaced_horizontal_pod_autoscaler(NAME, namespace)
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (2, 5)

    # The HPA scales (through the scale subresource, as the real one does); the next version keeps its count.
    apps.patch_namespaced_deployment_scale(NAME, namespace, {"spec": {"replicas": 4}})
    kube_target.deploy(spec_for(autoscaling=Autoscaling(min_replicas=2, max_replicas=5)), **recorder.kwargs)
    deployment = read_deployment(kube_cluster)
    assert deployment["spec"]["replicas"] == 4 and deployment["status"]["availableReplicas"] == 4

    # Narrower bounds: the count is brought within them by the rollout itself.
    kube_target.deploy(spec_for(autoscaling=Autoscaling(min_replicas=1, max_replicas=2)), **recorder.kwargs)
    assert read_deployment(kube_cluster)["spec"]["replicas"] == 2
    assert "Replicas 4 are outside the autoscaler's 1-2: 2" in recorder.text

    # Autoscaling off: the HPA is deleted and Slipway's replicas count again.
    kube_target.deploy(spec_for(replicas=1), **recorder.kwargs)
    assert kube_cluster.autoscaling.list_namespaced_horizontal_pod_autoscaler(namespace).items == []
    deployment = read_deployment(kube_cluster)
    assert deployment["spec"]["replicas"] == 1 and deployment["status"]["availableReplicas"] == 1
    assert managers_of_replicas(deployment) <= {"slipway", "kube-controller-manager"}
    assert f"Deleted HorizontalPodAutoscaler {NAME}: autoscaling is off" in recorder.text


def test_an_image_that_cannot_be_pulled_fails_with_the_reason_and_the_events(kube_target, spec_for, recorder):
    spec = spec_for("bad-image")

    with pytest.raises(TargetError) as failure:
        kube_target.deploy(spec, **recorder.kwargs)

    message = str(failure.value)
    assert message.startswith("Pods cannot pull the image: ImagePullBackOff")
    assert "not found" in message
    assert f'Warning Failed: Failed to pull image "{spec.image}"' in recorder.text
    assert "Rollout failed: Pods cannot pull the image" in recorder.text


def test_a_crash_loop_fails_with_the_last_log_lines(kube_target, spec_for, recorder):
    with pytest.raises(TargetError) as failure:
        kube_target.deploy(spec_for("crashloop"), **recorder.kwargs)

    message = str(failure.value)
    assert message.startswith("The model server keeps crashing: CrashLoopBackOff (exit code 1")
    assert message.endswith("RuntimeError: cannot load model from /models/model.onnx")
    assert "log lines of model (previous run)" in recorder.text
    assert "  | Traceback (most recent call last):" in recorder.text
    assert "Warning BackOff: Back-off restarting failed container model" in recorder.text


def test_a_model_that_cannot_load_fails_when_the_runtime_exits_3_with_its_error(kube_cluster, kube_target, spec_for,
                                                                                recorder):  # fmt: skip
    _, controller = kube_cluster.require_emulator()
    controller.load_failure_grace = 0.5  # the runtime's readiness says why for this long, then it exits 3
    spec = spec_for("unloadable", progress_deadline_seconds=600)

    started = time.monotonic()
    with pytest.raises(TargetError) as failure:
        kube_target.deploy(spec, **recorder.kwargs)

    assert time.monotonic() - started < 10  # not the 600 s progress deadline
    assert str(failure.value) == (
        "The model server reported a load failure (exit code 3): "
        "model failed to load: UnpicklingError: invalid load key, 't'."
    )
    assert "last 3 log lines of model (previous run):" in recorder.text
    assert '"event": "model_load_failed"' in recorder.text and '"exit_code": 3' in recorder.text
    assert "Readiness probe failed: HTTP probe failed with statuscode: 503" in recorder.text


def test_a_missing_secret_fails_at_once_with_create_container_config_error(kube_cluster, kube_target, spec_for):
    _, controller = kube_cluster.require_emulator()
    controller.fail_images["needs-secret"] = "CreateContainerConfigError"

    with pytest.raises(TargetError, match=r"^Pods cannot create the model container: CreateContainerConfigError"):
        kube_target.deploy(spec_for("needs-secret", secret_refs=("iris-db",)), log=lambda _: None,
                           on_progress=lambda _: None, should_stop=lambda: None)  # fmt: skip


def test_a_rollout_without_progress_fails_at_the_progress_deadline(kube_cluster, kube_target, spec_for, recorder):
    _, controller = kube_cluster.require_emulator()
    controller.ready_delay = 60  # the pod never becomes ready in time

    with pytest.raises(TargetError) as failure:
        kube_target.deploy(spec_for(progress_deadline_seconds=2), **recorder.kwargs)

    assert "ProgressDeadlineExceeded" in str(failure.value)
    assert "(0 of 1 new pods ready)" in str(failure.value)
    assert "container model: waiting (ContainerCreating)" in recorder.text


@pytest.mark.parametrize(
    ("resources", "shortage"),
    [(Resources(cpu_request="200"), "Insufficient cpu"), (Resources(gpus=1), "Insufficient nvidia.com/gpu")],
)
def test_pods_that_cannot_be_scheduled_fail_after_a_short_grace(kube_target, spec_for, recorder, resources, shortage):
    with pytest.raises(TargetError) as failure:
        kube_target.deploy(spec_for(resources=resources), **recorder.kwargs)

    assert str(failure.value).startswith("Pods cannot be scheduled: Unschedulable: 0/1 nodes are available")
    assert shortage in str(failure.value)
    assert "Warning FailedScheduling" in recorder.text


def test_api_errors_and_timeouts_during_apply_and_watch_are_retried(kube_cluster, spec_for, recorder):
    emulator, _ = kube_cluster.require_emulator()
    target = KubernetesTarget(kube_cluster.kubeconfig.read_text(), kube_cluster.namespace, request_timeout=0.5,
                              retries=3, backoff=0.05, poll_seconds=0.05)  # fmt: skip
    injected = []

    def fault_while_watching(progress):
        if not injected:  # once, mid-rollout: the watch's reads hit errors and a slow answer
            injected.append(progress)
            emulator.fail_next(2, status=503, path="/pods")
            emulator.delay_next(1, seconds=1.5, path="/events")
            emulator.expire_watches()  # so the pods are listed again, into those errors

    recorder.on_progress_hook = fault_while_watching
    emulator.fail_next(2, status=500, method="PATCH", path=f"/deployments/{NAME}")
    emulator.delay_next(1, seconds=1.5, method="PATCH", path=f"/services/{NAME}")
    try:
        endpoint = target.deploy(spec_for(replicas=2), **recorder.kwargs)
    finally:
        target.close()

    assert endpoint.endswith(":80")
    failed = [(r.method, r.path, r.status) for r in emulator.requests if r.status >= 500]
    assert sum(1 for method, path, _ in failed if method == "PATCH" and path.endswith(f"/deployments/{NAME}")) == 2
    assert sum(1 for method, path, _ in failed if method == "GET" and path.endswith("/pods")) == 2
    retries = [line for line in recorder.lines if "retry in" in line]
    assert any(f"applying Deployment {NAME} (500" in line for line in retries)
    assert any(f"applying Service {NAME}" in line and "timed out" in line.lower() for line in retries)
    assert any("listing pods (503" in line for line in retries)
    assert any("listing events" in line for line in retries)
    assert recorder.progress[-1].available == 2


def platform_requests(emulator) -> list:
    return [r for r in emulator.requests if not r.user_agent.startswith("kube-controller-manager/")]


def is_watch(record) -> bool:
    return record.query.get("watch") == "true"


def test_a_rollout_follows_the_deployment_and_its_pods_with_watches_not_polls(kube_cluster, kube_target, spec_for,
                                                                              recorder):  # fmt: skip
    emulator, controller = kube_cluster.require_emulator()
    controller.ready_delay = 1.0  # long enough for a poll every 0.05 s to show up many times

    kube_target.deploy(spec_for(replicas=2), **recorder.kwargs)

    assert not [t.name for t in threading.enumerate() if t.name.startswith("watch-")]  # the watches were closed
    requests = platform_requests(emulator)
    deployments = [r for r in requests if r.method == "GET" and "/deployments" in r.path]
    pods = [r for r in requests if r.method == "GET" and r.path.endswith("/pods")]
    assert [(is_watch(r), r.query.get("fieldSelector")) for r in deployments][:2] == [
        (False, f"metadata.name={NAME}"),
        (True, f"metadata.name={NAME}"),
    ]
    assert [is_watch(r) for r in pods][:2] == [False, True]
    for watched in (deployments[1], pods[1]):
        assert watched.query.get("allowWatchBookmarks") == "true" and watched.query.get("resourceVersion")
    # Nothing was read again and again: one list each, and watches that the server ends itself; the
    # namespace's events (its largest list) once at the end, not every 2 s nor before the apply.
    assert sum(1 for r in deployments + pods if not is_watch(r)) == 2
    assert sum(1 for r in requests if r.path.endswith("/events")) == 1
    assert sum(1 for r in requests if r.path.endswith("/replicasets")) == 2
    assert "polling" not in recorder.text
    assert "Rollout complete: 2 of 2 pods updated and available" in recorder.text


def test_a_watch_expired_mid_rollout_lists_again_and_the_rollout_succeeds(kube_cluster, kube_target, spec_for,
                                                                          recorder):  # fmt: skip
    emulator, controller = kube_cluster.require_emulator()
    controller.ready_delay = 1.0
    expired: list[int] = []

    def compact_the_history(progress):
        if not expired:  # once, mid-rollout: as after an etcd compaction, every open watch ends with 410 Gone
            expired.append(emulator.expire_watches())

    recorder.on_progress_hook = compact_the_history
    kube_target.deploy(spec_for(replicas=2), **recorder.kwargs)

    assert expired and expired[0] >= 2  # the rollout's two watches were open
    requests = platform_requests(emulator)
    watches = [r for r in requests if "/deployments" in r.path and is_watch(r)]
    assert int(watches[-1].query["resourceVersion"]) >= emulator.core.compacted_revision
    lists = [r for r in requests if r.method == "GET" and "/deployments" in r.path and not is_watch(r)]
    assert len(lists) == 2  # listed again after the 410, then watched from the new list's resourceVersion
    assert recorder.progress[-1].available == 2
    assert "Rollout complete: 2 of 2 pods updated and available" in recorder.text


def test_when_the_api_refuses_watches_the_rollout_polls(kube_cluster, kube_target, spec_for, recorder):
    emulator, _ = kube_cluster.require_emulator()
    emulator.deny("watch", "deployments", namespace=kube_cluster.namespace)

    kube_target.deploy(spec_for(replicas=2), **recorder.kwargs)

    assert "Following the rollout by polling every 0.05 s: the API refused to watch Deployments: 403" in recorder.text
    reads = [r for r in platform_requests(emulator) if r.method == "GET" and r.path.endswith(f"/deployments/{NAME}")]
    assert len(reads) >= 2  # polled
    # Replica sets only tell which events are the rollout's: read with the events, not at every poll.
    replica_sets = [r for r in platform_requests(emulator) if r.path.endswith("/replicasets")]
    events = [r for r in platform_requests(emulator) if r.path.endswith("/events")]
    assert len(replica_sets) <= len(events) + 1 < len(reads)  # and once at the first look
    assert recorder.progress[-1].available == 2


def test_api_errors_that_persist_are_transient_failures(kube_cluster, kube_target, spec_for):
    emulator, _ = kube_cluster.require_emulator()
    emulator.fail_next(10, status=503, path=f"/deployments/{NAME}")

    with pytest.raises(TransientTargetError, match=rf"failed while applying Deployment {NAME}, 4 times: 503"):
        kube_target.deploy(spec_for(), log=lambda _: None, on_progress=lambda _: None, should_stop=lambda: None)


def test_should_stop_ends_the_watch(kube_cluster, kube_target, spec_for, recorder):
    _, controller = kube_cluster.require_emulator()
    controller.ready_delay = 60
    recorder.on_progress_hook = lambda _: setattr(recorder, "stop_reason", "Cancelled by alice.")

    with pytest.raises(RolloutStopped, match=r"^Cancelled by alice\.$"):
        kube_target.deploy(spec_for(), **recorder.kwargs)

    assert "Rollout stopped: Cancelled by alice." in recorder.text


def test_live_state_reports_the_deployment_and_sees_changes_behind_our_back(kube_cluster, kube_target, spec_for):
    emulator, _ = kube_cluster.require_emulator()
    assert kube_target.live_state(KUBE_IDENTITY).exists is False
    spec = spec_for(replicas=2)
    kube_target.deploy(spec, log=lambda _: None, on_progress=lambda _: None, should_stop=lambda: None)

    live = kube_target.live_state(KUBE_IDENTITY)
    assert (live.exists, live.image, live.replicas, live.ready) == (True, spec.image, 2, 2)
    assert live.endpoint == f"http://{NAME}.{kube_cluster.namespace}.svc:80"

    # Someone runs `kubectl set image` and `kubectl scale`.
    stored = emulator.get("deployments", kube_cluster.namespace, NAME)
    other = "registry.local/vision/iris@sha256:" + "0" * 64
    stored["spec"]["template"]["spec"]["containers"][0]["image"] = other
    stored["spec"]["replicas"] = 3
    emulator.put(stored)
    live = kube_target.live_state(KUBE_IDENTITY)
    assert (live.image, live.replicas) == (other, 3)


def test_remove_deletes_everything_and_tolerates_what_is_already_gone(kube_cluster, kube_target, spec_for):
    spec = spec_for(autoscaling=Autoscaling(min_replicas=1, max_replicas=2))
    kube_target.deploy(spec, log=lambda _: None, on_progress=lambda _: None, should_stop=lambda: None)

    kube_target.remove(KUBE_IDENTITY)
    kube_target.remove(KUBE_IDENTITY)

    namespace = kube_cluster.namespace
    assert kube_target.live_state(KUBE_IDENTITY).exists is False
    assert kube_cluster.core.list_namespaced_service(namespace).items == []
    assert kube_cluster.autoscaling.list_namespaced_horizontal_pod_autoscaler(namespace).items == []


def test_check_reports_version_namespace_and_permissions(kube_cluster, kube_target):
    result = kube_target.check()

    assert result["ok"] is True, result
    assert result["server_version"].startswith("v1.")
    assert result["namespace_exists"] is True
    assert result["permissions"]["deployments"] and result["permissions"]["services"]
    assert result["permissions"]["horizontalpodautoscalers"]


def test_check_names_a_denied_permission(kube_cluster, kube_target):
    emulator, _ = kube_cluster.require_emulator()
    emulator.deny("patch", "deployments", namespace=kube_cluster.namespace, group="apps")

    result = kube_target.check()

    assert result["ok"] is False
    assert result["permissions"]["deployments"] is False
    assert result["permissions"]["services"] is True
    assert "missing permissions: patch deployments" in result["message"]


def test_check_of_a_missing_namespace(kube_cluster):
    with KubernetesTarget(kube_cluster.kubeconfig.read_text(), "no-such-namespace") as target:
        result = target.check()

    assert (result["ok"], result["namespace_exists"]) == (False, False)
    assert "the namespace no-such-namespace does not exist" in result["message"]


def test_an_unreachable_cluster_is_a_check_message_and_a_transient_deploy_failure(spec_for):
    kubeconfig = kubeconfig_from_token(f"http://127.0.0.1:{free_port()}", "", "token", "models")
    with KubernetesTarget(kubeconfig, "models", request_timeout=1, retries=1, backoff=0.01) as target:
        result = target.check()
        assert result["ok"] is False
        assert "failed while reading the server version, 2 times" in result["message"]
        with pytest.raises(TransientTargetError):
            target.deploy(spec_for(), log=lambda _: None, on_progress=lambda _: None, should_stop=lambda: None)


def test_refused_credentials_are_a_permanent_error(kube_cluster, spec_for):
    emulator, _ = kube_cluster.require_emulator()
    kubeconfig = kubeconfig_from_token(emulator.url, "", "wrong-token", kube_cluster.namespace)

    with KubernetesTarget(kubeconfig, kube_cluster.namespace) as target, pytest.raises(TargetError, match="401"):
        target.deploy(spec_for(), log=lambda _: None, on_progress=lambda _: None, should_stop=lambda: None)


def test_a_rollout_overtaken_by_another_one_fails_instead_of_claiming_its_success(
    kube_cluster, kube_target, spec_for, recorder
):
    _, controller = kube_cluster.require_emulator()
    controller.ready_delay = 1.0
    overtaken: list[bool] = []

    def another_rollout_applies(_progress) -> None:
        if not overtaken:
            overtaken.append(True)
            labels = {"slipway.io/deployment-id": "999"}
            patch = {"spec": {"template": {"metadata": {"labels": labels}}}}
            kube_cluster.apps.patch_namespaced_deployment(NAME, kube_cluster.namespace, patch)

    recorder.on_progress_hook = another_rollout_applies

    with pytest.raises(TargetError, match=r"changed by someone else \(now deployment 999\) while this rollout"):
        kube_target.deploy(spec_for(), **recorder.kwargs)


def test_check_with_credentials_that_may_not_read_namespaces(kube_cluster, kube_target):
    emulator, _ = kube_cluster.require_emulator()
    emulator.deny("get", "namespaces")

    result = kube_target.check()

    assert result["namespace_exists"] is None
    assert result["ok"] is True, "namespace-scoped credentials are normal; the permissions decide"
    assert "cannot tell whether" in result["message"]
