"""The Kubernetes objects of one model deployment, and their offline validation against the official schemas."""

from __future__ import annotations

import functools
import re
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError, all_versions

from .base import DeploySpec, TargetError, common_labels, int_or_percent, selector_labels

__all__ = [
    "CONTAINER_NAME",
    "FIELD_MANAGER",
    "deployment_manifest",
    "hpa_manifest",
    "render_manifests",
    "schema_version",
    "service_manifest",
    "validate_manifest",
]

# kubernetes_validate reads and parses its schema files, a definitions file of megabytes among them, on
# every call (about 50 ms for one rollout's manifests, all of it holding the interpreter lock, which 20
# rollouts at once in one worker wait on in turn). A schema file never changes: parse each once.
kubernetes_validate.utils.schema_contents = functools.cache(kubernetes_validate.utils.schema_contents)

CONTAINER_NAME = "model"
PORT_NAME = "http"
SERVICE_PORT = 80
RUN_AS = 10001
FIELD_MANAGER = "slipway"
TMP_VOLUME = "tmp"
GPU_RESOURCE = "nvidia.com/gpu"


def render_manifests(spec: DeploySpec, namespace: str) -> list[dict[str, Any]]:
    """Service, Deployment and (with autoscaling) HPA, in the order they are applied."""
    objects = [service_manifest(spec, namespace), deployment_manifest(spec, namespace)]
    if spec.autoscaling is not None:
        objects.append(hpa_manifest(spec, namespace))
    return objects


def _metadata(spec: DeploySpec, namespace: str) -> dict[str, Any]:
    return {
        "name": spec.name,
        "namespace": namespace,
        "labels": common_labels(spec),
        "annotations": {"slipway.io/deployment-id": str(spec.deployment_id)},
    }


def deployment_manifest(spec: DeploySpec, namespace: str, *, replicas: int | None = None) -> dict[str, Any]:
    """With autoscaling, `replicas` is left out unless given: the target applies the count the cluster runs."""
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector_labels(spec.name, spec.model)},
        "progressDeadlineSeconds": spec.progress_deadline_seconds,
        "revisionHistoryLimit": 5,
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {
                "maxSurge": int_or_percent(spec.max_surge),
                "maxUnavailable": int_or_percent(spec.max_unavailable),
            },
        },
        "template": {
            "metadata": {
                "labels": common_labels(spec),
                "annotations": {"slipway.io/deployment-id": str(spec.deployment_id)},
            },
            "spec": _pod_spec(spec),
        },
    }
    if spec.autoscaling is None:
        deployment_spec = {"replicas": spec.replicas, **deployment_spec}
    elif replicas is not None:
        deployment_spec = {"replicas": replicas, **deployment_spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(spec, namespace),
        "spec": deployment_spec,
    }


def _pod_spec(spec: DeploySpec) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(spec)],
        "volumes": [{"name": TMP_VOLUME, "emptyDir": {"sizeLimit": "1Gi"}}],
    }
    if spec.resources.gpus:
        pod["tolerations"] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
    return pod


def _container(spec: DeploySpec) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": PORT_NAME, "containerPort": spec.port, "protocol": "TCP"}],
        "env": [{"name": "PORT", "value": str(spec.port)}]
        + [{"name": key, "value": value} for key, value in sorted(spec.env.items()) if key != "PORT"],
        "resources": _resources(spec),
        "livenessProbe": _probe("/v2/health/live", period=10, failures=3),
        "readinessProbe": _probe("/v2/health/ready", period=5, failures=2),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": spec.read_only_root_filesystem,
            "runAsNonRoot": True,
        },
        "volumeMounts": [{"name": TMP_VOLUME, "mountPath": "/tmp"}],  # noqa: S108 - an emptyDir, not the host's
    }
    if spec.secret_refs:
        container["envFrom"] = [{"secretRef": {"name": name}} for name in spec.secret_refs]
    return container


def _probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": PORT_NAME, "scheme": "HTTP"},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
        "successThreshold": 1,
    }


def _resources(spec: DeploySpec) -> dict[str, Any]:
    resources = spec.resources
    requests = {key: value for key, value in (("cpu", resources.cpu_request), ("memory", resources.memory_request))}
    limits = {key: value for key, value in (("cpu", resources.cpu_limit), ("memory", resources.memory_limit))}
    if resources.gpus:
        limits[GPU_RESOURCE] = str(resources.gpus)  # extended resources are requested through limits
    return {
        "requests": {key: value for key, value in requests.items() if value},
        "limits": {key: value for key, value in limits.items() if value},
    }


def service_manifest(spec: DeploySpec, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec, namespace),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(spec.name, spec.model),
            "ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }


def hpa_manifest(spec: DeploySpec, namespace: str) -> dict[str, Any]:
    scaling = spec.autoscaling
    assert scaling is not None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(spec, namespace),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": scaling.target_cpu_percent},
                    },
                }
            ],
        },
    }


# --- offline validation -----------------------------------------------------------------------------


@functools.cache
def supported_minors() -> tuple[int, ...]:
    return tuple(sorted({int(version.split(".")[1]) for version in all_versions()}))


def schema_version(kubernetes_version: str) -> str:
    """The schema set to validate against: the cluster's minor version, clamped to what is shipped.

    (kubernetes-validate compares versions as strings, so "1.9" would sort after "1.37": map first.)
    """
    match = re.match(r"^v?(\d+)\.(\d+)", kubernetes_version.strip())
    if not match or match[1] != "1":
        raise TargetError(f"Kubernetes version {kubernetes_version!r} is not understood (expected 1.<minor>).")
    minors = supported_minors()
    minor = min(max(int(match[2]), minors[0]), minors[-1])
    return f"1.{minor}"


def validate_manifest(obj: dict[str, Any], kubernetes_version: str) -> None:
    """TargetError naming the field when the object does not match the official schema of that version."""
    version = schema_version(kubernetes_version)
    where = f"{obj.get('kind')} {obj.get('metadata', {}).get('name', '')}".strip()
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except ValidationError as error:
        path = ".".join(str(part) for part in error.path) or "(top level)"
        raise TargetError(
            f"The {where} manifest is invalid for Kubernetes {version}: {path}: {error.message}"
        ) from None
    except SchemaNotFoundError as error:
        raise TargetError(f"The {where} manifest cannot be validated: {error.message}") from None
