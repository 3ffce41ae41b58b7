"""The emulated cluster answers the official client as a real API server (plus controllers) would.

Tests that only use the API run unchanged against a real cluster (SLIPWAY_TEST_KUBECONFIG); those
needing fault injection or simulated failures call `require_emulator()` and are skipped there.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import pytest
import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tests.support.kube import semantics
from tests.support.kube.emulator import KubeEmulator
from tests.support.kube.fixtures import KubeCluster

# On a real cluster, point this at an image its nodes can pull (e.g. one loaded into kind).
IMAGE = os.environ.get("SLIPWAY_TEST_IMAGE", "registry.local/models/iris:1")
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"


def deployment(name: str, image: str = IMAGE, replicas: int = 1, **spec: Any) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "model", "image": image, "ports": [{"containerPort": 8080}]}]},
            },
            **spec,
        },
    }


def conditions(obj: Any) -> dict[str, Any]:
    return {c.type: c for c in obj.status.conditions or []}


def rolled_out(cluster: KubeCluster, name: str) -> Any:
    current = cluster.apps.read_namespaced_deployment_status(name, cluster.namespace)
    progressing = conditions(current).get("Progressing")
    done = (
        current.status.observed_generation == current.metadata.generation
        and progressing is not None
        and progressing.reason == "NewReplicaSetAvailable"
    )
    return current if done else None


def pods_of(cluster: KubeCluster, name: str) -> list[Any]:
    return cluster.core.list_namespaced_pod(cluster.namespace, label_selector=f"app={name}").items


def live_pods_of(cluster: KubeCluster, name: str) -> list[Any]:
    """Pods not being deleted (on a real cluster, old pods linger while they terminate)."""
    return [p for p in pods_of(cluster, name) if p.metadata.deletion_timestamp is None]


def events_for(cluster: KubeCluster, name: str) -> list[Any]:
    selector = f"involvedObject.name={name}"
    return cluster.core.list_namespaced_event(cluster.namespace, field_selector=selector).items


def raw_request(
    cluster: KubeCluster, method: str, path: str, body: Any = None, query: list | None = None
) -> tuple[int, dict]:
    """A request through the client's auth and transport, without its typed models."""
    api = cluster.api_client
    request = api.param_serialize(
        method=method,
        resource_path=path,
        query_params=query or [],
        body=body,
        auth_settings=["BearerToken"],
        header_params={"Content-Type": "application/json", "Accept": "application/json"},
    )
    response = api.call_api(*request)
    return response.status, json.loads(response.read())


def error_of(call: Any, *args: Any, **kwargs: Any) -> ApiException:
    with pytest.raises(ApiException) as caught:
        call(*args, **kwargs)
    return caught.value


# --- plain API semantics ----------------------------------------------------------------------------


def test_version_with_and_without_trailing_slash(kube_cluster: KubeCluster) -> None:
    info = client.VersionApi(kube_cluster.api_client).get_code()
    assert info.major == "1" and info.git_version.startswith("v1.")
    with KubeEmulator(version="1.29.4") as emulator:
        for path in ("/version", "/version/"):
            body = json.loads(urllib3.request("GET", emulator.url + path).data)
            assert (body["minor"], body["gitVersion"]) == ("29", "v1.29.4")


def test_create_twice_is_409_already_exists_and_missing_is_404(kube_cluster: KubeCluster) -> None:
    apps, namespace = kube_cluster.apps, kube_cluster.namespace
    created = apps.create_namespaced_deployment(namespace, deployment("iris"))
    assert created.metadata.uid and created.metadata.generation == 1 and created.metadata.creation_timestamp
    assert int(created.metadata.resource_version) > 0
    assert created.spec.strategy.rolling_update.max_surge == "25%"  # server-side defaulting

    duplicate = error_of(apps.create_namespaced_deployment, namespace, deployment("iris"))
    assert duplicate.status == 409
    assert json.loads(duplicate.body)["reason"] == "AlreadyExists"

    missing = error_of(apps.read_namespaced_deployment, "nope", namespace)
    status = json.loads(missing.body)
    assert (missing.status, status["kind"], status["reason"]) == (404, "Status", "NotFound")
    assert status["message"] == 'deployments.apps "nope" not found'


def test_list_is_empty_not_404_and_label_selectors_filter(kube_cluster: KubeCluster) -> None:
    core, namespace = kube_cluster.core, kube_cluster.namespace
    assert core.list_namespaced_config_map(namespace).items == []
    for name, tier in (("a", "web"), ("b", "batch"), ("c", None)):
        labels = {"app": "demo", **({"tier": tier} if tier else {})}
        core.create_namespaced_config_map(namespace, {"metadata": {"name": name, "labels": labels}})

    def names(selector: str) -> list[str]:
        return [m.metadata.name for m in core.list_namespaced_config_map(namespace, label_selector=selector).items]

    assert names("app=demo,tier=web") == ["a"]
    assert names("tier in (web,batch)") == ["a", "b"]
    assert names("tier notin (web)") == ["b", "c"]
    assert names("!tier") == ["c"]
    assert names("tier!=web,app==demo") == ["b", "c"]
    assert error_of(core.list_namespaced_config_map, namespace, label_selector="tier in web").status == 400


def test_list_pages_with_limit_and_continue(kube_cluster: KubeCluster) -> None:
    core, namespace = kube_cluster.core, kube_cluster.namespace
    for index in range(5):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": f"cm-{index}"}})
    first = core.list_namespaced_config_map(namespace, limit=2)
    assert len(first.items) == 2 and first.metadata.remaining_item_count == 3
    rest = core.list_namespaced_config_map(namespace, limit=10, _continue=first.metadata._continue)
    assert [m.metadata.name for m in rest.items] == ["cm-2", "cm-3", "cm-4"]


def test_server_side_apply_creates_then_updates_and_bumps_generation_on_spec_only(
    kube_cluster: KubeCluster,
) -> None:
    apps, namespace = kube_cluster.apps, kube_cluster.namespace

    def apply(body: dict, **kwargs: Any) -> Any:
        return apps.patch_namespaced_deployment(
            "iris", namespace, body, field_manager="slipway", _content_type=APPLY, **kwargs
        )

    manifest = deployment("iris", replicas=0)
    created = apply(manifest)
    assert created.metadata.generation == 1
    assert any(entry.manager == "slipway" and entry.operation == "Apply" for entry in created.metadata.managed_fields)

    same = apply(manifest)
    assert same.metadata.generation == 1 and same.spec == created.spec  # a no-op changes nothing

    # The resourceVersion of a no-op apply is checked on a ConfigMap: the controller thread keeps
    # writing Deployment status and annotations, which would make that check racy here.
    core = kube_cluster.core
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "1"}}
    first = core.patch_namespaced_config_map(
        "settings", namespace, config_map, field_manager="slipway", _content_type=APPLY
    )
    again = core.patch_namespaced_config_map(
        "settings", namespace, config_map, field_manager="slipway", _content_type=APPLY
    )
    assert again.metadata.resource_version == first.metadata.resource_version

    manifest["metadata"]["labels"]["team"] = "ml"
    relabelled = apply(manifest)
    assert relabelled.metadata.generation == 1 and relabelled.metadata.labels["team"] == "ml"

    manifest["spec"]["replicas"] = 2
    scaled = apply(manifest)
    assert scaled.metadata.generation == 2 and scaled.spec.replicas == 2

    del manifest["metadata"]["labels"]["team"]  # a field the manager stops applying is removed
    assert "team" not in apply(manifest).metadata.labels


def test_apply_conflicts_with_another_manager_unless_forced(kube_cluster: KubeCluster) -> None:
    apps, namespace = kube_cluster.apps, kube_cluster.namespace
    manifest = deployment("iris", replicas=0)
    apps.patch_namespaced_deployment("iris", namespace, manifest, field_manager="slipway", _content_type=APPLY)
    apps.patch_namespaced_deployment("iris", namespace, {"spec": {"replicas": 3}}, field_manager="ops")

    manifest["spec"]["replicas"] = 1
    conflict = error_of(
        apps.patch_namespaced_deployment,
        "iris",
        namespace,
        manifest,
        field_manager="slipway",
        _content_type=APPLY,
    )
    assert conflict.status == 409 and ".spec.replicas" in json.loads(conflict.body)["message"]
    forced = apps.patch_namespaced_deployment(
        "iris", namespace, manifest, field_manager="slipway", force=True, _content_type=APPLY
    )
    assert forced.spec.replicas == 1


def test_patch_flavours(kube_cluster: KubeCluster) -> None:
    apps, namespace = kube_cluster.apps, kube_cluster.namespace
    manifest = deployment("iris", replicas=0)
    manifest["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "registry.local/proxy:1"})
    apps.create_namespaced_deployment(namespace, manifest)

    # A dict body goes out as a strategic merge patch: containers merge by name, env by name.
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "model", "env": [{"name": "A", "value": "1"}]}]}}}}
    merged = apps.patch_namespaced_deployment("iris", namespace, patch)
    containers = {c.name: c for c in merged.spec.template.spec.containers}
    assert set(containers) == {"model", "sidecar"} and containers["model"].env[0].value == "1"
    assert containers["model"].image == IMAGE

    # A JSON merge patch replaces lists whole (so a container without its image is invalid).
    assert error_of(apps.patch_namespaced_deployment, "iris", namespace, patch, _content_type=MERGE).status == 422
    only_model = [{"name": "model", "image": IMAGE}]
    merge = {"spec": {"template": {"spec": {"containers": only_model}}}}
    replaced = apps.patch_namespaced_deployment("iris", namespace, merge, _content_type=MERGE)
    assert [c.name for c in replaced.spec.template.spec.containers] == ["model"]
    assert replaced.metadata.generation == 3

    # A JSON patch (a list of operations).
    ops = [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "registry.local/m:2"}]
    patched = apps.patch_namespaced_deployment("iris", namespace, ops)
    assert patched.spec.template.spec.containers[0].image == "registry.local/m:2"


def test_status_subresource_semantics(kube_cluster: KubeCluster) -> None:
    apps, namespace = kube_cluster.apps, kube_cluster.namespace
    kube_cluster.require_emulator()  # a real controller would overwrite the status we write
    created = apps.create_namespaced_deployment(namespace, deployment("iris", replicas=0, paused=True))

    ignored = apps.patch_namespaced_deployment("iris", namespace, {"status": {"replicas": 42}}, _content_type=MERGE)
    assert ignored.status.replicas is None and ignored.metadata.resource_version == created.metadata.resource_version

    written = apps.patch_namespaced_deployment_status(
        "iris", namespace, {"status": {"replicas": 7}, "spec": {"replicas": 9}}, _content_type=MERGE
    )
    assert (written.status.replicas, written.spec.replicas, written.metadata.generation) == (7, 0, 1)
    assert apps.read_namespaced_deployment_status("iris", namespace).status.replicas == 7


def test_put_replace_checks_resource_version(kube_cluster: KubeCluster) -> None:
    core, namespace = kube_cluster.core, kube_cluster.namespace
    created = core.create_namespaced_config_map(namespace, {"metadata": {"name": "cfg"}, "data": {"a": "1"}})
    body = {
        "metadata": {"name": "cfg", "resourceVersion": created.metadata.resource_version},
        "data": {"a": "2"},
    }
    replaced = core.replace_namespaced_config_map("cfg", namespace, body)
    assert replaced.data == {"a": "2"}
    stale = error_of(core.replace_namespaced_config_map, "cfg", namespace, body)
    assert stale.status == 409 and "the object has been modified" in json.loads(stale.body)["message"]
    assert (
        error_of(core.replace_namespaced_config_map, "other", namespace, {"metadata": {"name": "other"}}).status == 404
    )


def test_validation_like_a_real_server(kube_cluster: KubeCluster) -> None:
    apps, namespace = kube_cluster.apps, kube_cluster.namespace
    mismatched = deployment("iris")
    mismatched["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    invalid = error_of(apps.create_namespaced_deployment, namespace, mismatched)
    assert invalid.status == 422 and json.loads(invalid.body)["reason"] == "Invalid"

    bad_label = deployment("iris")
    bad_label["metadata"]["labels"]["image"] = "registry.local/models/iris:1"
    assert error_of(apps.create_namespaced_deployment, namespace, bad_label).status == 422


def test_unknown_fields_warn_or_fail_with_strict_validation(kube_cluster: KubeCluster) -> None:
    if kube_cluster.is_emulated and semantics.kv_utils is None:
        pytest.skip("schema checks need the kubernetes-validate package")
    namespace = kube_cluster.namespace
    # Client 37 refuses unknown fields itself, so send this one raw.
    unknown = deployment("iris")
    unknown["spec"]["replicaCount"] = 2
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    strict, body = raw_request(kube_cluster, "POST", path, unknown, [("fieldValidation", "Strict")])
    assert strict == 400 and "unknown field" in body["message"]
    created, body = raw_request(kube_cluster, "POST", path, unknown)  # by default: a Warning header
    assert created == 201 and "replicaCount" not in body["spec"]


def test_secrets_create_and_get(kube_cluster: KubeCluster) -> None:
    core, namespace = kube_cluster.core, kube_cluster.namespace
    secret = {"metadata": {"name": "pull"}, "type": "Opaque", "stringData": {"token": "s3cr3t"}}
    core.create_namespaced_secret(namespace, secret)
    stored = core.read_namespaced_secret("pull", namespace)
    assert stored.data == {"token": "czNjcjN0"} and stored.string_data is None


def test_watch_streams_changes_and_honours_timeout(kube_cluster: KubeCluster) -> None:
    core, namespace = kube_cluster.core, kube_cluster.namespace
    start = core.list_namespaced_config_map(namespace).metadata.resource_version
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "cfg"}, "data": {"a": "1"}})
    core.patch_namespaced_config_map("cfg", namespace, {"data": {"a": "2"}})
    core.delete_namespaced_config_map("cfg", namespace)

    seen: list[tuple[str, str]] = []

    def follow() -> None:
        stream = watch.Watch().stream(
            core.list_namespaced_config_map, namespace, resource_version=start, timeout_seconds=1
        )
        seen.extend((event["type"], event["object"].metadata.name) for event in stream)

    # The server ends the watch at its timeout (how close to it: benchmarks/emulator/run.py); a watch
    # that never ended would leave this thread running.
    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    follower.join(timeout=30)
    assert not follower.is_alive(), "the watch did not end at its timeout"
    assert seen == [("ADDED", "cfg"), ("MODIFIED", "cfg"), ("DELETED", "cfg")]


def test_watches_send_bookmarks_and_end_with_410_gone_after_a_compaction(kube_cluster: KubeCluster) -> None:
    emulator, _ = kube_cluster.require_emulator()
    emulator.bookmark_interval = 0.2
    core, namespace = kube_cluster.core, kube_cluster.namespace
    start = core.list_namespaced_config_map(namespace).metadata.resource_version

    def watch_lines(**options: Any) -> list[dict]:
        response = core.list_namespaced_config_map(
            namespace, watch=True, resource_version=start, timeout_seconds=1, _preload_content=False, **options
        )
        return [json.loads(line) for line in response.data.splitlines() if line.strip()]

    quiet = watch_lines(allow_watch_bookmarks=True)
    assert quiet and {event["type"] for event in quiet} == {"BOOKMARK"}
    assert int(quiet[-1]["object"]["metadata"]["resourceVersion"]) >= int(start)
    assert watch_lines() == []  # no bookmarks unless asked for

    core.create_namespaced_config_map(namespace, {"metadata": {"name": "cfg"}})
    assert emulator.expire_watches() >= 0  # compacted past `start`
    (gone,) = watch_lines(allow_watch_bookmarks=True)
    assert gone["type"] == "ERROR" and gone["object"]["code"] == 410 and gone["object"]["reason"] == "Expired"
    fresh = core.list_namespaced_config_map(namespace).metadata.resource_version  # a new list: watching works
    response = core.list_namespaced_config_map(namespace, watch=True, resource_version=fresh, timeout_seconds=1,
                                               _preload_content=False)  # fmt: skip
    assert response.data.strip() == b""


def test_an_apply_taken_as_the_whole_object_refuses_a_partial_one(kube_cluster: KubeCluster) -> None:
    # Some independent API servers do not share fields between managers: a partial apply is the whole object.
    emulator, _ = kube_cluster.require_emulator()
    emulator.core.whole_object_apply = True
    apps, namespace = kube_cluster.apps, kube_cluster.namespace
    apps.patch_namespaced_deployment("iris", namespace, deployment("iris", replicas=3), field_manager="slipway",
                                     _content_type=APPLY)  # fmt: skip

    partial = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "iris"}, "spec": {"replicas": 2}}
    refused = error_of(apps.patch_namespaced_deployment, "iris", namespace, partial, field_manager="handover",
                       _content_type=APPLY)  # fmt: skip
    assert refused.status == 422

    whole = deployment("iris", replicas=2)
    del whole["metadata"]["labels"]
    applied = apps.patch_namespaced_deployment("iris", namespace, whole, field_manager="slipway", _content_type=APPLY)
    assert applied.spec.replicas == 2 and not applied.metadata.labels  # what it left out is gone


def test_namespace_delete_removes_its_objects(kube_cluster: KubeCluster) -> None:
    core = kube_cluster.core
    core.create_namespace({"metadata": {"name": f"{kube_cluster.namespace}-x"}})
    core.create_namespaced_config_map(f"{kube_cluster.namespace}-x", {"metadata": {"name": "cfg"}})
    deleted = core.delete_namespace(f"{kube_cluster.namespace}-x")  # client 37 returns deletes as dicts
    assert deleted["kind"] == "Namespace" and deleted["status"]["phase"] == "Terminating"
    kube_cluster.wait_for(lambda: not [n for n in core.list_namespace().items if n.metadata.name.endswith("-x")])


# --- credentials, authorization and injected faults ---------------------------------------------------


def test_requests_without_the_token_get_401(kube_cluster: KubeCluster, tmp_path: Any) -> None:
    emulator, _ = kube_cluster.require_emulator()
    for token in ("wrong-token", ""):
        api = config.new_client_from_config(str(emulator.write_kubeconfig(tmp_path / f"kc{token}", token=token)))
        assert error_of(client.CoreV1Api(api).list_namespace).status == 401
        api.close()
    assert urllib3.request("GET", emulator.url + "/version").status == 200  # anonymous may read /version


def test_fail_next_and_delay_next_reach_the_client(kube_cluster: KubeCluster) -> None:
    emulator, _ = kube_cluster.require_emulator()
    core, namespace = kube_cluster.core, kube_cluster.namespace
    emulator.fail_next(2, status=500, path="/configmaps")
    assert error_of(core.list_namespaced_config_map, namespace).status == 500
    assert error_of(core.list_namespaced_config_map, namespace).status == 500
    assert core.list_namespaced_config_map(namespace).items == []

    emulator.fail_next(1, status=503, method="POST")
    failure = error_of(core.create_namespaced_config_map, namespace, {"metadata": {"name": "x"}})
    assert failure.status == 503 and failure.headers["Retry-After"] == "1"

    # urllib3 retries a timed-out GET by itself (3 times), so delay every attempt.
    emulator.delay_next(4, seconds=0.6, path="/configmaps")
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        core.list_namespaced_config_map(namespace, _request_timeout=0.2)


def test_access_review_and_denied_verbs(kube_cluster: KubeCluster) -> None:
    emulator, _ = kube_cluster.require_emulator()
    reviews = client.AuthorizationV1Api(kube_cluster.api_client)

    def allowed(verb: str) -> bool:
        attributes = {
            "verb": verb,
            "group": "apps",
            "resource": "deployments",
            "namespace": kube_cluster.namespace,
        }
        return reviews.create_self_subject_access_review({"spec": {"resourceAttributes": attributes}}).status.allowed

    assert allowed("create")
    emulator.deny("create", "deployments", namespace=kube_cluster.namespace)
    assert not allowed("create") and allowed("get")
    forbidden = error_of(kube_cluster.apps.create_namespaced_deployment, kube_cluster.namespace, deployment("iris"))
    assert forbidden.status == 403 and json.loads(forbidden.body)["reason"] == "Forbidden"


def test_pod_logs_with_tail_lines(kube_cluster: KubeCluster) -> None:
    emulator, _ = kube_cluster.require_emulator()
    core, namespace = kube_cluster.core, kube_cluster.namespace
    core.create_namespaced_pod(
        namespace, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    )
    emulator.set_pod_log(namespace, "p", "one\ntwo\nthree\n")
    assert core.read_namespaced_pod_log("p", namespace, tail_lines=2) == "two\nthree\n"
    assert error_of(core.read_namespaced_pod_log, "missing", namespace).status == 404


def test_changes_behind_the_platforms_back_reach_watchers(kube_cluster: KubeCluster) -> None:
    emulator, _ = kube_cluster.require_emulator()
    core, namespace = kube_cluster.core, kube_cluster.namespace
    created = core.create_namespaced_config_map(namespace, {"metadata": {"name": "cfg"}, "data": {"a": "1"}})
    stored = emulator.get("configmaps", namespace, "cfg")
    stored["data"]["a"] = "changed"
    emulator.put(stored)
    stream = watch.Watch().stream(
        core.list_namespaced_config_map,
        namespace,
        resource_version=created.metadata.resource_version,
        timeout_seconds=1,
    )
    assert [(e["type"], e["object"].data["a"]) for e in stream] == [("MODIFIED", "changed")]


# --- the controller: rollouts and failures ------------------------------------------------------------


def test_rollout_reaches_available_then_rolls_a_new_template(kube_cluster: KubeCluster) -> None:
    apps, namespace = kube_cluster.apps, kube_cluster.namespace
    apps.create_namespaced_deployment(namespace, deployment("iris", replicas=2))
    done = kube_cluster.wait_for(lambda: rolled_out(kube_cluster, "iris"), timeout=60, message="rollout")
    assert (done.status.replicas, done.status.ready_replicas, done.status.available_replicas) == (2, 2, 2)
    assert done.status.updated_replicas == 2 and done.status.unavailable_replicas is None
    assert conditions(done)["Available"].status == "True"
    pods = live_pods_of(kube_cluster, "iris")
    assert len(pods) == 2
    assert all(p.status.phase == "Running" and p.metadata.labels["pod-template-hash"] for p in pods)
    assert all(p.status.container_statuses[0].image_id for p in pods)

    env = [{"name": "MODEL_VERSION", "value": "2"}]
    template_change = {"spec": {"template": {"spec": {"containers": [{"name": "model", "env": env}]}}}}
    assert apps.patch_namespaced_deployment("iris", namespace, template_change).metadata.generation == 2
    kube_cluster.wait_for(lambda: rolled_out(kube_cluster, "iris"), timeout=60, message="second rollout")

    def only_new_pods() -> bool:
        pods = live_pods_of(kube_cluster, "iris")
        return len(pods) == 2 and all(p.spec.containers[0].env for p in pods)

    kube_cluster.wait_for(only_new_pods, timeout=60, message="old pods replaced")
    replica_sets = apps.list_namespaced_replica_set(namespace).items
    assert sorted(rs.spec.replicas for rs in replica_sets) == [0, 2]
    assert "ScalingReplicaSet" in {e.reason for e in events_for(kube_cluster, "iris")}
    pod_name = live_pods_of(kube_cluster, "iris")[0].metadata.name
    assert {"Scheduled", "Pulled", "Created", "Started"} <= {e.reason for e in events_for(kube_cluster, pod_name)}

    status = apps.delete_namespaced_deployment("iris", namespace)  # client 37 returns deletes as dicts
    assert (status["kind"], status["status"]) == ("Status", "Success")
    kube_cluster.wait_for(lambda: not live_pods_of(kube_cluster, "iris"), message="cascading deletion")


def test_image_pull_backoff_is_visible(kube_cluster: KubeCluster) -> None:
    kube_cluster.require_emulator()
    core, namespace = kube_cluster.core, kube_cluster.namespace
    kube_cluster.apps.create_namespaced_deployment(namespace, deployment("iris", image="registry.local/bad-image:1"))

    def waiting_reason() -> str | None:
        pods = pods_of(kube_cluster, "iris")
        statuses = pods[0].status.container_statuses if pods else None
        waiting = statuses[0].state.waiting if statuses else None
        return waiting.reason if waiting and waiting.reason == "ImagePullBackOff" else None

    kube_cluster.wait_for(waiting_reason, message="ImagePullBackOff")
    pod = pods_of(kube_cluster, "iris")[0]
    assert pod.status.phase == "Pending"
    messages = [e.message for e in events_for(kube_cluster, pod.metadata.name) if e.type == "Warning"]
    assert any(m.startswith('Failed to pull image "registry.local/bad-image:1"') for m in messages)
    logs = error_of(core.read_namespaced_pod_log, pod.metadata.name, namespace)
    assert logs.status == 400 and "waiting to start" in json.loads(logs.body)["message"]


def test_crash_loop_backoff_is_visible_with_logs(kube_cluster: KubeCluster) -> None:
    _, controller = kube_cluster.require_emulator()
    controller.crash_interval = 0.2
    core, namespace = kube_cluster.core, kube_cluster.namespace
    kube_cluster.apps.create_namespaced_deployment(namespace, deployment("iris", image="registry.local/crashloop:1"))

    def restarted_twice() -> Any:
        pods = pods_of(kube_cluster, "iris")
        statuses = pods[0].status.container_statuses if pods else None
        return pods[0] if statuses and statuses[0].restart_count >= 2 else None

    pod = kube_cluster.wait_for(restarted_twice, message="restarts")
    container = pod.status.container_statuses[0]
    assert container.state.waiting.reason == "CrashLoopBackOff" and not container.ready
    assert container.last_state.terminated.exit_code == 1
    assert "Traceback" in core.read_namespaced_pod_log(pod.metadata.name, namespace, previous=True)
    assert "RuntimeError" in core.read_namespaced_pod_log(pod.metadata.name, namespace, tail_lines=1)
    back_off = [e for e in events_for(kube_cluster, pod.metadata.name) if e.reason == "BackOff"]
    assert back_off and back_off[0].type == "Warning"


def test_progress_deadline_exceeded(kube_cluster: KubeCluster) -> None:
    kube_cluster.require_emulator()
    manifest = deployment("iris", image="registry.local/bad-image:1", progressDeadlineSeconds=1)
    kube_cluster.apps.create_namespaced_deployment(kube_cluster.namespace, manifest)

    def timed_out() -> Any:
        current = kube_cluster.apps.read_namespaced_deployment(manifest["metadata"]["name"], kube_cluster.namespace)
        progressing = conditions(current).get("Progressing")
        return progressing if progressing and progressing.status == "False" else None

    progressing = kube_cluster.wait_for(timed_out, timeout=5, message="ProgressDeadlineExceeded")
    assert progressing.reason == "ProgressDeadlineExceeded"


def test_unschedulable_gpu_request_until_the_node_has_one(kube_cluster: KubeCluster) -> None:
    _, controller = kube_cluster.require_emulator()
    manifest = deployment("iris")
    manifest["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    kube_cluster.apps.create_namespaced_deployment(kube_cluster.namespace, manifest)

    def unschedulable() -> Any:
        pods = pods_of(kube_cluster, "iris")
        scheduled = [c for c in (pods[0].status.conditions or []) if c.type == "PodScheduled"] if pods else []
        return scheduled[0] if scheduled and scheduled[0].status == "False" else None

    scheduled = kube_cluster.wait_for(unschedulable, message="Unschedulable")
    assert scheduled.reason == "Unschedulable" and "Insufficient nvidia.com/gpu" in scheduled.message
    pod = pods_of(kube_cluster, "iris")[0]
    assert pod.status.phase == "Pending" and pod.spec.node_name is None
    assert "FailedScheduling" in {e.reason for e in events_for(kube_cluster, pod.metadata.name)}

    controller.node_capacity["nvidia.com/gpu"] = "1"
    kube_cluster.wait_for(lambda: rolled_out(kube_cluster, "iris"), message="rollout once a GPU exists")


def test_configurable_failure_rules(kube_cluster: KubeCluster) -> None:
    _, controller = kube_cluster.require_emulator()
    controller.allowed_registries = {"registry.local"}
    controller.fail_images["needs-secret"] = "CreateContainerConfigError"
    apps, namespace = kube_cluster.apps, kube_cluster.namespace
    apps.create_namespaced_deployment(namespace, deployment("public", image="docker.io/library/python:3.11"))
    apps.create_namespaced_deployment(namespace, deployment("config", image="registry.local/needs-secret:1"))

    def reason(name: str) -> str | None:
        pods = pods_of(kube_cluster, name)
        statuses = pods[0].status.container_statuses if pods else None
        return statuses[0].state.waiting.reason if statuses and statuses[0].state.waiting else None

    kube_cluster.wait_for(lambda: reason("public") == "ImagePullBackOff", message="registry not allowed")
    kube_cluster.wait_for(lambda: reason("config") == "CreateContainerConfigError", message="custom rule")


def test_hpa_keeps_replicas_within_bounds(kube_cluster: KubeCluster) -> None:
    kube_cluster.require_emulator()
    namespace = kube_cluster.namespace
    kube_cluster.apps.create_namespaced_deployment(namespace, deployment("iris"))
    kube_cluster.autoscaling.create_namespaced_horizontal_pod_autoscaler(
        namespace,
        {
            "metadata": {"name": "iris"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "iris"},
                "minReplicas": 2,
                "maxReplicas": 4,
            },
        },
    )

    def scaled() -> Any:
        hpa = kube_cluster.autoscaling.read_namespaced_horizontal_pod_autoscaler("iris", namespace)
        return hpa if hpa.status.current_replicas == 2 else None

    hpa = kube_cluster.wait_for(scaled, message="HPA status")
    assert hpa.status.desired_replicas == 2 and hpa.spec.metrics[0].resource.name == "cpu"
    assert kube_cluster.apps.read_namespaced_deployment_scale("iris", namespace).spec.replicas == 2
    assert kube_cluster.controller is not None and kube_cluster.controller.errors == []
