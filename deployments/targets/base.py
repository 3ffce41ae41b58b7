"""What every rollout target shares: the spec of a deployment, progress, live state, errors, checks.

Pure Python: no Django, no database. The platform's Django code builds a target per environment and
calls it from Celery tasks; everything a user may read (errors, log lines) is written for users.
"""

from __future__ import annotations

import hashlib
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
    "Identity",
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
    "runtime_error",
    "runtime_record_error",
    "validate_spec",
]

MANAGED_BY = "slipway"
COMPONENT = "model-server"
NAME_HASH_LENGTH = 10

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
class Identity:
    """Whose objects these are: one model of one team in one environment of one Slipway installation.

    Every container, Deployment, Service and HPA a target creates carries these as labels, and a target
    finds, replaces and retires objects by them, never by a name prefix: two environments on one Docker
    host or in one namespace, and two installations sharing a host, never touch each other's objects.
    """

    installation: str
    environment: str
    environment_id: int
    team: str
    model: str

    @property
    def name(self) -> str:
        """Unique and stable: readable team and model, then a hash of everything that identifies them.

        The hash keeps `ml`/`search-ranker` and `ml-search`/`ranker` apart, and holds the environment's
        id rather than its name, so renaming an environment does not orphan what runs there.
        """
        key = f"{self.installation}\0{self.environment_id}\0{self.team}\0{self.model}"
        digest = hashlib.sha256(key.encode()).hexdigest()[:NAME_HASH_LENGTH]
        readable = f"{self.team}-{self.model}"[: 62 - NAME_HASH_LENGTH].rstrip("-")
        return f"{readable}-{digest}"

    def selector(self) -> dict[str, str]:
        """The labels that find this identity's objects (and only them)."""
        return {
            "app.kubernetes.io/managed-by": MANAGED_BY,
            "slipway.io/installation": self.installation,
            "slipway.io/environment-id": str(self.environment_id),
            "slipway.io/team": self.team,
            "slipway.io/model": self.model,
        }

    def labels(self) -> dict[str, str]:
        return {**self.selector(), "slipway.io/environment": self.environment, "app.kubernetes.io/instance": self.name}

    def selector_text(self) -> str:
        """The selector as a label selector string (Kubernetes) or a list of filters (Docker)."""
        return ",".join(f"{key}={value}" for key, value in self.selector().items())


@dataclass(frozen=True)
class DeploySpec:
    identity: Identity
    image: str
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
    # Docker hosts: (deployment id, image) of the model's earlier rollouts in this environment. A container
    # an older Slipway made for one of them (named team-model-dN, with no identity labels) is replaced
    # like the identity's own; one it made for another environment is never touched.
    adopt: tuple[tuple[int, str], ...] = ()

    @property
    def name(self) -> str:
        return self.identity.name

    @property
    def model(self) -> str:
        return self.identity.model

    @property
    def team(self) -> str:
        return self.identity.team


@dataclass
class Progress:
    desired: int
    updated: int
    ready: int
    available: int
    message: str = ""


@dataclass
class LiveState:
    """What runs, as observed. `exists` is False when nothing runs at all (stopped, exited, restarting, removed,
    scaled to 0); `detail` then says which, for people."""

    exists: bool
    image: str = ""
    replicas: int = 0  # wanted (a Deployment's spec.replicas; on a Docker host the running containers)
    ready: int = 0  # answering ready (available, on Kubernetes)
    endpoint: str = ""
    detail: str = ""


LogFn = Callable[[str], None]
ProgressFn = Callable[[Progress], None]
StopFn = Callable[[], "str | None"]


class Target(Protocol):
    def check(self) -> dict[str, Any]: ...

    def render(self, spec: DeploySpec) -> list[dict[str, Any]]: ...

    def deploy(
        self,
        spec: DeploySpec,
        *,
        log: LogFn,
        on_progress: ProgressFn,
        should_stop: StopFn,
        manifests: list[dict[str, Any]] | None = None,
    ) -> str: ...

    def live_state(self, identity: Identity) -> LiveState: ...

    def remove(self, identity: Identity) -> None: ...


def common_labels(spec: DeploySpec) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": spec.model,
        "app.kubernetes.io/version": f"v{spec.version}",
        "app.kubernetes.io/component": COMPONENT,
        **spec.identity.labels(),
        "slipway.io/version": str(spec.version),
        "slipway.io/deployment-id": str(spec.deployment_id),
    }


def selector_labels(name: str, model: str) -> dict[str, str]:
    """What a Deployment selects its pods by: fixed for the life of the Deployment (selectors are immutable)."""
    return {"app.kubernetes.io/name": model, "app.kubernetes.io/instance": name}


def validate_identity(identity: Identity) -> None:
    for key in ("installation", "environment", "team", "model"):
        value = getattr(identity, key)
        if not isinstance(value, str) or not value or not _LABEL_VALUE.match(value):
            raise TargetError(f"{key}: {value!r} cannot be used as a label value (at most 63 letters, digits, '-_.')")
    _check_integer(identity, "environment_id", 1)
    if not _DNS_1035_LABEL.match(identity.name):
        raise TargetError(
            f"name: {identity.name!r} is not a valid resource name (lower-case letters, digits and '-', "
            "starting with a letter, at most 63 characters)"
        )


def validate_spec(spec: DeploySpec) -> None:
    """Raise TargetError naming the first invalid field; callers validate too, this is the last line."""
    validate_identity(spec.identity)
    if not _DIGEST_REFERENCE.match(spec.image or ""):
        raise TargetError(
            f"image: {spec.image!r} is not a reference by digest (repository@sha256:<64 hex digits>); "
            "Slipway deploys images only by digest"
        )
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


def _check_integer(spec: DeploySpec | Identity, key: str, minimum: int) -> None:
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


def runtime_error(lines: list[str]) -> str:
    """What a model server's last lines say went wrong: the runtime logs JSON records, and the last one
    with an "error" names it; other servers' plain text gives its last line."""
    return runtime_record_error(lines) or (lines[-1].strip()[:500] if lines else "")


def runtime_record_error(lines: list[str]) -> str:
    """The error named by the runtime's last JSON record that names one; empty when there is none."""
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("error"):
            return str(record["error"])[:500]
    return ""


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
