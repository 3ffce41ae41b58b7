"""Rolling a model image out to a Kubernetes namespace: Service, Deployment and (optionally) an HPA."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from typing import Any

from .base import (
    DeploySpec,
    Identity,
    LiveState,
    LogFn,
    ProgressFn,
    StopFn,
    TargetError,
    TransientTargetError,
    validate_identity,
    validate_spec,
)
from .kube_api import KubeApi
from .kube_rollout import RolloutWatch
from .manifests import (
    CONTAINER_NAME,
    FIELD_MANAGER,
    SERVICE_PORT,
    deployment_manifest,
    render_manifests,
    schema_version,
    validate_manifest,
)

__all__ = ["KubernetesTarget"]

_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# What check() asks the cluster about: (permission key, API group, resource, verbs).
PERMISSIONS = (
    ("deployments", "apps", "deployments", ("get", "create", "patch", "delete")),
    ("services", "", "services", ("get", "create", "patch", "delete")),
    ("horizontalpodautoscalers", "autoscaling", "horizontalpodautoscalers", ("get", "create", "patch", "delete")),
    # Reading pods, their logs and events is how a failed rollout is explained.
    ("pods", "", "pods", ("list",)),
    ("pods/log", "", "pods/log", ("get",)),
    ("events", "", "events", ("list",)),
)


# The server's version, per kubeconfig, for VERSION_TTL seconds. Every rollout validates its manifests
# against it, and asking each time cost every rollout a request before its first apply; a cluster's
# upgrade is noticed within the TTL (the connection test always asks).
VERSION_TTL = 600.0
_versions: dict[str, tuple[float, str]] = {}
_versions_lock = threading.Lock()


class KubernetesTarget:
    """A namespace of a cluster, reached through a kubeconfig (YAML text)."""

    def __init__(
        self,
        kubeconfig: str,
        namespace: str,
        *,
        kubernetes_version: str | None = None,
        request_timeout: float = 10,
        retries: int = 3,
        backoff: float = 0.5,
        poll_seconds: float = 0.5,
        watch_seconds: int = 60,
        unschedulable_grace: float = 60.0,
        image_pull_grace: float = 30.0,
        stall_grace: float = 60.0,
    ) -> None:
        if not _NAMESPACE.match(namespace or ""):
            raise TargetError(f"namespace: {namespace!r} is not a valid Kubernetes namespace name")
        self.namespace = namespace
        self.poll_seconds, self.watch_seconds = poll_seconds, watch_seconds
        self.unschedulable_grace, self.image_pull_grace, self.stall_grace = (
            unschedulable_grace,
            image_pull_grace,
            stall_grace,
        )
        self._version = kubernetes_version
        self._version_key = hashlib.sha256(kubeconfig.encode()).hexdigest()
        self.api = KubeApi(kubeconfig, namespace, request_timeout=request_timeout, retries=retries, backoff=backoff)

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> KubernetesTarget:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- the Target protocol ----------------------------------------------------------------------

    def check(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "ok": False,
            "server_version": "",
            "namespace_exists": False,
            "permissions": {},
            "message": "",
        }
        try:
            result["server_version"] = self.api.version().get("gitVersion", "")
            result["namespace_exists"] = self.api.namespace_exists()
            missing: list[str] = []
            for key, group, resource, verbs in PERMISSIONS:
                denied = [verb for verb in verbs if not self._allowed(verb, group, resource)]
                result["permissions"][key] = not denied
                missing += [f"{verb} {key}" for verb in denied]
        except (TargetError, TransientTargetError) as error:
            result["message"] = str(error)
            return result
        result["ok"] = result["namespace_exists"] is not False and not missing
        result["message"] = self._check_message(result, missing)
        return result

    def render(self, spec: DeploySpec) -> list[dict[str, Any]]:
        validate_spec(spec)
        version = self.kubernetes_version()
        manifests = render_manifests(spec, self.namespace)
        for manifest in manifests:
            validate_manifest(manifest, version)
        return manifests

    def deploy(
        self,
        spec: DeploySpec,
        *,
        log: LogFn,
        on_progress: ProgressFn,
        should_stop: StopFn,
        manifests: list[dict[str, Any]] | None = None,
    ) -> str:
        """`manifests`: what render(spec) returned, when the caller has them already (rendered once)."""
        if manifests is None:
            manifests = self.render(spec)
        log(
            f"Rolling out {spec.image} as {spec.name} to namespace {self.namespace} at {self.api.server} "
            f"(Kubernetes {self.kubernetes_version()})"
        )
        watch = RolloutWatch(
            self.api,
            spec,
            log=log,
            on_progress=on_progress,
            should_stop=should_stop,
            poll_seconds=self.poll_seconds,
            watch_seconds=self.watch_seconds,
            unschedulable_grace=self.unschedulable_grace,
            image_pull_grace=self.image_pull_grace,
            stall_grace=self.stall_grace,
        )
        applied = self._apply_all(spec, manifests, log)
        watch.since_applied(applied)
        watch.run()
        endpoint = self.endpoint(spec.name)
        log(f"Serving at {endpoint}")
        return endpoint

    def live_state(self, identity: Identity) -> LiveState:
        validate_identity(identity)
        found = self.api.labelled("Deployment", identity.selector_text())
        if not found:
            return LiveState(exists=False, detail=f"No Deployment of {identity.team}/{identity.model} exists.")
        deployment = next((d for d in found if d["metadata"]["name"] == identity.name), found[0])
        name = deployment["metadata"]["name"]
        containers = deployment["spec"]["template"]["spec"].get("containers") or [{}]
        model = next((c for c in containers if c.get("name") == CONTAINER_NAME), containers[0])
        wanted = int(deployment["spec"].get("replicas", 1))
        available = int((deployment.get("status") or {}).get("availableReplicas") or 0)
        if wanted == 0:
            return LiveState(exists=False, detail=f"Deployment {name} is scaled to 0 replicas.")
        return LiveState(
            exists=True,
            image=model.get("image", ""),
            replicas=wanted,
            ready=available,
            endpoint=self.endpoint(name),
            detail="" if available >= wanted else f"Deployment {name}: {available} of {wanted} replicas available.",
        )

    def remove(self, identity: Identity) -> None:
        """Everything of this identity, found by its labels."""
        validate_identity(identity)
        for kind in ("HorizontalPodAutoscaler", "Deployment", "Service"):
            for obj in self.api.labelled(kind, identity.selector_text()):
                self.api.delete(kind, obj["metadata"]["name"])

    # --- helpers ----------------------------------------------------------------------------------

    def endpoint(self, name: str) -> str:
        """The Service's address inside the cluster (the short form works whatever the cluster domain)."""
        return f"http://{name}.{self.namespace}.svc:{SERVICE_PORT}"

    def kubernetes_version(self) -> str:
        """The server's version, e.g. "1.30"; manifests are validated against its schemas."""
        if self._version is None:
            with _versions_lock:
                asked_at, version = _versions.get(self._version_key, (float("-inf"), ""))
            if time.monotonic() - asked_at > VERSION_TTL:
                git_version = self.api.version().get("gitVersion", "")
                match = re.match(r"^v?(\d+\.\d+)", git_version)
                if not match:
                    raise TargetError(f"The cluster reports an unknown version {git_version!r}.")
                version = match[1]
                with _versions_lock:
                    _versions[self._version_key] = (time.monotonic(), version)
            self._version = version
        return self._version

    def _allowed(self, verb: str, group: str, resource: str) -> bool:
        base, _, sub = resource.partition("/")
        return self.api.allowed(verb, group, base, sub)

    def _check_message(self, result: dict[str, Any], missing: list[str]) -> str:
        where = f"namespace {self.namespace} at {self.api.server}"
        parts = [f"Kubernetes {result['server_version']}"]
        if result["namespace_exists"] is False:
            parts.append(f"the namespace {self.namespace} does not exist")
        elif result["namespace_exists"] is None:
            parts.append(f"cannot tell whether {self.namespace} exists (reading Namespaces is not allowed)")
        if missing:
            parts.append("missing permissions: " + ", ".join(missing))
        elif result["ok"]:
            parts.append(f"Slipway may manage deployments, services and autoscalers in {where}")
        version = self._version or result["server_version"].lstrip("v")
        if version and re.match(r"^\d+\.\d+", version) and schema_version(version) != ".".join(version.split(".")[:2]):
            parts.append(f"manifests are validated against the Kubernetes {schema_version(version)} schemas")
        return "; ".join(parts) + "."

    def _apply_all(self, spec: DeploySpec, manifests: list[dict[str, Any]], log: LogFn) -> dict[str, Any]:
        """Apply Service, Deployment and HPA (or delete the HPA); the Deployment as the server stored it."""
        by_kind = {manifest["kind"]: manifest for manifest in manifests}
        self._apply(by_kind["Service"], log)
        if spec.autoscaling is None:
            # Before the Deployment takes replicas back, so the HPA cannot scale it once more meanwhile.
            if self.api.delete("HorizontalPodAutoscaler", spec.name, log=log):
                log(f"Deleted HorizontalPodAutoscaler {spec.name}: autoscaling is off")
            return self._apply(by_kind["Deployment"], log)
        deployment = self._apply(self._autoscaled_deployment(spec, log), log)
        self._apply(by_kind["HorizontalPodAutoscaler"], log)
        return deployment

    def _autoscaled_deployment(self, spec: DeploySpec, log: LogFn) -> dict[str, Any]:
        """The Deployment to apply under an HPA: with the replicas the cluster runs now, kept within its bounds.

        Whoever owns spec.replicas, the applied Deployment states it, so the count neither drops to the
        API server's default of 1 nor depends on how a server shares fields between managers (an API
        server that takes each apply as the whole object behaves the same). The HPA scales through the
        scale subresource, as it always does; a change it makes between this read and the apply is
        undone until its next sync (seconds), never lost.
        """
        scaling = spec.autoscaling
        assert scaling is not None
        live = self.api.get("Deployment", spec.name, log=log)
        current = int(live["spec"].get("replicas", 1)) if live is not None else scaling.min_replicas
        replicas = min(max(current, scaling.min_replicas), scaling.max_replicas)
        if live is not None and replicas != current:
            bounds = f"{scaling.min_replicas}-{scaling.max_replicas}"
            log(f"Replicas {current} are outside the autoscaler's {bounds}: {replicas}")
        deployment = deployment_manifest(spec, self.namespace, replicas=replicas)
        validate_manifest(deployment, self.kubernetes_version())
        return deployment

    def _apply(self, manifest: dict[str, Any], log: LogFn) -> dict[str, Any]:
        applied = self.api.apply(manifest, manager=FIELD_MANAGER, log=log)
        meta = applied.get("metadata") or {}
        generation = f" (generation {meta['generation']})" if "generation" in meta else ""
        log(f"Applied {manifest['kind']} {manifest['metadata']['name']}{generation}")
        return applied
