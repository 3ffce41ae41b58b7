"""What the runtime serves (slipway.json, written by the image builder) and how (environment variables)."""

from __future__ import annotations

import json
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
