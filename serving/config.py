"""What the runtime serves (slipway.json, written by the image builder) and how (environment variables)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.contract import DATATYPES
from serving.errors import ConfigError

CONFIG_FILE = "slipway.json"
DEFAULT_MODEL_DIR = "/opt/slipway/model"
FRAMEWORKS = ("sklearn", "onnx", "python")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]

    def as_metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class ModelConfig:
    name: str
    version: str
    framework: str
    artifact: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


def load_config(model_dir: Path) -> ModelConfig:
    path = model_dir / CONFIG_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    name, version, framework = raw.get("name"), raw.get("version"), raw.get("framework")
    if not isinstance(name, str) or not name:
        raise ConfigError("slipway.json: 'name' must be a non-empty string")
    if not isinstance(version, str | int) or isinstance(version, bool) or str(version) == "":
        raise ConfigError("slipway.json: 'version' must be a non-empty string")
    if framework not in FRAMEWORKS:
        raise ConfigError(f"slipway.json: 'framework' must be one of {sorted(FRAMEWORKS)}, got {framework!r}")
    artifact = raw.get("artifact") or "."
    if not isinstance(artifact, str):
        raise ConfigError("slipway.json: 'artifact' must be a string")
    signature = raw.get("signature") or {}
    if not isinstance(signature, dict):
        raise ConfigError("slipway.json: 'signature' must be an object")
    return ModelConfig(
        name=name,
        version=str(version),
        framework=str(framework),
        artifact=artifact,
        inputs=_parse_tensor_specs(signature.get("inputs"), "inputs"),
        outputs=_parse_tensor_specs(signature.get("outputs"), "outputs"),
    )


def _parse_tensor_specs(raw: Any, where: str) -> tuple[TensorSpec, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"slipway.json: signature.{where} must be a list")
    specs = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise ConfigError(f"slipway.json: signature.{where}[{index}] needs a string 'name'")
        datatype = item.get("datatype", "")
        if datatype and datatype not in DATATYPES:
            raise ConfigError(f"slipway.json: signature.{where}[{index}] has unknown datatype {datatype!r}")
        shape = item.get("shape", [])
        if not isinstance(shape, list) or not all(is_int(d) and d >= -1 for d in shape):
            raise ConfigError(f"slipway.json: signature.{where}[{index}].shape must be a list of integers")
        specs.append(TensorSpec(item["name"], datatype, tuple(shape)))
    return tuple(specs)


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_int_env(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"environment variable {name} must be at least {minimum}, got {value}")
    return value


def read_seconds_env(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"environment variable {name} must be a number of seconds of 0 or more, got {raw!r}")
    return value


MiB = 1024 * 1024
MAX_AUTO_WORKERS = 8


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server; checked before any array is built."""

    body_bytes: int = 8 * MiB
    elements: int = 4 * MiB  # input elements across all tensors of a request
    tensor_bytes: int = 32 * MiB  # input array bytes across all tensors (BYTES: 8 per element + the text)
    string_bytes: int = 1 * MiB  # one BYTES element, UTF-8 encoded


@dataclass(frozen=True)
class Settings:
    """The runtime's environment variables, read and checked once at start (see serving/README.md)."""

    model_dir: Path
    host: str
    port: int
    workers: int
    limits: Limits
    max_connections: int  # per worker: connections served at once, each on its own thread
    max_concurrency: int  # per worker: inference requests decoded and predicted at once
    queue_timeout: float  # seconds an inference request waits for one of those slots before a 503
    idle_timeout: float  # seconds a keep-alive connection may stay silent, and a request may take to arrive
    load_failure_grace: float  # seconds readiness reports a load failure before the process exits


def read_settings() -> Settings:
    defaults = Limits()
    return Settings(
        model_dir=Path(os.environ.get("SLIPWAY_MODEL_DIR") or DEFAULT_MODEL_DIR),
        host=os.environ.get("SLIPWAY_HOST") or "0.0.0.0",  # noqa: S104 - a container listens on all interfaces
        port=read_int_env("PORT", 8080),
        workers=read_int_env("SLIPWAY_WORKERS", 0) or default_workers(),
        limits=Limits(
            body_bytes=read_int_env("SLIPWAY_MAX_BODY_BYTES", defaults.body_bytes, minimum=1),
            elements=read_int_env("SLIPWAY_MAX_ELEMENTS", defaults.elements, minimum=1),
            tensor_bytes=read_int_env("SLIPWAY_MAX_TENSOR_BYTES", defaults.tensor_bytes, minimum=1),
            string_bytes=read_int_env("SLIPWAY_MAX_STRING_BYTES", defaults.string_bytes, minimum=1),
        ),
        max_connections=read_int_env("SLIPWAY_MAX_CONNECTIONS", 64, minimum=1),
        max_concurrency=read_int_env("SLIPWAY_MAX_CONCURRENCY", 4, minimum=1),
        queue_timeout=read_seconds_env("SLIPWAY_QUEUE_TIMEOUT", 2.0),
        idle_timeout=read_seconds_env("SLIPWAY_IDLE_TIMEOUT", 30.0) or 30.0,
        load_failure_grace=read_seconds_env("SLIPWAY_LOAD_FAILURE_GRACE", 5.0),
    )


def default_workers() -> int:
    """One worker per CPU the container may use (at most 8)."""
    return min(usable_cpus(), MAX_AUTO_WORKERS)


def threads_per_worker(workers: int) -> int:
    """Threads each worker's framework may run at once: the usable CPUs shared out among the workers."""
    return max(1, usable_cpus() // workers)


def usable_cpus() -> int:
    """The CPUs this process may run on, capped by its cgroup's quota rounded up."""
    available = len(os.sched_getaffinity(0))
    quota = cgroup_cpu_limit()
    return max(1, min(available, math.ceil(quota)) if quota else available)


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by the cgroup's quota (v2 cpu.max, or v1 cfs quota/period); None when unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text(encoding="ascii").split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError, ZeroDivisionError):
        pass
    try:
        v1_quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text(encoding="ascii"))
        v1_period = int((root / "cpu" / "cpu.cfs_period_us").read_text(encoding="ascii"))
    except (OSError, ValueError):
        return None
    return v1_quota / v1_period if v1_quota > 0 and v1_period > 0 else None
