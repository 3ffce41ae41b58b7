"""A small stand-in for kube-controller-manager, kube-scheduler and one kubelet, for the emulator.

It talks to the API server only over HTTP with the official client (like the real components), so what
the platform under test observes (Deployment conditions, ReplicaSets, Pods, Events) is written through
the same API it reads. Container logs are the exception: a kubelet keeps them on the node, so they reach
the emulator through `log_sink` (wire it to `KubeEmulator.set_pod_log`).

Failures are decided from the image reference and the pod's requests:
  * an image containing a key of `fail_images` gets that outcome (default "bad-image" -> ImagePullBackOff,
    "crashloop" -> CrashLoopBackOff; "unloadable" -> what the serving runtime does with a model it cannot
    load: it runs, readiness answers 503 for `load_failure_grace` seconds, then it exits with code 3 and
    the kubelet backs off (CrashLoopBackOff), its log the runtime's JSON lines naming `load_error`; other
    reasons, e.g. "CreateContainerConfigError", wait with that reason);
  * with `allowed_registries` set, an image from any other registry cannot be pulled (ImagePullBackOff);
  * requests above `node_capacity` (cpu 64, memory 256Gi, no nvidia.com/gpu by default) leave the pod
    Pending/Unschedulable with a FailedScheduling event;
  * a Deployment that is not complete within spec.progressDeadlineSeconds gets ProgressDeadlineExceeded.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.utils import parse_quantity

from serving.contract import EXIT_LOAD_FAILED

log = logging.getLogger(__name__)
Obj = dict[str, Any]
LogSink = Callable[..., None]
AGENT = "kube-controller-manager/v1.30.0 (linux/amd64) slipway-emulator"
HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
MODEL_LOAD_FAILURE = "ModelLoadFailure"  # no kubelet reason: the outcome of an image whose model cannot load
DEFAULT_FAIL_IMAGES = {
    "bad-image": "ImagePullBackOff",
    "crashloop": "CrashLoopBackOff",
    "unloadable": MODEL_LOAD_FAILURE,
}
# What the runtime says of a text file uploaded as a scikit-learn model (the case).
LOAD_ERROR = "model failed to load: UnpicklingError: invalid load key, 't'."
DEFAULT_CAPACITY = {"cpu": "64", "memory": "256Gi", "pods": "110", "ephemeral-storage": "100Gi"}
PULL_FAILURES = {"ImagePullBackOff", "ErrImagePull"}
TRACEBACK = """Starting model server
Traceback (most recent call last):
  File "/app/serve.py", line 12, in <module>
    model = load_model(MODEL_PATH)
  File "/app/serve.py", line 7, in load_model
    raise RuntimeError(f"cannot load model from {path}")
RuntimeError: cannot load model from /models/model.onnx
"""


def runtime_load_failure_log(error: str, *, exited: bool) -> str:
    """The serving runtime's own lines for a model it cannot load (see serving/protocol.py, workers.py)."""
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
    records: list[Obj] = [
        {"ts": stamp, "level": "info", "event": "listening", "host": "0.0.0.0", "port": 8080},  # noqa: S104
        {
            "ts": stamp,
            "level": "error",
            "event": "model_load_failed",
            "error": error,
            "traceback": "Traceback (most recent call last):\n  ...\n" + error.split(": ", 1)[-1],
        },
    ]
    if exited:
        records.append(
            {"ts": stamp, "level": "error", "event": "exiting", "error": error, "exit_code": EXIT_LOAD_FAILED}
        )
    return "".join(json.dumps(record) + "\n" for record in records)


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def template_hash(template: Obj) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(HASH_ALPHABET[byte % len(HASH_ALPHABET)] for byte in digest[:10])


def image_registry(image: str) -> str:
    first, _, rest = image.partition("/")
    return first if rest and ("." in first or ":" in first or first == "localhost") else "docker.io"


def image_reference(image: str) -> str:
    """The fully qualified reference containerd reports ("nginx" -> "docker.io/library/nginx:latest")."""
    reference = (
        image
        if image_registry(image) != "docker.io" or image.startswith("docker.io/")
        else (f"docker.io/{image}" if "/" in image else f"docker.io/library/{image}")
    )
    return reference if "@" in reference or ":" in reference.rsplit("/", 1)[-1] else f"{reference}:latest"


def resolve_percent(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * total / 100
        return int(-(-exact // 1)) if round_up else int(exact)
    return int(value or 0)


def owner_uid(obj: Obj) -> str | None:
    refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("controller")]
    return refs[0]["uid"] if refs else None


def is_ready(pod: Obj) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def condition(
    kind: str, status: str, reason: str | None = None, message: str | None = None, since: str | None = None
) -> Obj:
    result = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": since or now_iso()}
    if reason:
        result.update(reason=reason, message=message or "")
    return result


@dataclass
class PodMemory:
    """What this kubelet remembers of a pod: when it saw it and when things happened (stable timestamps)."""

    seen: float
    ip: str
    started_at: str = field(default_factory=now_iso)
    restarts: dict[str, int] = field(default_factory=dict)
    logged: set[str] = field(default_factory=set)


@dataclass
class RolloutMemory:
    progress_key: tuple = ()
    progressed_at: float = 0.0
    progressed_iso: str = ""


class DeploymentController:
    def __init__(
        self,
        kubeconfig: str | Path,
        *,
        ready_delay: float = 0.2,
        crash_interval: float = 0.5,
        load_failure_grace: float = 0.5,
        node_name: str = "emulated-node",
        log_sink: LogSink | None = None,
        resync_interval: float = 1.0,
    ) -> None:
        self.kubeconfig = str(kubeconfig)
        self.ready_delay, self.crash_interval = ready_delay, crash_interval
        self.load_failure_grace, self.load_error = load_failure_grace, LOAD_ERROR
        self.node_name, self.log_sink, self.resync_interval = node_name, log_sink, resync_interval
        self._initial_delays = (ready_delay, crash_interval, load_failure_grace)
        self.fail_images: dict[str, str] = dict(DEFAULT_FAIL_IMAGES)
        self.allowed_registries: set[str] | None = None
        self.node_capacity: dict[str, str] = dict(DEFAULT_CAPACITY)
        self.node_labels: dict[str, str] = {}
        self.errors: list[str] = []
        self._pods: dict[str, PodMemory] = {}
        self._rollouts: dict[str, RolloutMemory] = {}
        self._events: dict[tuple[str, str, str], tuple[str, int]] = {}
        self._ips = itertools.count(2)
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watches: list[watch.Watch] = []
        self._api: client.ApiClient | None = None
        self._node_key = ""
        self._due: list[float] = []

    def reset_rules(self) -> None:
        """Back to the default failure rules and node (a fixture calls this between tests)."""
        self.ready_delay, self.crash_interval, self.load_failure_grace = self._initial_delays
        self.load_error = LOAD_ERROR
        self.fail_images = dict(DEFAULT_FAIL_IMAGES)
        self.allowed_registries = None
        self.node_capacity = dict(DEFAULT_CAPACITY)
        self.node_labels = {}
        self.errors.clear()
        self._dirty.set()

    # --- lifecycle ------------------------------------------------------------------------------------

    def __enter__(self) -> DeploymentController:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        self._api = config.new_client_from_config(config_file=self.kubeconfig)
        self._api.user_agent = AGENT
        self.core, self.apps = client.CoreV1Api(self._api), client.AppsV1Api(self._api)
        self.autoscaling = client.AutoscalingV2Api(self._api)
        watched = [
            self.apps.list_deployment_for_all_namespaces,
            self.apps.list_replica_set_for_all_namespaces,
            self.core.list_pod_for_all_namespaces,
            self.autoscaling.list_horizontal_pod_autoscaler_for_all_namespaces,
        ]
        self._threads = [
            threading.Thread(target=self._watch_loop, args=(lister,), daemon=True, name=f"kube-controller-watch-{i}")
            for i, lister in enumerate(watched)
        ]
        self._threads.append(threading.Thread(target=self._run, daemon=True, name="kube-controller"))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._dirty.set()
        for stream in list(self._watches):
            stream.stop()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._api:
            self._api.close()

    def _watch_loop(self, lister: Callable[..., Any]) -> None:
        """Any change to a watched kind wakes the reconcile loop (an informer without a cache)."""
        while not self._stopping.is_set():
            stream = watch.Watch()
            self._watches.append(stream)
            try:
                for _ in stream.stream(lister, timeout_seconds=5, deserialize=False):
                    self._dirty.set()
                    if self._stopping.is_set():
                        break
            except Exception:  # the server restarted or the socket was shut by stop(): start over
                self._stopping.wait(0.1)
            finally:
                self._watches.remove(stream)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._dirty.wait(self._next_wakeup())
            self._dirty.clear()
            if self._stopping.is_set():
                return
            try:
                self.reconcile()
            except Exception as error:
                self._note_error(error)
                self._stopping.wait(0.2)

    def _next_wakeup(self) -> float:
        """Time-driven transitions (readiness, crashes, deadlines) need a wake-up even without events."""
        soonest = min(self._due, default=time.monotonic() + self.resync_interval)
        return max(0.02, min(self.resync_interval, soonest - time.monotonic()))

    def _wake_at(self, when: float) -> None:
        self._due.append(when)

    def _note_error(self, error: Exception) -> None:
        if isinstance(error, ApiException) and error.status in (404, 409):
            return  # raced with a deletion or another writer: the next pass sees the new state
        log.exception("emulated controller error")
        self.errors.append(repr(error))

    # --- reconcile ------------------------------------------------------------------------------------

    def _list(self, lister: Callable[..., Any]) -> list[Obj]:
        response = lister(_preload_content=False)
        return json.loads(response.data)["items"]

    def reconcile(self) -> None:
        self._due = []
        self._sync_node()
        deployments = self._list(self.apps.list_deployment_for_all_namespaces)
        replicasets = self._list(self.apps.list_replica_set_for_all_namespaces)
        pods = self._list(self.core.list_pod_for_all_namespaces)
        for deployment in deployments:
            self._guard(self._sync_deployment, deployment, replicasets, pods)
        for replicaset in replicasets:
            self._guard(self._sync_replicaset, replicaset, pods)
        for pod in pods:
            self._guard(self._kubelet, pod)
        hpas = self._list(self.autoscaling.list_horizontal_pod_autoscaler_for_all_namespaces)
        for hpa in hpas:
            self._guard(self._sync_hpa, hpa, deployments)
        self._forget_deleted(pods, deployments, replicasets, hpas)

    def _forget_deleted(self, *kinds: list[Obj]) -> None:
        live = {obj["metadata"]["uid"] for objects in kinds for obj in objects}
        self._pods = {uid: memory for uid, memory in self._pods.items() if uid in live}
        self._rollouts = {uid: memory for uid, memory in self._rollouts.items() if uid in live}
        self._events = {key: value for key, value in self._events.items() if key[0] in live}

    def _guard(self, step: Callable[..., None], *args: Any) -> None:
        try:
            step(*args)
        except Exception as error:
            self._note_error(error)

    def _sync_node(self) -> None:
        labels = {
            "kubernetes.io/hostname": self.node_name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            **self.node_labels,
        }
        status = {
            "capacity": dict(self.node_capacity),
            "allocatable": dict(self.node_capacity),
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                }
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.30.0",
                "containerRuntimeVersion": "containerd://1.7.15",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "osImage": "Debian 12",
                "kernelVersion": "6.1.0",
                "kubeProxyVersion": "v1.30.0",
                "machineID": "emulated",
                "systemUUID": "emulated",
                "bootID": "emulated",
            },
        }
        key = json.dumps([labels, self.node_capacity], sort_keys=True)
        if self._node_key == key:
            return
        try:
            self.core.create_node({"metadata": {"name": self.node_name, "labels": labels}})
        except ApiException as error:
            if error.status != 409:
                raise
            self.core.patch_node(self.node_name, {"metadata": {"labels": labels}})
        self.core.patch_node_status(self.node_name, {"status": status}, _content_type="application/merge-patch+json")
        self._node_key = key

    # --- events ---------------------------------------------------------------------------------------

    def _event(
        self,
        obj: Obj,
        reason: str,
        message: str,
        *,
        kind: str,
        component: str,
        warning: bool = False,
        field_path: str | None = None,
        repeat: bool = False,
    ) -> None:
        """Record an Event like the real components do; repeats bump count on the same Event."""
        meta = obj["metadata"]
        key = (meta["uid"], reason, message)
        now = now_iso()
        if key in self._events:
            if not repeat:
                return
            name, count = self._events[key]
            self.core.patch_namespaced_event(
                name,
                meta["namespace"],
                {"count": count + 1, "lastTimestamp": now},
                _content_type="application/merge-patch+json",
            )
            self._events[key] = (name, count + 1)
            return
        name = f"{meta['name']}.{hashlib.sha256(repr((key, time.time())).encode()).hexdigest()[:16]}"
        involved = {
            "kind": kind,
            "namespace": meta["namespace"],
            "name": meta["name"],
            "uid": meta["uid"],
            "apiVersion": "apps/v1"
            if kind in ("Deployment", "ReplicaSet")
            else ("autoscaling/v2" if kind == "HorizontalPodAutoscaler" else "v1"),
            "resourceVersion": meta.get("resourceVersion"),
        }
        if field_path:
            involved["fieldPath"] = field_path
        host = {"host": self.node_name} if component == "kubelet" else {}
        self.core.create_namespaced_event(
            meta["namespace"],
            {
                "metadata": {"name": name, "namespace": meta["namespace"]},
                "involvedObject": involved,
                "reason": reason,
                "message": message,
                "type": "Warning" if warning else "Normal",
                "source": {"component": component, **host},
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
                "reportingComponent": component,
                "reportingInstance": self.node_name if host else "",
                "eventTime": None,
            },
        )
        self._events[key] = (name, 1)

    # --- deployments ----------------------------------------------------------------------------------

    def _sync_deployment(self, deployment: Obj, replicasets: list[Obj], pods: list[Obj]) -> None:
        meta, spec = deployment["metadata"], deployment["spec"]
        owned = [rs for rs in replicasets if owner_uid(rs) == meta["uid"]]
        pod_hash = template_hash(spec["template"])
        new_rs = next((rs for rs in owned if rs["metadata"]["labels"].get("pod-template-hash") == pod_hash), None)
        if new_rs is None and not spec.get("paused"):
            new_rs = self._create_replicaset(deployment, owned, pod_hash)
            owned.append(new_rs)
        old_sets = [rs for rs in owned if rs is not new_rs]
        if new_rs is not None and not spec.get("paused"):
            self._roll(deployment, new_rs, old_sets, pods)
        self._write_deployment_status(deployment, new_rs, owned, pods)

    def _create_replicaset(self, deployment: Obj, owned: list[Obj], pod_hash: str) -> Obj:
        meta, spec = deployment["metadata"], deployment["spec"]
        revision = 1 + max(
            [int(rs["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision", 0)) for rs in owned]
            or [0]
        )
        template = copy.deepcopy(spec["template"])
        template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = pod_hash
        selector = copy.deepcopy(spec["selector"])
        selector.setdefault("matchLabels", {})["pod-template-hash"] = pod_hash
        body = {
            "metadata": {
                "name": f"{meta['name']}-{pod_hash}",
                "namespace": meta["namespace"],
                "labels": template["metadata"]["labels"],
                "annotations": {
                    "deployment.kubernetes.io/revision": str(revision),
                    "deployment.kubernetes.io/desired-replicas": str(spec.get("replicas", 1)),
                },
                "ownerReferences": [_owner_ref(deployment, "apps/v1", "Deployment")],
            },
            "spec": {"replicas": 0, "selector": selector, "template": template},
        }
        created = self.apps.create_namespaced_replica_set(meta["namespace"], body, _preload_content=False)
        self._rollouts.pop(meta["uid"], None)
        return json.loads(created.data)

    def _roll(self, deployment: Obj, new_rs: Obj, old_sets: list[Obj], pods: list[Obj]) -> None:
        spec = deployment["spec"]
        desired = spec.get("replicas", 1)
        ready = {
            rs["metadata"]["uid"]: sum(1 for p in pods if owner_uid(p) == rs["metadata"]["uid"] and is_ready(p))
            for rs in [new_rs, *old_sets]
        }
        new_replicas = new_rs["spec"].get("replicas", 0)
        old_total = sum(rs["spec"].get("replicas", 0) for rs in old_sets)
        if spec.get("strategy", {}).get("type") == "Recreate":
            old_pods = sum(1 for p in pods if owner_uid(p) in {rs["metadata"]["uid"] for rs in old_sets})
            for rs in old_sets:
                self._scale(deployment, rs, 0)
            if old_pods == 0:
                self._scale(deployment, new_rs, desired)
            return
        rolling = spec.get("strategy", {}).get("rollingUpdate") or {}
        surge = resolve_percent(rolling.get("maxSurge", "25%"), desired, round_up=True)
        unavailable = resolve_percent(rolling.get("maxUnavailable", "25%"), desired, round_up=False)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        if new_replicas < desired:
            target = min(desired, new_replicas + max(0, desired + surge - new_replicas - old_total))
        else:
            target = desired
        self._scale(deployment, new_rs, target)
        self._scale_down_old(
            deployment,
            old_sets,
            ready,
            desired - unavailable,
            new_unavailable=target - ready[new_rs["metadata"]["uid"]],
            new_ready=ready[new_rs["metadata"]["uid"]],
            total=target + old_total,
        )

    def _scale_down_old(
        self,
        deployment: Obj,
        old_sets: list[Obj],
        ready: dict[str, int],
        min_available: int,
        new_unavailable: int,
        new_ready: int,
        total: int,
    ) -> None:
        """First drop old pods that are not ready, then ready ones while min_available still holds."""
        budget = total - min_available - new_unavailable
        if budget <= 0:
            return
        for rs in old_sets:
            replicas = rs["spec"].get("replicas", 0)
            cut = min(max(replicas - ready[rs["metadata"]["uid"]], 0), max(budget, 0))
            self._scale(deployment, rs, replicas - cut)
            budget -= cut
        removable = new_ready + sum(ready[rs["metadata"]["uid"]] for rs in old_sets) - min_available
        for rs in old_sets:
            replicas = rs["spec"].get("replicas", 0)
            cut = min(replicas, max(removable, 0))
            self._scale(deployment, rs, replicas - cut)
            removable -= cut

    def _scale(self, deployment: Obj, replicaset: Obj, replicas: int) -> None:
        current = replicaset["spec"].get("replicas", 0)
        if current == replicas:
            return
        self.apps.patch_namespaced_replica_set(
            replicaset["metadata"]["name"],
            replicaset["metadata"]["namespace"],
            {
                "spec": {"replicas": replicas},
                "metadata": {
                    "annotations": {
                        "deployment.kubernetes.io/desired-replicas": str(deployment["spec"].get("replicas", 1))
                    }
                },
            },
            _content_type="application/merge-patch+json",
            _preload_content=False,
        )
        replicaset["spec"]["replicas"] = replicas
        direction = "up" if replicas > current else "down"
        self._event(
            deployment,
            "ScalingReplicaSet",
            f"Scaled {direction} replica set {replicaset['metadata']['name']} from {current} to {replicas}",
            kind="Deployment",
            component="deployment-controller",
            repeat=True,
        )

    def _write_deployment_status(self, deployment: Obj, new_rs: Obj | None, owned: list[Obj], pods: list[Obj]) -> None:
        meta = deployment["metadata"]
        owned_uids = {rs["metadata"]["uid"] for rs in owned}
        mine = [p for p in pods if owner_uid(p) in owned_uids]
        updated = [p for p in mine if new_rs and owner_uid(p) == new_rs["metadata"]["uid"]]
        ready = sum(1 for p in mine if is_ready(p))
        wanted = sum(rs["spec"].get("replicas", 0) for rs in owned)  # surge pods count as unavailable too
        counts = {
            "replicas": len(mine),
            "updatedReplicas": len(updated),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(wanted - ready, 0),
        }
        status: Obj = {
            "observedGeneration": meta.get("generation", 1),
            **{key: value for key, value in counts.items() if value},
        }
        status["conditions"] = self._deployment_conditions(deployment, new_rs, counts)
        revision = (new_rs or {}).get("metadata", {}).get("annotations", {}).get("deployment.kubernetes.io/revision")
        annotations = dict(meta.get("annotations") or {})
        if revision:
            annotations["deployment.kubernetes.io/revision"] = revision
        if status == deployment.get("status") and annotations == (meta.get("annotations") or {}):
            return
        self.apps.patch_namespaced_deployment_status(
            meta["name"],
            meta["namespace"],
            {
                "metadata": {"annotations": annotations},
                "status": merge_diff(deployment.get("status") or {}, status),
            },
            _content_type="application/merge-patch+json",
            _preload_content=False,
        )

    def _deployment_conditions(self, deployment: Obj, new_rs: Obj | None, counts: dict[str, int]) -> list[Obj]:
        meta, spec = deployment["metadata"], deployment["spec"]
        desired = spec.get("replicas", 1)
        rolling = spec.get("strategy", {}).get("rollingUpdate") or {}
        max_unavailable = resolve_percent(rolling.get("maxUnavailable", "25%"), desired, round_up=False)
        old = {c["type"]: c for c in deployment.get("status", {}).get("conditions") or []}
        rs_name = (new_rs or {}).get("metadata", {}).get("name", "")
        memory = self._rollouts.setdefault(meta["uid"], RolloutMemory())
        key = (rs_name, counts["updatedReplicas"], counts["readyReplicas"], counts["replicas"], desired)
        if key != memory.progress_key:
            memory.progress_key, memory.progressed_at, memory.progressed_iso = (
                key,
                time.monotonic(),
                now_iso(),
            )
        complete = counts["updatedReplicas"] == desired == counts["replicas"] == counts["availableReplicas"]
        deadline = spec.get("progressDeadlineSeconds", 600)
        if not complete:
            self._wake_at(memory.progressed_at + deadline + 0.05)
        if spec.get("paused"):
            progressing = ("Unknown", "DeploymentPaused", "Deployment is paused")
        elif complete:
            progressing = (
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
            )
        elif time.monotonic() - memory.progressed_at > deadline:
            progressing = (
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.',
            )
        elif counts["replicas"] == 0 and "Progressing" not in old:
            progressing = ("True", "NewReplicaSetCreated", f'Created new replica set "{rs_name}"')
        else:
            progressing = ("True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
        if counts["availableReplicas"] >= desired - max_unavailable:
            available = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        else:
            available = (
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        return [
            _workload_condition(old.get("Available"), "Available", available, None),
            _workload_condition(old.get("Progressing"), "Progressing", progressing, memory.progressed_iso),
        ]

    # --- replicasets ----------------------------------------------------------------------------------

    def _sync_replicaset(self, replicaset: Obj, pods: list[Obj]) -> None:
        meta, spec = replicaset["metadata"], replicaset["spec"]
        mine = [p for p in pods if owner_uid(p) == meta["uid"]]
        desired = spec.get("replicas", 1)
        for _ in range(desired - len(mine)):
            template = spec["template"]
            body = {
                "metadata": {
                    "generateName": f"{meta['name']}-",
                    "namespace": meta["namespace"],
                    "labels": dict(template["metadata"].get("labels") or {}),
                    "annotations": dict(template["metadata"].get("annotations") or {}),
                    "ownerReferences": [_owner_ref(replicaset, "apps/v1", "ReplicaSet")],
                },
                "spec": copy.deepcopy(template["spec"]),
            }
            created = json.loads(self.core.create_namespaced_pod(meta["namespace"], body, _preload_content=False).data)
            mine.append(created)
            self._event(
                replicaset,
                "SuccessfulCreate",
                f"Created pod: {created['metadata']['name']}",
                kind="ReplicaSet",
                component="replicaset-controller",
            )
        if len(mine) > desired:
            doomed = sorted(mine, key=lambda p: (is_ready(p), p["metadata"]["creationTimestamp"]))[
                : len(mine) - desired
            ]
            for pod in doomed:
                self.core.delete_namespaced_pod(pod["metadata"]["name"], meta["namespace"], _preload_content=False)
                mine.remove(pod)
                self._event(
                    replicaset,
                    "SuccessfulDelete",
                    f"Deleted pod: {pod['metadata']['name']}",
                    kind="ReplicaSet",
                    component="replicaset-controller",
                )
        ready = sum(1 for p in mine if is_ready(p))
        counts = {"fullyLabeledReplicas": len(mine), "readyReplicas": ready, "availableReplicas": ready}
        status = {
            "replicas": len(mine),
            **{k: v for k, v in counts.items() if v},
            "observedGeneration": meta.get("generation", 1),
        }
        if status != replicaset.get("status"):
            self.apps.patch_namespaced_replica_set_status(
                meta["name"],
                meta["namespace"],
                {"status": merge_diff(replicaset.get("status") or {}, status)},
                _content_type="application/merge-patch+json",
                _preload_content=False,
            )

    # --- HPA ------------------------------------------------------------------------------------------

    def _sync_hpa(self, hpa: Obj, deployments: list[Obj]) -> None:
        """No metrics server here: keep replicas within min/max and report that metrics are missing."""
        meta, spec = hpa["metadata"], hpa["spec"]
        ref = spec.get("scaleTargetRef") or {}
        target = next(
            (
                d
                for d in deployments
                if d["metadata"]["namespace"] == meta["namespace"]
                and d["metadata"]["name"] == ref.get("name")
                and ref.get("kind") == "Deployment"
            ),
            None,
        )
        old = {c["type"]: c for c in hpa.get("status", {}).get("conditions") or []}
        if target is None:
            conditions = [
                _hpa_condition(
                    old,
                    "AbleToScale",
                    "False",
                    "FailedGetScale",
                    f'deployments/scale.apps "{ref.get("name")}" not found',
                )
            ]
            status: Obj = {"currentReplicas": 0, "desiredReplicas": 0, "conditions": conditions}
        else:
            current = target["spec"].get("replicas", 1)
            desired = min(max(current, spec.get("minReplicas", 1)), spec["maxReplicas"])
            if desired != current:
                self.apps.patch_namespaced_deployment_scale(
                    ref["name"],
                    meta["namespace"],
                    {"spec": {"replicas": desired}},
                    _content_type="application/merge-patch+json",
                    _preload_content=False,
                )
                why = "below Spec.MinReplicas" if desired > current else "above Spec.MaxReplicas"
                self._event(
                    hpa,
                    "SuccessfulRescale",
                    f"New size: {desired}; reason: Current number of replicas {why}",
                    kind="HorizontalPodAutoscaler",
                    component="horizontal-pod-autoscaler",
                )
            conditions = [
                _hpa_condition(
                    old,
                    "AbleToScale",
                    "True",
                    "SucceededGetScale",
                    "the HPA controller was able to get the target's current scale",
                ),
                _hpa_condition(
                    old,
                    "ScalingActive",
                    "False",
                    "FailedGetResourceMetric",
                    "the HPA was unable to compute the replica count: failed to get cpu utilization: "
                    "unable to get metrics for resource cpu: no metrics returned from resource "
                    "metrics API",
                ),
            ]
            status = {
                "currentReplicas": target.get("status", {}).get("replicas", 0),
                "desiredReplicas": desired,
                "conditions": conditions,
            }
            last_scale = now_iso() if desired != current else (hpa.get("status") or {}).get("lastScaleTime")
            if last_scale:
                status["lastScaleTime"] = last_scale
        status["observedGeneration"] = meta.get("generation", 1)
        if status != hpa.get("status"):
            self.autoscaling.patch_namespaced_horizontal_pod_autoscaler_status(
                meta["name"],
                meta["namespace"],
                {"status": merge_diff(hpa.get("status") or {}, status)},
                _content_type="application/merge-patch+json",
                _preload_content=False,
            )

    # --- kubelet & scheduler --------------------------------------------------------------------------

    def classify(self, image: str) -> str | None:
        """The failure an image reference gets, or None when it pulls and runs."""
        for fragment, reason in list(self.fail_images.items()):  # tests edit the rules concurrently
            if fragment in image:
                return reason
        if self.allowed_registries is not None and image_registry(image) not in self.allowed_registries:
            return "ImagePullBackOff"
        return None

    def unschedulable_reason(self, pod_spec: Obj) -> str | None:
        """The scheduler's message when the single node cannot take the pod."""
        labels = {
            "kubernetes.io/hostname": self.node_name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            **self.node_labels,
        }
        if any(labels.get(k) != v for k, v in (pod_spec.get("nodeSelector") or {}).items()):
            return "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
        needed: dict[str, Any] = {}
        for container in pod_spec.get("containers") or []:
            for name, amount in ((container.get("resources") or {}).get("requests") or {}).items():
                needed[name] = needed.get(name, 0) + parse_quantity(amount)
        short = sorted(
            name for name, amount in needed.items() if amount > parse_quantity(self.node_capacity.get(name, "0"))
        )
        if not short:
            return None
        return (
            "0/1 nodes are available: "
            + ", ".join(f"1 Insufficient {name}" for name in short)
            + ". preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
        )

    def _kubelet(self, pod: Obj) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        if meta.get("deletionTimestamp"):
            return
        memory = self._pods.get(meta["uid"])
        if memory is None:
            ip = f"10.244.0.{next(self._ips) % 250 + 2}"
            memory = self._pods[meta["uid"]] = PodMemory(seen=time.monotonic(), ip=ip)
        if not spec.get("nodeName"):
            reason = self.unschedulable_reason(spec)
            if reason:
                self._write_unschedulable(pod, reason)
                return
            self.core.create_namespaced_pod_binding(
                meta["name"],
                meta["namespace"],
                {"metadata": {"name": meta["name"]}, "target": {"kind": "Node", "name": self.node_name}},
                _preload_content=False,
            )
            self._event(
                pod,
                "Scheduled",
                f"Successfully assigned {meta['namespace']}/{meta['name']} to {self.node_name}",
                kind="Pod",
                component="default-scheduler",
            )
            memory.seen = time.monotonic()
            self._wake_at(memory.seen + self.ready_delay / 2)
            return
        elapsed = time.monotonic() - memory.seen
        statuses = [self._container(pod, memory, c, elapsed) for c in spec.get("containers") or []]
        self._write_pod_status(pod, memory, statuses)

    def _write_unschedulable(self, pod: Obj, reason: str) -> None:
        scheduled = condition("PodScheduled", "False", "Unschedulable", reason)
        current = pod.get("status") or {}
        if [c.get("message") for c in current.get("conditions") or []] != [reason]:
            status = {
                "phase": "Pending",
                "conditions": [scheduled],
                "qosClass": current.get("qosClass", "BestEffort"),
            }
            self.core.patch_namespaced_pod_status(
                pod["metadata"]["name"],
                pod["metadata"]["namespace"],
                {"status": merge_diff(pod.get("status") or {}, status)},
                field_manager="kube-scheduler",
                _content_type="application/merge-patch+json",
                _preload_content=False,
            )
        self._event(pod, "FailedScheduling", reason, kind="Pod", component="default-scheduler", warning=True)

    def _container(self, pod: Obj, memory: PodMemory, container: Obj, elapsed: float) -> Obj:
        """One containerStatus, advanced along the timeline image pull -> start (-> crash loop)."""
        name, image = container["name"], container["image"]
        field_path = f"spec.containers{{{name}}}"
        outcome = self.classify(image)
        reference = image_reference(image)
        status: Obj = {
            "name": name,
            "image": image,
            "imageID": "",
            "ready": False,
            "restartCount": 0,
            "started": False,
            "state": {"waiting": {"reason": "ContainerCreating"}},
            "lastState": {},
        }

        def event(reason: str, message: str, warning: bool = False, repeat: bool = False) -> None:
            self._event(
                pod,
                reason,
                message,
                kind="Pod",
                component="kubelet",
                warning=warning,
                field_path=field_path,
                repeat=repeat,
            )

        event("Pulling", f'Pulling image "{image}"')
        if elapsed < self.ready_delay / 2:
            self._wake_at(memory.seen + self.ready_delay / 2)
            return status
        if outcome in PULL_FAILURES:
            self._wake_at(memory.seen + self.ready_delay)
            return self._pull_failure(status, image, reference, elapsed, event)
        if outcome and outcome not in ("CrashLoopBackOff", MODEL_LOAD_FAILURE):
            event("Failed", f"Error: {outcome}", warning=True)
            status["state"] = {"waiting": {"reason": outcome, "message": f"container {name} cannot start"}}
            return status
        if elapsed < self.ready_delay:
            self._wake_at(memory.seen + self.ready_delay)
            return status
        digest = hashlib.sha256(reference.encode()).hexdigest()
        repository = reference.split("@")[0] if "@" in reference else reference.rsplit(":", 1)[0]
        status["imageID"] = f"{repository}@sha256:{digest}"
        event(
            "Pulled",
            f'Successfully pulled image "{image}" in {self.ready_delay / 2:.3f}s '
            f"({self.ready_delay / 2:.3f}s including waiting). Image size: 52428800 bytes.",
        )
        event("Created", f"Created container: {name}")
        event("Started", f"Started container {name}")
        container_id = "containerd://" + hashlib.sha256(f"{pod['metadata']['uid']}/{name}".encode()).hexdigest()
        status["containerID"] = container_id
        if outcome == "CrashLoopBackOff":
            first_exit = memory.seen + self.ready_delay
            return self._crash_loop(pod, memory, status, first_exit, event, exit_code=1, text=TRACEBACK)
        if outcome == MODEL_LOAD_FAILURE:
            return self._load_failure(pod, memory, status, elapsed, event)
        status.update(ready=True, started=True, state={"running": {"startedAt": memory.started_at}})
        return status

    def _pull_failure(self, status: Obj, image: str, reference: str, elapsed: float, event: Callable[..., None]) -> Obj:
        detail = (
            f'rpc error: code = NotFound desc = failed to pull and unpack image "{reference}": failed to '
            f'resolve reference "{reference}": {reference}: not found'
        )
        event("Failed", f'Failed to pull image "{image}": {detail}', warning=True)
        event("Failed", "Error: ErrImagePull", warning=True)
        if elapsed < self.ready_delay:
            status["state"] = {"waiting": {"reason": "ErrImagePull", "message": detail}}
            return status
        event("BackOff", f'Back-off pulling image "{image}"')
        event("Failed", "Error: ImagePullBackOff", warning=True)
        status["state"] = {
            "waiting": {
                "reason": "ImagePullBackOff",
                "message": f'Back-off pulling image "{image}": ErrImagePull: {detail}',
            }
        }
        return status

    def _load_failure(
        self, pod: Obj, memory: PodMemory, status: Obj, elapsed: float, event: Callable[..., None]
    ) -> Obj:
        """Running but never ready while the runtime reports the failure; then it exits 3 and crash-loops."""
        meta, name = pod["metadata"], status["name"]
        if elapsed < self.ready_delay + self.load_failure_grace:
            self._wake_at(memory.seen + self.ready_delay + self.load_failure_grace)
            event("Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503", warning=True)
            if self.log_sink and f"{name}:running" not in memory.logged:
                text = runtime_load_failure_log(self.load_error, exited=False)
                self.log_sink(meta["namespace"], meta["name"], text, container=name, previous=False)
                memory.logged.add(f"{name}:running")
            status.update(started=True, state={"running": {"startedAt": memory.started_at}})
            return status
        text = runtime_load_failure_log(self.load_error, exited=True)
        first_exit = memory.seen + self.ready_delay + self.load_failure_grace
        return self._crash_loop(pod, memory, status, first_exit, event, exit_code=EXIT_LOAD_FAILED, text=text)

    def _crash_loop(
        self,
        pod: Obj,
        memory: PodMemory,
        status: Obj,
        first_exit: float,
        event: Callable[..., None],
        *,
        exit_code: int,
        text: str,
    ) -> Obj:
        """Exited with exit_code at first_exit (monotonic), restarted every crash_interval since; text is its log."""
        meta, name = pod["metadata"], status["name"]
        restarts = 1 + int((time.monotonic() - first_exit) / self.crash_interval)
        pod_id = f"{meta['name']}_{meta['namespace']}({meta['uid']})"
        self._wake_at(first_exit + restarts * self.crash_interval)
        backoff = min(10 * 2 ** (restarts - 1), 300)
        status.update(
            restartCount=restarts,
            started=False,
            state={
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {backoff}s restarting failed container={name} pod={pod_id}",
                }
            },
            lastState={
                "terminated": {
                    "exitCode": exit_code,
                    "reason": "Error",
                    "startedAt": memory.started_at,
                    "finishedAt": memory.started_at,
                    "containerID": status["containerID"],
                }
            },
        )
        event(
            "BackOff",
            f"Back-off restarting failed container {name} in pod {pod_id}",
            warning=True,
            repeat=restarts != memory.restarts.get(name, restarts),
        )
        memory.restarts[name] = restarts
        if self.log_sink and name not in memory.logged:
            for previous in (False, True):
                self.log_sink(meta["namespace"], meta["name"], text, container=name, previous=previous)
            memory.logged.add(name)
        return status

    def _write_pod_status(self, pod: Obj, memory: PodMemory, statuses: list[Obj]) -> None:
        old = pod.get("status") or {}
        since = {c["type"]: c for c in old.get("conditions") or []}
        all_ready = all(s["ready"] for s in statuses)
        started = any(s.get("containerID") for s in statuses)
        not_ready = [s["name"] for s in statuses if not s["ready"]]
        ready_reason = (
            (None, None)
            if all_ready
            else ("ContainersNotReady", f"containers with unready status: [{' '.join(not_ready)}]")
        )

        def keep(kind: str, value: str, reason: str | None = None, message: str | None = None) -> Obj:
            previous = since.get(kind)
            stable = previous and previous["status"] == value and previous.get("reason") == reason
            return condition(kind, value, reason, message, previous["lastTransitionTime"] if stable else None)

        status = {
            "phase": "Running" if started else "Pending",
            "conditions": [
                keep("PodReadyToStartContainers", "True"),
                keep("Initialized", "True"),
                keep("Ready", "True" if all_ready else "False", *ready_reason),
                keep("ContainersReady", "True" if all_ready else "False", *ready_reason),
                keep("PodScheduled", "True"),
            ],
            "hostIP": "192.168.49.2",
            "hostIPs": [{"ip": "192.168.49.2"}],
            "podIP": memory.ip,
            "podIPs": [{"ip": memory.ip}],
            "startTime": memory.started_at,
            "containerStatuses": statuses,
            "qosClass": old.get("qosClass", "BestEffort"),
        }
        if status == old:
            return
        self.core.patch_namespaced_pod_status(
            pod["metadata"]["name"],
            pod["metadata"]["namespace"],
            {"status": merge_diff(pod.get("status") or {}, status)},
            field_manager="kubelet",
            _content_type="application/merge-patch+json",
            _preload_content=False,
        )


def merge_diff(old: Any, new: Any) -> Any:
    """The JSON merge patch turning old into new (absent keys become nulls, so they are removed)."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return new
    patch = {key: None for key in old if key not in new}
    patch.update({key: merge_diff(old.get(key), value) for key, value in new.items() if old.get(key) != value})
    return patch


def _owner_ref(owner: Obj, api_version: str, kind: str) -> Obj:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _workload_condition(previous: Obj | None, kind: str, value: tuple[str, str, str], updated: str | None) -> Obj:
    status, reason, message = value
    stable = previous and previous["status"] == status
    transition = previous["lastTransitionTime"] if stable else now_iso()
    unchanged = stable and previous.get("reason") == reason and previous.get("message") == message
    last_update = updated or (previous["lastUpdateTime"] if unchanged else now_iso())
    return {
        "type": kind,
        "status": status,
        "lastUpdateTime": last_update,
        "lastTransitionTime": transition,
        "reason": reason,
        "message": message,
    }


def _hpa_condition(old: dict[str, Obj], kind: str, status: str, reason: str, message: str) -> Obj:
    previous = old.get(kind)
    since = previous["lastTransitionTime"] if previous and previous["status"] == status else now_iso()
    return {"type": kind, "status": status, "lastTransitionTime": since, "reason": reason, "message": message}
