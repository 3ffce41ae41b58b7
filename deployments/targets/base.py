"""What every rollout target shares: the spec of a deployment, progress, live state, errors, checks.

Pure Python: no Django, no database. The platform's Django code builds a target per environment and
calls it from Celery tasks; everything a user may read (errors, log lines) is written for users.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from deployments import deployment_settings
from deployments.deployment_settings import DEFAULTS, parse_quantity

__all__ = [
    "Autoscaling",
    "DeploySpec",
    "LiveState",
    "Progress",
    "Resources",
    "RolloutStopped",
    "Target",
    "TargetError",
    "TransientTargetError",
    "common_labels",
    "log_tail",
    "parse_quantity",
    "validate_spec",
]

MANAGED_BY = "slipway"
COMPONENT = "model-server"

# A Service name is a DNS-1035 label (it must start with a letter), and the same name is used for
# the Deployment, the HPA and the Docker container, so the strictest rule applies to all.
_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_DIGEST_REFERENCE = re.compile(r"^[a-z0-9][a-z0-9._\-/:]*@sha256:[0-9a-f]{64}$")
_INT_OR_PERCENT = re.compile(r"^[0-9]+%?$")


class TargetError(Exception):
    """A permanent failure; the message is one sentence for users ("Pods cannot pull the image: ...")."""


class TransientTargetError(Exception):
    """The target could not be reached or answered with a server error: retry later with backoff."""


class RolloutStopped(Exception):
    """should_stop() returned a reason; the message is that reason."""


@dataclass(frozen=True)
class Resources:
    cpu_request: str = DEFAULTS["cpu_request"]
    memory_request: str = DEFAULTS["memory_request"]
    cpu_limit: str = DEFAULTS["cpu_limit"]
    memory_limit: str = DEFAULTS["memory_limit"]
    gpus: int = DEFAULTS["gpus"]


@dataclass(frozen=True)
class Autoscaling:
    min_replicas: int
    max_replicas: int
    target_cpu_percent: int = 80


@dataclass(frozen=True)
class DeploySpec:
    name: str
    image: str
    model: str
    team: str
    version: int
    deployment_id: int
    replicas: int = DEFAULTS["replicas"]
    resources: Resources = Resources()
    autoscaling: Autoscaling | None = None
    env: dict[str, str] = field(default_factory=dict)
    secret_refs: tuple[str, ...] = ()
    port: int = DEFAULTS["port"]
    progress_deadline_seconds: int = DEFAULTS["progress_deadline_seconds"]
    max_surge: str = "25%"
    max_unavailable: str = "0"
    # The runtime writes nothing outside /tmp (which targets mount writable); a custom image that
    # does may turn this off.
    read_only_root_filesystem: bool = True


@dataclass
class Progress:
    desired: int
    updated: int
    ready: int
    available: int
    message: str = ""


@dataclass
class LiveState:
    exists: bool
    image: str = ""
    replicas: int = 0
    ready: int = 0
    endpoint: str = ""


LogFn = Callable[[str], None]
ProgressFn = Callable[[Progress], None]
StopFn = Callable[[], "str | None"]


class Target(Protocol):
    def check(self) -> dict[str, Any]: ...

    def render(self, spec: DeploySpec) -> list[dict[str, Any]]: ...

    def deploy(self, spec: DeploySpec, *, log: LogFn, on_progress: ProgressFn, should_stop: StopFn) -> str: ...

    def live_state(self, name: str) -> LiveState: ...

    def remove(self, name: str) -> None: ...


def common_labels(spec: DeploySpec) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": spec.model,
        "app.kubernetes.io/instance": spec.name,
        "app.kubernetes.io/version": f"v{spec.version}",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/component": COMPONENT,
        "slipway.io/team": spec.team,
        "slipway.io/model": spec.model,
        "slipway.io/version": str(spec.version),
        "slipway.io/deployment-id": str(spec.deployment_id),
    }


def selector_labels(name: str, model: str) -> dict[str, str]:
    """What a Deployment selects its pods by: fixed for the life of the Deployment (selectors are immutable)."""
    return {"app.kubernetes.io/name": model, "app.kubernetes.io/instance": name}


def validate_name(name: str) -> None:
    if not isinstance(name, str) or not _DNS_1035_LABEL.match(name):
        raise TargetError(
            f"name: {name!r} is not a valid resource name (lower-case letters, digits and '-', "
            "starting with a letter, at most 63 characters)"
        )


def validate_spec(spec: DeploySpec) -> None:
    """Raise TargetError naming the first invalid field; callers validate too, this is the last line."""
    validate_name(spec.name)
    if not _DIGEST_REFERENCE.match(spec.image or ""):
        raise TargetError(
            f"image: {spec.image!r} is not a reference by digest (repository@sha256:<64 hex digits>); "
            "Slipway deploys images only by digest"
        )
    for key in ("model", "team"):
        value = getattr(spec, key)
        if not value or not _LABEL_VALUE.match(value):
            raise TargetError(f"{key}: {value!r} cannot be used as a label value (at most 63 letters, digits, '-_.')")
    _check_integer(spec, "version", 0)
    _check_integer(spec, "deployment_id", 1)
    try:
        deployment_settings.clean(settings_of(spec), name=_spec_name)
    except deployment_settings.SettingError as error:
        raise TargetError(str(error)) from None
    _validate_rolling_update(spec)


def settings_of(spec: DeploySpec) -> dict[str, Any]:
    """The deployment settings a spec stands for: what deployments.deployment_settings rules check."""
    return {
        "replicas": spec.replicas,
        **asdict(spec.resources),
        "autoscaling": asdict(spec.autoscaling) if spec.autoscaling else None,
        "env": spec.env,
        "secret_refs": list(spec.secret_refs),
        "port": spec.port,
        "progress_deadline_seconds": spec.progress_deadline_seconds,
    }


def _spec_name(key: str) -> str:
    return f"resources.{key}" if key in Resources.__dataclass_fields__ else key


def _check_integer(spec: DeploySpec, key: str, minimum: int) -> None:
    value = getattr(spec, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TargetError(f"{key}: must be a whole number of at least {minimum}, not {value!r}")


def _validate_rolling_update(spec: DeploySpec) -> None:
    for key in ("max_surge", "max_unavailable"):
        if not _INT_OR_PERCENT.match(str(getattr(spec, key))):
            raise TargetError(f"{key}: {getattr(spec, key)!r} must be a whole number or a percentage such as '25%'")
    if int_or_percent(spec.max_surge) in (0, "0%") and int_or_percent(spec.max_unavailable) in (0, "0%"):
        raise TargetError("max_surge and max_unavailable cannot both be 0: the rollout could never replace a pod")


def int_or_percent(value: str) -> int | str:
    """Kubernetes takes a percentage as a string and a count as an integer ("0" as a string is invalid)."""
    text = str(value)
    return text if text.endswith("%") else int(text)


def log_tail(text: str, lines: int) -> list[str]:
    """The last non-empty lines of a model server's output, without the access-log records of health probes.

    Probes (the kubelet's, or the Docker target's own) hit the server every few seconds and would push
    the lines that explain a failure out of any tail.
    """
    kept = [line for line in text.splitlines() if line.strip() and not _is_probe_record(line)]
    return kept[-lines:] if lines > 0 else []


def _is_probe_record(line: str) -> bool:
    if '"/v2/health/' not in line:
        return False
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return (
        isinstance(record, dict)
        and record.get("event") == "request"
        and str(record.get("path", "")).startswith("/v2/health/")
    )
