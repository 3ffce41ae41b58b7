"""What the API server knows about its types: the served resources, defaulting, validation, Status errors.

Validation has two layers: the official OpenAPI schemas (via kubernetes-validate, when installed) for
types, required fields and unknown fields, and hand-written rules for what schemas cannot say (names,
label syntax, selector/template agreement, immutable fields). Messages follow the real server's wording.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from dataclasses import dataclass
from typing import Any

from kubernetes.utils import parse_quantity

from .selection import selector_matches

try:
    import jsonschema
    import referencing
    from kubernetes_validate import utils as kv_utils
except ImportError:  # pragma: no cover - schema validation is optional
    kv_utils = None


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    has_status: bool = True
    tracks_generation: bool = False
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """How error messages name the resource: "deployments.apps", "pods"."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


RESOURCES = [
    ResourceType("", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",)),
    ResourceType("", "v1", "nodes", "Node", namespaced=False, short_names=("no",)),
    ResourceType("", "v1", "pods", "Pod", short_names=("po",)),
    ResourceType("", "v1", "services", "Service", short_names=("svc",)),
    ResourceType("", "v1", "events", "Event", has_status=False, short_names=("ev",)),
    ResourceType("", "v1", "secrets", "Secret", has_status=False),
    ResourceType("", "v1", "configmaps", "ConfigMap", has_status=False, short_names=("cm",)),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", has_status=False, short_names=("sa",)),
    ResourceType("apps", "v1", "deployments", "Deployment", tracks_generation=True, short_names=("deploy",)),
    ResourceType("apps", "v1", "replicasets", "ReplicaSet", tracks_generation=True, short_names=("rs",)),
    ResourceType(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        tracks_generation=True,
        short_names=("hpa",),
    ),
    ResourceType("networking.k8s.io", "v1", "ingresses", "Ingress", tracks_generation=True, short_names=("ing",)),
    ResourceType(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        tracks_generation=True,
        short_names=("pdb",),
    ),
]
SCALABLE = {"deployments", "replicasets"}

STATUS_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class ApiError(Exception):
    """An error answer; `status()` is the v1 Status body a real server sends."""

    def __init__(self, code: int, message: str, reason: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.code, self.message = code, message
        self.reason = reason or STATUS_REASONS.get(code, "Unknown")
        self.details = {key: value for key, value in details.items() if value is not None}

    def status(self) -> dict[str, Any]:
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def not_found(rtype: ResourceType, name: str) -> ApiError:
    return ApiError(404, f'{rtype.qualified} "{name}" not found', name=name, group=rtype.group, kind=rtype.plural)


# --- defaulting -------------------------------------------------------------------------------------


def _default_container(container: dict[str, Any]) -> None:
    image = container.get("image", "")
    untagged = "@" not in image and ":" not in image.rsplit("/", 1)[-1]
    pull_policy = "Always" if untagged or image.endswith(":latest") else "IfNotPresent"
    container.setdefault("imagePullPolicy", pull_policy)
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    resources = container.setdefault("resources", {})
    if resources.get("limits"):  # requests default to limits (how GPU-only limits become requests)
        resources["requests"] = {**resources["limits"], **(resources.get("requests") or {})}
    for port in container.get("ports") or []:
        port.setdefault("protocol", "TCP")


def default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        _default_container(container)


def _default_workload(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    if obj["kind"] == "Deployment":
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            strategy.setdefault("type", "RollingUpdate")
            strategy.setdefault("rollingUpdate", {})
            strategy["rollingUpdate"].setdefault("maxSurge", "25%")
            strategy["rollingUpdate"].setdefault("maxUnavailable", "25%")
    else:
        spec.pop("revisionHistoryLimit")
    default_pod_spec(spec.setdefault("template", {}).setdefault("spec", {}))


def _default_service(obj: dict[str, Any], allocate_ip: Any) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] != "ExternalName":
        spec.setdefault("clusterIP", allocate_ip())
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
    obj.setdefault("status", {}).setdefault("loadBalancer", {})


def _default_secret(obj: dict[str, Any]) -> None:
    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None) or {}
    data = obj.setdefault("data", {})
    for key, value in string_data.items():
        data[key] = base64.b64encode(value.encode()).decode()
    if not data:
        obj.pop("data")


def _default_hpa(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("minReplicas", 1)
    if not spec.get("metrics"):
        spec["metrics"] = [
            {
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
            }
        ]


def apply_defaults(obj: dict[str, Any], allocate_ip: Any) -> None:
    """The defaulting a real API server applies before storing (a useful subset)."""
    kind = obj["kind"]
    if kind in ("Deployment", "ReplicaSet"):
        _default_workload(obj)
    elif kind == "Pod":
        spec = obj.setdefault("spec", {})
        default_pod_spec(spec)
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("priority", 0)
    elif kind == "Service":
        _default_service(obj, allocate_ip)
    elif kind == "Secret":
        _default_secret(obj)
    elif kind == "HorizontalPodAutoscaler":
        _default_hpa(obj)
    elif kind == "Namespace":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        labels = obj["metadata"].setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]


def initial_status(obj: dict[str, Any]) -> dict[str, Any]:
    """What PrepareForCreate leaves in .status: clients cannot create an object with a status."""
    kind = obj["kind"]
    if kind == "Pod":
        return {"phase": "Pending", "qosClass": qos_class(obj["spec"])}
    if kind == "Namespace":
        return {"phase": "Active"}
    if kind in ("Service", "Ingress"):
        return {"loadBalancer": {}}
    # Go fields without omitempty: a fresh object already shows them as zero.
    zeros = {
        "ReplicaSet": ("replicas",),
        "HorizontalPodAutoscaler": ("desiredReplicas",),
        "PodDisruptionBudget": ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods"),
    }
    return dict.fromkeys(zeros.get(kind, ()), 0)


def qos_class(pod_spec: dict[str, Any]) -> str:
    resources = [c.get("resources") or {} for c in pod_spec.get("containers") or []]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        (r.get("limits") or {}).get(name)
        and (r.get("requests") or {}).get(name, r["limits"][name]) == r["limits"][name]
        for r in resources
        for name in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"


# --- validation -------------------------------------------------------------------------------------

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


class Problems(list):
    """Collects (field, cause reason, message) triples in the real server's words."""

    def invalid(self, field: str, value: Any, why: str) -> None:
        shown = f'"{value}"' if isinstance(value, str) else repr(value)
        self.append((field, "FieldValueInvalid", f"{field}: Invalid value: {shown}: {why}"))

    def required(self, field: str) -> None:
        self.append((field, "FieldValueRequired", f"{field}: Required value"))


def _check_name(problems: Problems, name: str, kind: str) -> None:
    if kind in ("Namespace",) and not _DNS_LABEL.match(name):
        problems.invalid(
            "metadata.name",
            name,
            "a lowercase RFC 1123 label must consist of lower case "
            "alphanumeric characters or '-', and must start and end with an alphanumeric character",
        )
    elif kind == "Service" and not _DNS_1035.match(name):
        problems.invalid(
            "metadata.name",
            name,
            "a DNS-1035 label must consist of lower case alphanumeric "
            "characters or '-', start with an alphabetic character, and end with an alphanumeric "
            "character",
        )
    elif not _DNS_SUBDOMAIN.match(name) or len(name) > 253:
        problems.invalid(
            "metadata.name",
            name,
            "a lowercase RFC 1123 subdomain must consist of lower case "
            "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
            "character",
        )


def _check_labels(problems: Problems, labels: dict[str, Any], field: str) -> None:
    for key, value in labels.items():
        name = key.rsplit("/", 1)[-1]
        prefix = key[: -len(name) - 1] if "/" in key else ""
        if not _LABEL_NAME.match(name) or len(name) > 63 or (prefix and not _DNS_SUBDOMAIN.match(prefix)):
            problems.invalid(field, key, "name part must consist of alphanumeric characters, '-', '_' or '.'")
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            problems.invalid(
                field,
                value,
                "a valid label must be an empty string or consist of alphanumeric "
                "characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            )


def _check_pod_spec(problems: Problems, spec: dict[str, Any], field: str) -> None:
    containers = spec.get("containers") or []
    if not containers:
        problems.required(f"{field}.containers")
    seen: set[str] = set()
    for index, container in enumerate(containers + (spec.get("initContainers") or [])):
        path = f"{field}.containers[{index}]"
        name = container.get("name") or ""
        if name in seen:
            problems.append((f"{path}.name", "FieldValueDuplicate", f'{path}.name: Duplicate value: "{name}"'))
        elif not _DNS_LABEL.match(name):
            problems.invalid(
                f"{path}.name",
                name,
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'",
            )
        seen.add(name)
        if not container.get("image"):
            problems.required(f"{path}.image")
        _check_resources(problems, container.get("resources") or {}, f"{path}.resources")


def _check_resources(problems: Problems, resources: dict[str, Any], field: str) -> None:
    limits = resources.get("limits") or {}
    for name, request in (resources.get("requests") or {}).items():
        try:
            too_big = name in limits and parse_quantity(request) > parse_quantity(limits[name])
        except ValueError:
            problems.invalid(
                f"{field}.requests[{name}]",
                request,
                "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            )
            continue
        if too_big:
            problems.invalid(
                f"{field}.requests", request, f"must be less than or equal to {name} limit of {limits[name]}"
            )


def _check_workload(problems: Problems, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = obj.get("spec") or {}
    selector = spec.get("selector")
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        problems.required("spec.selector")
    elif not selector_matches(selector, labels):
        problems.invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`")
    if old is not None and selector != old.get("spec", {}).get("selector"):
        problems.invalid("spec.selector", selector, "field is immutable")
    if (spec.get("replicas") or 0) < 0:
        problems.invalid("spec.replicas", spec["replicas"], "must be greater than or equal to 0")
    restart = (template.get("spec") or {}).get("restartPolicy", "Always")
    if restart != "Always":
        problems.append(
            (
                "spec.template.spec.restartPolicy",
                "FieldValueNotSupported",
                f'spec.template.spec.restartPolicy: Unsupported value: "{restart}": supported values: "Always"',
            )
        )
    _check_labels(problems, labels, "spec.template.metadata.labels")
    _check_pod_spec(problems, template.get("spec") or {}, "spec.template.spec")


def _check_kind_rules(problems: Problems, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    kind, spec = obj["kind"], obj.get("spec") or {}
    if kind in ("Deployment", "ReplicaSet"):
        _check_workload(problems, obj, old)
    elif kind == "Pod":
        _check_pod_spec(problems, spec, "spec")
        if old is not None and _mutable_pod_spec(spec) != _mutable_pod_spec(old.get("spec") or {}):
            problems.append(
                (
                    "spec",
                    "FieldValueForbidden",
                    "spec: Forbidden: pod updates may not change fields "
                    "other than `spec.containers[*].image`,`spec.initContainers[*].image`,"
                    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
                    "tolerations),`spec.terminationGracePeriodSeconds`",
                )
            )
    elif kind == "Service":
        if spec.get("type") != "ExternalName" and not spec.get("ports") and spec.get("clusterIP") != "None":
            problems.required("spec.ports")
        if old is not None and spec.get("clusterIP") != (old.get("spec") or {}).get("clusterIP"):
            problems.invalid("spec.clusterIP", spec.get("clusterIP"), "field is immutable")
    elif kind == "HorizontalPodAutoscaler":
        if spec.get("maxReplicas", 0) < spec.get("minReplicas", 1):
            problems.invalid(
                "spec.maxReplicas", spec.get("maxReplicas"), "must be greater than or equal to `minReplicas`"
            )
    elif kind == "Secret":
        for key, value in (obj.get("data") or {}).items():
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, TypeError) as error:
                raise ApiError(
                    400,
                    f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data in data[{key}]',
                ) from error


def _mutable_pod_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A pod spec with the fields an update may change blanked out."""
    blanked = {
        k: v
        for k, v in spec.items()
        if k not in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")
    }
    for key in ("containers", "initContainers"):
        blanked[key] = [{**c, "image": ""} for c in spec.get(key) or []]
    return blanked


def validate(rtype: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    """Raise 422 Invalid (with causes) for what the real server's validation rejects."""
    problems = Problems()
    metadata = obj.get("metadata") or {}
    if not metadata.get("name"):
        problems.append(
            (
                "metadata.name",
                "FieldValueRequired",
                "metadata.name: Required value: name or generateName is required",
            )
        )
    else:
        _check_name(problems, metadata["name"], rtype.kind)
    _check_labels(problems, metadata.get("labels") or {}, "metadata.labels")
    _check_kind_rules(problems, obj, old)
    if problems:
        name = metadata.get("name", "")
        summary = ", ".join(message for _, _, message in problems)
        if len(problems) > 1:
            summary = f"[{summary}]"
        causes = [
            {"reason": reason, "message": message.split(": ", 1)[1], "field": field}
            for field, reason, message in problems
        ]
        raise ApiError(
            422,
            f'{rtype.kind}{"." + rtype.group if rtype.group else ""} "{name}" is invalid: {summary}',
            name=name,
            group=rtype.group,
            kind=rtype.kind,
            causes=causes,
        )


# --- OpenAPI schema checks --------------------------------------------------------------------------


def _schema_version(server_minor: int) -> str | None:
    if kv_utils is None:
        return None
    versions = kv_utils.all_versions()
    usable = [v for v in versions if int(v.split(".")[1]) <= server_minor] or versions[:1]
    return usable[-1]


@functools.lru_cache(maxsize=64)
def _validator(kind: str, api_version: str, schema_version: str, strict: bool) -> Any:
    schema_dir = f"v{schema_version}-local{'-strict' if strict else ''}"
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = kv_utils.schema_contents(
            f"kubernetes-json-schema/{schema_dir}/{kind.lower()}-{group_version}.json", schema_version
        )
    except FileNotFoundError:
        return None
    definitions = kv_utils.schema_contents(f"kubernetes-json-schema/{schema_dir}/_definitions.json", schema_version)
    registry = referencing.Resource.from_contents(schema) @ referencing.Registry()
    registry = referencing.Resource.from_contents(definitions) @ registry
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def _field_path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


def schema_check(obj: dict[str, Any], server_minor: int) -> list[str]:
    """Raise 400/422 on schema violations; returns the unknown field paths (they are pruned from obj)."""
    schema_version = _schema_version(server_minor)
    if schema_version is None:
        return []
    loose = _validator(obj["kind"], obj["apiVersion"], schema_version, False)
    strict = _validator(obj["kind"], obj["apiVersion"], schema_version, True)
    if loose is None or strict is None:
        return []
    kind = obj["kind"]
    for error in loose.iter_errors(obj):
        path = _field_path(error.absolute_path)
        if error.validator in ("type", "format", "enum"):
            raise ApiError(
                400,
                f'{kind} in version "{obj["apiVersion"].split("/")[-1]}" cannot be handled as a '
                f"{kind}: json: cannot unmarshal {type(error.instance).__name__} into Go struct field "
                f"{kind}.{path}: {error.message}",
            )
        raise ApiError(
            422,
            f'{kind} "{obj.get("metadata", {}).get("name", "")}" is invalid: {path}: {error.message}',
            kind=kind,
        )
    unknown = []
    for error in list(strict.iter_errors(obj)):
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = set(error.schema.get("properties", {}))
            for key in [key for key in error.instance if key not in known]:
                unknown.append(_field_path([*error.absolute_path, key]))
                del error.instance[key]
    return unknown
