#!/usr/bin/env python3
"""Slipway model server: the Open Inference Protocol v2 (REST) for one model, inside the model's image.

Only the standard library and numpy are imported at start; the model's framework (scikit-learn,
onnxruntime or the user's ``model.py``) is imported by the loader thread once the socket listens, so
liveness answers at once and readiness turns 200 only after the model really loaded.

Environment: SLIPWAY_MODEL_DIR (default /opt/slipway/model, holds slipway.json), PORT (default 8080,
0 picks a free port), SLIPWAY_HOST (default 0.0.0.0), SLIPWAY_MAX_BODY_BYTES (default 64 MiB).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import signal
import socket
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np

SERVER_NAME = "slipway"
SERVER_VERSION = "1.0.0"
DEFAULT_MODEL_DIR = "/opt/slipway/model"
CONFIG_FILE = "slipway.json"
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 10.0
NOT_LOADED = "model not loaded yet"
LINGER_SECONDS = 2.0
LINGER_MAX_BYTES = 256 * 1024 * 1024

DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
PLATFORMS = {"sklearn": "sklearn", "onnx": "onnxruntime_onnx", "python": "python"}
SKLEARN_SUFFIXES = (".joblib", ".pkl", ".pickle")
ONNX_TYPES: dict[str, tuple[np.dtype, str]] = {
    "tensor(bool)": (np.dtype(np.bool_), "BOOL"),
    "tensor(uint8)": (np.dtype(np.uint8), "UINT8"),
    "tensor(uint16)": (np.dtype(np.uint16), "UINT16"),
    "tensor(uint32)": (np.dtype(np.uint32), "UINT32"),
    "tensor(uint64)": (np.dtype(np.uint64), "UINT64"),
    "tensor(int8)": (np.dtype(np.int8), "INT8"),
    "tensor(int16)": (np.dtype(np.int16), "INT16"),
    "tensor(int32)": (np.dtype(np.int32), "INT32"),
    "tensor(int64)": (np.dtype(np.int64), "INT64"),
    "tensor(float16)": (np.dtype(np.float16), "FP16"),
    "tensor(float)": (np.dtype(np.float32), "FP32"),
    "tensor(double)": (np.dtype(np.float64), "FP64"),
    "tensor(string)": (np.dtype(object), "BYTES"),
}

_log_lock = threading.Lock()


def log_event(level: str, event: str, **fields: Any) -> None:
    record = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "level": level, "event": event}
    record.update(fields)
    line = json.dumps(record, default=str)
    with _log_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class ClientError(Exception):
    """A mistake in the request: answered with its status and message, never as a 500."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class ConfigError(Exception):
    pass


# ---------------------------------------------------------------------------------------------------
# Configuration


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
    if framework not in PLATFORMS:
        raise ConfigError(f"slipway.json: 'framework' must be one of {sorted(PLATFORMS)}, got {framework!r}")
    artifact = raw.get("artifact") or "."
    if not isinstance(artifact, str):
        raise ConfigError("slipway.json: 'artifact' must be a string")
    signature = raw.get("signature") or {}
    if not isinstance(signature, dict):
        raise ConfigError("slipway.json: 'signature' must be an object")
    return ModelConfig(
        name=name,
        version=str(version),
        framework=framework,
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
        if not isinstance(shape, list) or not all(_is_int(d) and d >= -1 for d in shape):
            raise ConfigError(f"slipway.json: signature.{where}[{index}].shape must be a list of integers")
        specs.append(TensorSpec(item["name"], datatype, tuple(shape)))
    return tuple(specs)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------------------------
# Tensors: JSON <-> numpy


@dataclass
class InputTensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    array: np.ndarray


def decode_input(raw: Any, index: int) -> InputTensor:
    if not isinstance(raw, dict):
        raise ClientError(f"inputs[{index}] must be an object")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ClientError(f"inputs[{index}] needs a non-empty string 'name'")
    datatype = raw.get("datatype")
    if not isinstance(datatype, str):
        raise ClientError(f"input '{name}' needs a string 'datatype'")
    if datatype not in DATATYPES:
        raise ClientError(f"input '{name}' has unsupported datatype {datatype!r}; supported: {', '.join(DATATYPES)}")
    shape = raw.get("shape")
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise ClientError(f"input '{name}' needs 'shape' as a list of non-negative integers")
    data = raw.get("data")
    if not isinstance(data, list):
        raise ClientError(f"input '{name}' needs 'data' as an array (flat row-major or nested)")
    if "binary_data_size" in (raw.get("parameters") or {}):
        raise ClientError(f"input '{name}' uses the binary tensor extension, which this server does not support")
    array = data_to_array(name, datatype, tuple(shape), data)
    return InputTensor(name, datatype, tuple(shape), array)


def data_to_array(name: str, datatype: str, shape: tuple[int, ...], data: list) -> np.ndarray:
    expected = math.prod(shape)
    try:
        values = np.array(data)
    except (ValueError, TypeError) as exc:
        raise ClientError(f"input '{name}': nested 'data' is not rectangular") from exc
    if values.size != expected:
        raise ClientError(
            f"input '{name}': 'data' holds {values.size} elements but shape {list(shape)} needs {expected}"
        )
    target = DATATYPES[datatype]
    if expected == 0:
        return np.zeros(shape, dtype=target)
    _check_element_kind(name, datatype, values)
    if datatype == "BYTES":
        return values.astype(object).reshape(shape)
    if values.dtype.kind in "iu" and target.kind in "iu":
        limits = np.iinfo(target)
        if values.min() < limits.min or values.max() > limits.max:
            raise ClientError(f"input '{name}': values out of range for {datatype}")
    return values.astype(target).reshape(shape)


def _check_element_kind(name: str, datatype: str, values: np.ndarray) -> None:
    kind = values.dtype.kind
    if datatype == "BOOL":
        ok = kind == "b"
    elif datatype.startswith(("INT", "UINT")):
        ok = kind in "iu"
    elif datatype.startswith("FP"):
        ok = kind in "iuf"
    else:
        ok = kind == "U"
    if not ok:
        wanted = {"BOOL": "booleans", "BYTES": "strings"}.get(datatype, "integers" if "INT" in datatype else "numbers")
        raise ClientError(f"input '{name}': datatype {datatype} needs {wanted} in 'data'")


def datatype_of(array: np.ndarray) -> str:
    kind, size = array.dtype.kind, array.dtype.itemsize
    if kind == "b":
        return "BOOL"
    if kind in "iu":
        return f"{'U' if kind == 'u' else ''}INT{size * 8}"
    if kind == "f":
        return {2: "FP16", 4: "FP32"}.get(size, "FP64")
    if kind in "USO":
        return "BYTES"
    raise TypeError(f"cannot encode an output of dtype {array.dtype}")


def encode_output(name: str, value: Any) -> dict[str, Any]:
    array = np.asarray(value)
    datatype = datatype_of(array)
    flat = array.ravel().tolist()
    if datatype == "BYTES":
        flat = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in flat]
    elif datatype == "FP64" and array.dtype.itemsize > 8:
        flat = [float(v) for v in flat]
    return {"name": name, "shape": list(array.shape), "datatype": datatype, "data": flat}


def shape_matches(actual: tuple[int, ...], expected: tuple[int, ...]) -> bool:
    if len(actual) != len(expected):
        return False
    return all(want in (-1, got) for got, want in zip(actual, expected, strict=True))


# ---------------------------------------------------------------------------------------------------
# Model adapters: one per framework, each imports its framework lazily


class LoadedModel:
    platform = ""

    def output_names(self) -> list[str] | None:
        """Names the model can produce, or None when only a prediction can tell (python models)."""
        return None

    def metadata(self) -> tuple[list[dict], list[dict]] | None:
        return None

    def predict(self, inputs: dict[str, np.ndarray], requested: list[str] | None) -> dict[str, Any]:
        raise NotImplementedError


def find_artifact(model_dir: Path, artifact: str, suffixes: tuple[str, ...]) -> Path:
    root = model_dir.resolve()
    path = (model_dir / artifact).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"artifact {artifact!r} points outside the model directory")
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"artifact {artifact!r} not found in {model_dir}")
    found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if len(found) != 1:
        raise FileNotFoundError(f"expected exactly one {'/'.join(suffixes)} file in {path}, found {len(found)}")
    return found[0]


class SklearnModel(LoadedModel):
    platform = PLATFORMS["sklearn"]

    def __init__(self, path: Path, config: ModelConfig) -> None:
        import joblib

        self.estimator = joblib.load(path)
        if not callable(getattr(self.estimator, "predict", None)):
            raise TypeError(f"{path.name} holds a {type(self.estimator).__name__}, which has no predict()")
        names = [spec.name for spec in config.outputs]
        self.predict_name = names[0] if names else "predict"
        self.proba_name = names[1] if len(names) > 1 else "predict_proba"
        self.has_proba = callable(getattr(self.estimator, "predict_proba", None))

    def output_names(self) -> list[str]:
        return [self.predict_name, self.proba_name] if self.has_proba else [self.predict_name]

    def predict(self, inputs: dict[str, np.ndarray], requested: list[str] | None) -> dict[str, Any]:
        if len(inputs) != 1:
            raise ClientError(f"a scikit-learn model takes exactly one input tensor, got {len(inputs)}")
        (features,) = inputs.values()
        expected = getattr(self.estimator, "n_features_in_", None)
        # Estimators without n_features_in_ (text pipelines, for one) may take 1-D input: leave those be.
        if expected is not None and features.ndim != 2:
            raise ClientError(f"input must be 2-D [rows, {expected} features], got shape {list(features.shape)}")
        if expected is not None and features.shape[1] != expected:
            raise ClientError(f"input has {features.shape[1]} features per row, the model expects {expected}")
        results: dict[str, Any] = {}
        for name in requested or [self.predict_name]:
            method = self.estimator.predict if name == self.predict_name else self.estimator.predict_proba
            results[name] = method(features)
        return results


class OnnxModel(LoadedModel):
    platform = PLATFORMS["onnx"]

    def __init__(self, path: Path) -> None:
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.inputs = {meta.name: meta for meta in self.session.get_inputs()}
        self.outputs = {meta.name: meta for meta in self.session.get_outputs()}

    def output_names(self) -> list[str]:
        return list(self.outputs)

    def metadata(self) -> tuple[list[dict], list[dict]]:
        def describe(meta: Any) -> dict:
            datatype = ONNX_TYPES.get(meta.type, (None, meta.type))[1]
            shape = [d if isinstance(d, int) else -1 for d in (meta.shape or [])]
            return {"name": meta.name, "datatype": datatype, "shape": shape}

        return [describe(m) for m in self.inputs.values()], [describe(m) for m in self.outputs.values()]

    def predict(self, inputs: dict[str, np.ndarray], requested: list[str] | None) -> dict[str, Any]:
        unknown = sorted(set(inputs) - set(self.inputs))
        if unknown:
            raise ClientError(f"unknown input(s) {unknown}; the model takes {sorted(self.inputs)}")
        missing = sorted(set(self.inputs) - set(inputs))
        if missing:
            raise ClientError(f"missing input(s) {missing}")
        feed = {name: self._prepare(name, array) for name, array in inputs.items()}
        # ZipMap and other sequence outputs are not tensors: only computed when asked for.
        names = requested or [n for n, meta in self.outputs.items() if meta.type.startswith("tensor(")]
        values = self.session.run(names, feed)
        return {name: _to_tensor(value) for name, value in zip(names, values, strict=True)}

    def _prepare(self, name: str, array: np.ndarray) -> np.ndarray:
        meta = self.inputs[name]
        expected = [d if isinstance(d, int) else -1 for d in (meta.shape or [])]
        if meta.shape is not None and not shape_matches(array.shape, tuple(expected)):
            raise ClientError(f"input '{name}' has shape {list(array.shape)}, the model expects {expected}")
        dtype = ONNX_TYPES.get(meta.type, (None, ""))[0]
        if dtype is None:
            return array
        if (dtype.kind == "O") != (array.dtype.kind == "O"):
            raise ClientError(f"input '{name}' must be {ONNX_TYPES[meta.type][1]} for this model")
        return array.astype(dtype, copy=False)


def _to_tensor(value: Any) -> np.ndarray:
    if isinstance(value, list) and value and isinstance(value[0], dict):
        keys = sorted(value[0])
        return np.array([[row[key] for key in keys] for row in value])
    return np.asarray(value)


class PythonModel(LoadedModel):
    platform = PLATFORMS["python"]

    def __init__(self, folder: Path, config: ModelConfig) -> None:
        module_path = folder / "model.py"
        if not module_path.is_file():
            raise FileNotFoundError(f"no model.py in {folder}")
        sys.path.insert(0, str(folder))
        spec = importlib.util.spec_from_file_location("model", module_path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["model"] = module
        spec.loader.exec_module(module)
        model_class = getattr(module, "Model", None)
        if not isinstance(model_class, type):
            raise TypeError("model.py defines no class Model")
        self.model = model_class()
        if callable(getattr(self.model, "load", None)):
            self.model.load(str(folder))
        self.default_output = config.outputs[0].name if config.outputs else "output0"
        # User code is not known to be thread-safe; serialise it.
        self.lock = threading.Lock()

    def predict(self, inputs: dict[str, np.ndarray], requested: list[str] | None) -> dict[str, Any]:
        with self.lock:
            result = self.model.predict(inputs)
        outputs = {str(k): v for k, v in result.items()} if isinstance(result, dict) else {self.default_output: result}
        if not requested:
            return outputs
        missing = [name for name in requested if name not in outputs]
        if missing:
            raise ClientError(f"unknown output(s) {missing}; the model produced {sorted(outputs)}")
        return {name: outputs[name] for name in requested}


def load_model(config: ModelConfig, model_dir: Path) -> LoadedModel:
    if config.framework == "sklearn":
        return SklearnModel(find_artifact(model_dir, config.artifact, SKLEARN_SUFFIXES), config)
    if config.framework == "onnx":
        return OnnxModel(find_artifact(model_dir, config.artifact, (".onnx",)))
    folder = (model_dir / config.artifact).resolve()
    if not folder.is_relative_to(model_dir.resolve()):
        raise ValueError(f"artifact {config.artifact!r} points outside the model directory")
    return PythonModel(folder if folder.is_dir() else folder.parent, config)


# ---------------------------------------------------------------------------------------------------
# Metrics


class Metrics:
    BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, int], int] = {}
        self._errors = 0
        self._histograms: dict[str, list[float]] = {}  # endpoint -> bucket counts, then sum, then count

    def observe(self, endpoint: str, code: int, seconds: float) -> None:
        with self._lock:
            key = (endpoint, code)
            self._requests[key] = self._requests.get(key, 0) + 1
            if code >= 400:
                self._errors += 1
            hist = self._histograms.setdefault(endpoint, [0.0] * (len(self.BUCKETS) + 2))
            for index, bound in enumerate(self.BUCKETS):
                if seconds <= bound:
                    hist[index] += 1
            hist[-2] += seconds
            hist[-1] += 1

    def render(self, model_ready: bool) -> str:
        with self._lock:
            requests = sorted(self._requests.items())
            errors = self._errors
            histograms = {k: list(v) for k, v in sorted(self._histograms.items())}
        lines = [
            "# HELP slipway_requests_total HTTP requests answered, by endpoint and status code.",
            "# TYPE slipway_requests_total counter",
        ]
        lines += [f'slipway_requests_total{{endpoint="{ep}",code="{code}"}} {n}' for (ep, code), n in requests]
        lines += [
            "# HELP slipway_request_errors_total HTTP requests answered with a status of 400 or more.",
            "# TYPE slipway_request_errors_total counter",
            f"slipway_request_errors_total {errors}",
            "# HELP slipway_request_duration_seconds Time to answer an HTTP request.",
            "# TYPE slipway_request_duration_seconds histogram",
        ]
        for endpoint, hist in histograms.items():
            name = "slipway_request_duration_seconds"
            label = f'endpoint="{endpoint}"'
            bounds = [*(str(bound) for bound in self.BUCKETS), "+Inf"]
            counts = [*hist[: len(self.BUCKETS)], hist[-1]]
            lines += [f'{name}_bucket{{{label},le="{le}"}} {int(n)}' for le, n in zip(bounds, counts, strict=True)]
            lines.append(f"{name}_sum{{{label}}} {hist[-2]:.6f}")
            lines.append(f"{name}_count{{{label}}} {int(hist[-1])}")
        lines += [
            "# HELP slipway_model_ready 1 when the model is loaded and can answer inference requests.",
            "# TYPE slipway_model_ready gauge",
            f"slipway_model_ready {1 if model_ready else 0}",
        ]
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------
# The application: routing and the protocol, independent of the HTTP plumbing


@dataclass
class Response:
    status: int
    payload: Any
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def error(status: int, message: str) -> Response:
    return Response(status, {"error": message})


MODEL_ROUTE = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<action>/ready|/infer)?/?$")
SIMPLE_ROUTES = {
    "/v2": "server_metadata",
    "/v2/": "server_metadata",
    "/v2/health/live": "health_live",
    "/v2/health/ready": "health_ready",
    "/metrics": "metrics",
}
MODEL_ACTIONS = {None: "model_metadata", "/ready": "model_ready", "/infer": "infer"}


class App:
    def __init__(self, config: ModelConfig, model_dir: Path, max_body_bytes: int) -> None:
        self.config = config
        self.model_dir = model_dir
        self.max_body_bytes = max_body_bytes
        self.metrics = Metrics()
        self.model: LoadedModel | None = None
        self.not_ready_reason = NOT_LOADED
        self.shutting_down = False
        self._inflight = 0
        self._inflight_changed = threading.Condition()

    # -- lifecycle

    def load(self) -> None:
        started = time.monotonic()
        try:
            model = load_model(self.config, self.model_dir)
        except BaseException as exc:  # user code may raise anything (even SystemExit); readiness must say so
            self.not_ready_reason = f"model failed to load: {type(exc).__name__}: {exc}"
            log_event("error", "model_load_failed", error=self.not_ready_reason, traceback=traceback.format_exc())
            return
        self.model = model
        log_event(
            "info",
            "model_loaded",
            model=self.config.name,
            version=self.config.version,
            framework=self.config.framework,
            seconds=round(time.monotonic() - started, 3),
        )

    @property
    def ready(self) -> bool:
        return self.model is not None and not self.shutting_down

    def request_started(self) -> None:
        with self._inflight_changed:
            self._inflight += 1

    def request_finished(self) -> None:
        with self._inflight_changed:
            self._inflight -= 1
            self._inflight_changed.notify_all()

    def drain(self, timeout: float) -> bool:
        with self._inflight_changed:
            return self._inflight_changed.wait_for(lambda: self._inflight == 0, timeout)

    # -- routing

    def route(self, method: str, path: str) -> tuple[str, Callable[..., Response] | None, dict[str, str]]:
        """Returns (endpoint label for metrics, handler or None for 404, path parameters)."""
        if path in SIMPLE_ROUTES:
            endpoint = SIMPLE_ROUTES[path]
            return endpoint, getattr(self, f"handle_{endpoint}"), {}
        match = MODEL_ROUTE.match(path)
        if match is None:
            return "unknown", None, {}
        endpoint = MODEL_ACTIONS[match["action"]]
        params = {"name": unquote(match["name"]), "version": unquote(match["version"] or "")}
        return endpoint, getattr(self, f"handle_{endpoint}"), params

    def _model_not_found(self, name: str, version: str) -> Response | None:
        if name != self.config.name:
            return error(404, f"unknown model '{name}'; this server serves '{self.config.name}'")
        if version and version != self.config.version:
            return error(404, f"unknown version '{version}' of model '{name}'; available: {self.config.version}")
        return None

    def _not_ready(self) -> Response:
        reason = "server is shutting down" if self.shutting_down else self.not_ready_reason
        return error(503, reason)

    # -- handlers (GET ones ignore the body reader)

    def handle_server_metadata(self, **_: Any) -> Response:
        return Response(200, {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": []})

    def handle_health_live(self, **_: Any) -> Response:
        return Response(200, {"live": True})

    def handle_health_ready(self, **_: Any) -> Response:
        return Response(200, {"ready": True}) if self.ready else self._not_ready()

    def handle_metrics(self, **_: Any) -> Response:
        return Response(200, self.metrics.render(self.ready), "text/plain; version=0.0.4; charset=utf-8")

    def handle_model_metadata(self, name: str, version: str, **_: Any) -> Response:
        not_found = self._model_not_found(name, version)
        if not_found:
            return not_found
        inputs = [spec.as_metadata() for spec in self.config.inputs]
        outputs = [spec.as_metadata() for spec in self.config.outputs]
        described = self.model.metadata() if self.model is not None else None
        if described and not inputs and not outputs:
            inputs, outputs = described
        return Response(
            200,
            {
                "name": self.config.name,
                "versions": [self.config.version],
                "platform": PLATFORMS[self.config.framework],
                "inputs": inputs,
                "outputs": outputs,
            },
        )

    def handle_model_ready(self, name: str, version: str, **_: Any) -> Response:
        not_found = self._model_not_found(name, version)
        if not_found:
            return not_found
        return Response(200, {"name": self.config.name, "ready": True}) if self.ready else self._not_ready()

    def handle_infer(self, name: str, version: str, read_body: Callable[[], bytes]) -> Response:
        not_found = self._model_not_found(name, version)
        if not_found:
            return not_found
        model = self.model
        if model is None or self.shutting_down:
            return self._not_ready()
        request = parse_infer_request(read_body())
        inputs = [decode_input(raw, index) for index, raw in enumerate(request["inputs"])]
        self._check_inputs(inputs)
        requested = requested_outputs(request, model.output_names())
        arrays = {tensor.name: tensor.array for tensor in inputs}
        try:
            results = model.predict(arrays, requested)
            outputs = [encode_output(out_name, value) for out_name, value in results.items()]
        except ClientError:
            raise
        except Exception as exc:
            log_event(
                "error",
                "predict_failed",
                error=f"{type(exc).__name__}: {exc}",
                traceback=traceback.format_exc(),
            )
            return error(500, f"prediction failed: {type(exc).__name__}: {exc}")
        answer: dict[str, Any] = {"model_name": self.config.name, "model_version": self.config.version}
        if "id" in request:
            answer["id"] = request["id"]
        answer["outputs"] = outputs
        return Response(200, answer)

    def _check_inputs(self, inputs: list[InputTensor]) -> None:
        names = [tensor.name for tensor in inputs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ClientError(f"input(s) given more than once: {duplicates}")
        if not self.config.inputs:
            return
        specs = {spec.name: spec for spec in self.config.inputs}
        for tensor in inputs:
            spec = specs.get(tensor.name)
            if spec is None:
                raise ClientError(f"unknown input '{tensor.name}'; the model takes {sorted(specs)}")
            if spec.datatype and tensor.datatype != spec.datatype:
                raise ClientError(
                    f"input '{tensor.name}' has datatype {tensor.datatype}, the model expects {spec.datatype}"
                )
            if not shape_matches(tensor.shape, spec.shape):
                raise ClientError(
                    f"input '{tensor.name}' has shape {list(tensor.shape)}, "
                    f"the model expects {list(spec.shape)} (-1 means any size)"
                )
        missing = sorted(set(specs) - set(names))
        if missing:
            raise ClientError(f"missing input(s) {missing}")


def parse_infer_request(body: bytes) -> dict[str, Any]:
    if not body:
        raise ClientError("request body is empty; send an inference request as JSON")
    try:
        request = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ClientError(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(request, dict):
        raise ClientError("request body must be a JSON object")
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ClientError("request needs 'inputs': a non-empty list of tensors")
    if "id" in request and not isinstance(request["id"], str):
        raise ClientError("'id' must be a string")
    return request


def requested_outputs(request: dict[str, Any], available: list[str] | None) -> list[str] | None:
    raw = request.get("outputs")
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in raw):
        raise ClientError("'outputs' must be a list of objects with a string 'name'")
    names = [o["name"] for o in raw]
    if available is not None:
        unknown = [name for name in names if name not in available]
        if unknown:
            raise ClientError(f"unknown output(s) {unknown}; the model can produce {available}")
    return names or None


# ---------------------------------------------------------------------------------------------------
# HTTP plumbing


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "slipway"
    timeout = 60  # bounds a slow or silent client's hold on a thread
    server: SlipwayServer

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # replaced by the JSON access log

    def _handle(self, method: str) -> None:
        app = self.server.app
        app.request_started()
        try:
            self._handle_tracked(app, method)
        finally:
            app.request_finished()

    def _handle_tracked(self, app: App, method: str) -> None:
        started = time.perf_counter()
        self._body_consumed = False
        path = urlsplit(self.path).path
        endpoint, handler, params = app.route(method, path)
        try:
            response = self._respond(method, endpoint, handler, params)
        except ClientError as exc:
            response = error(exc.status, str(exc))
        except Exception as exc:
            log_event("error", "internal_error", path=path, traceback=traceback.format_exc())
            response = error(500, f"internal error: {type(exc).__name__}")
        unread_body = self.headers.get("Content-Length", "0") not in ("", "0") and not self._body_consumed
        if unread_body:
            self.close_connection = True  # the unread body would otherwise be parsed as the next request
        sent = self._send(response)
        if unread_body:
            self._discard_unread_body()
        elapsed = time.perf_counter() - started
        app.metrics.observe(endpoint, response.status, elapsed)
        log_event(
            "info",
            "request",
            method=method,
            path=self.path[:2048],
            status=response.status,
            duration_ms=round(elapsed * 1000, 3),
            bytes_out=sent,
            remote=self.client_address[0],
        )

    def _respond(
        self, method: str, endpoint: str, handler: Callable[..., Response] | None, params: dict[str, str]
    ) -> Response:
        if handler is None:
            return error(404, f"no such endpoint: {urlsplit(self.path).path}")
        wanted = "POST" if endpoint == "infer" else "GET"
        if method != wanted:
            return Response(405, {"error": f"use {wanted} for this endpoint"}, headers={"Allow": wanted})
        return handler(read_body=self._read_body, **params)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise ClientError("chunked request bodies are not supported; send Content-Length", 411)
        raw_length = self.headers.get("Content-Length", "0")
        try:
            length = int(raw_length)
        except ValueError:
            raise ClientError(f"invalid Content-Length {raw_length!r}") from None
        if length < 0:
            raise ClientError(f"invalid Content-Length {raw_length!r}")
        limit = self.server.app.max_body_bytes
        if length > limit:
            raise ClientError(f"request body of {length} bytes exceeds the limit of {limit} bytes", 413)
        body = self.rfile.read(length)
        self._body_consumed = True
        return body

    def _discard_unread_body(self) -> None:
        # Closing a socket with unread input sends a reset, and the client may lose our answer (a 413):
        # stop writing, then read and drop what the client still sends, for a bounded time and size.
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(LINGER_SECONDS)
            deadline = time.monotonic() + LINGER_SECONDS
            remaining = LINGER_MAX_BYTES
            while remaining > 0 and time.monotonic() < deadline:
                chunk = self.rfile.read1(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            pass

    def _send(self, response: Response) -> int:
        if response.content_type.startswith("application/json"):
            body = json.dumps(response.payload, separators=(",", ":")).encode("utf-8")
        else:
            body = str(response.payload).encode("utf-8")
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        return len(body)


class SlipwayServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # probes must not be refused while inference requests queue

    def __init__(self, address: tuple[str, int], app: App) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        super().__init__(address, Handler)


# ---------------------------------------------------------------------------------------------------
# Entry point


def healthcheck() -> int:
    port = os.environ.get("PORT", "8080")
    url = f"http://127.0.0.1:{port}/v2/health/ready"
    try:
        with urllib.request.urlopen(url, timeout=3) as answer:
            return 0 if answer.status == 200 else 1
    except (urllib.error.URLError, OSError):
        return 1


def read_int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be an integer, got {raw!r}") from None


def main(argv: list[str]) -> int:
    if "--healthcheck" in argv:
        return healthcheck()
    model_dir = Path(os.environ.get("SLIPWAY_MODEL_DIR") or DEFAULT_MODEL_DIR)
    try:
        config = load_config(model_dir)
        port = read_int_env("PORT", 8080)
        max_body = read_int_env("SLIPWAY_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)
    except ConfigError as exc:
        log_event("error", "invalid_config", error=str(exc))
        return 2
    host = os.environ.get("SLIPWAY_HOST") or "0.0.0.0"  # noqa: S104 - a container must listen on all interfaces
    app = App(config, model_dir, max_body)
    try:
        server = SlipwayServer((host, port), app)
    except OSError as exc:
        log_event("error", "listen_failed", host=host, port=port, error=str(exc))
        return 2
    log_event(
        "info",
        "listening",
        host=host,
        port=server.server_address[1],
        model=config.name,
        version=config.version,
        framework=config.framework,
    )
    threading.Thread(target=app.load, name="model-loader", daemon=True).start()

    def stop(signum: int, _frame: Any) -> None:
        log_event("info", "shutdown_requested", signal=signal.Signals(signum).name)
        app.shutting_down = True
        # shutdown() waits for serve_forever() to return, so it must not run on serve_forever's thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever(poll_interval=0.2)
    drained = app.drain(DRAIN_SECONDS)
    server.server_close()
    log_event("info", "stopped", drained=drained)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
