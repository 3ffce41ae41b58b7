"""The Open Inference Protocol v2 for one model: routing and answers, independent of the HTTP plumbing."""

from __future__ import annotations

import json
import os
import re
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from serving.board import FAILED, LOADING, READY, Board
from serving.codec import InputTensor, decode_inputs, encode_output, shape_matches
from serving.config import ModelConfig, Settings, threads_per_worker
from serving.contract import LIVE_PATH, LOAD_FAILED_STATE, LOADING_STATE, READY_PATH, STOPPING_STATE
from serving.errors import ClientError
from serving.loaders import PLATFORMS, LoadedModel, load_model
from serving.logs import log_event
from serving.metrics import Metrics

SERVER_NAME = "slipway"
SERVER_VERSION = "1.0.0"
NOT_LOADED = "model not loaded yet"


@dataclass
class Response:
    status: int
    payload: Any
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def error(status: int, message: str) -> Response:
    return Response(status, {"error": message})


Handler = Callable[..., Response]
BodyReader = Callable[[], bytes]

MODEL_ROUTE = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<action>/ready|/infer)?/?$")
SIMPLE_ROUTES = {
    "/v2": "server_metadata",
    "/v2/": "server_metadata",
    LIVE_PATH: "health_live",
    READY_PATH: "health_ready",
    "/metrics": "metrics",
}
MODEL_ACTIONS = {None: "model_metadata", "/ready": "model_ready", "/infer": "infer"}
ENDPOINTS = (*dict.fromkeys(SIMPLE_ROUTES.values()), *MODEL_ACTIONS.values(), "unknown")


class App:
    """One model's protocol, shared by every worker process: forked with them, it holds their board too."""

    def __init__(self, config: ModelConfig, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.board = Board(settings.workers)
        self.metrics = Metrics(self.board.slots, ENDPOINTS)
        self.slot = self.board.supervisor
        self.model: LoadedModel | None = None
        self.shutting_down = False
        self._inference_slots = threading.BoundedSemaphore(settings.max_concurrency)
        self._decoding = threading.Lock()
        self._inflight = 0
        self._inflight_changed = threading.Condition()

    # -- lifecycle

    def attach(self, slot: int) -> None:
        """Makes this process the worker in `slot` (called right after the fork)."""
        self.slot = slot
        self.metrics.attach(slot)
        self._inference_slots = threading.BoundedSemaphore(self.settings.max_concurrency)
        self._decoding = threading.Lock()
        self._inflight = 0
        self._inflight_changed = threading.Condition()
        self.board.set(slot, READY if self.model is not None else LOADING, os.getpid())

    def load(self) -> bool:
        started = time.monotonic()
        try:
            model = load_model(self.config, self.settings.model_dir, threads=threads_per_worker(self.settings.workers))
        except BaseException as exc:  # user code may raise anything (even SystemExit); readiness must say so
            reason = f"model failed to load: {type(exc).__name__}: {exc}"
            # Written before readiness reports it: whoever is told reads the explanation in the log.
            log_event("error", "model_load_failed", error=reason, traceback=traceback.format_exc())
            self.board.set(self.slot, FAILED, os.getpid(), reason)
            return False
        self.model = model
        self.board.set(self.slot, READY, os.getpid())
        log_event(
            "info",
            "model_loaded",
            model=self.config.name,
            version=self.config.version,
            framework=self.config.framework,
            seconds=round(time.monotonic() - started, 3),
        )
        return True

    @property
    def ready(self) -> bool:
        return self.model is not None and not self.shutting_down and self.board.all_ready()

    def not_ready(self) -> tuple[str, str]:
        """(state, reason): "loading", "failed" (the model cannot load: the process will exit) or "stopping"."""
        if self.shutting_down:
            return STOPPING_STATE, "server is shutting down"
        failure = self.board.failure()
        if failure:
            return LOAD_FAILED_STATE, failure
        if self.model is None:
            return LOADING_STATE, NOT_LOADED
        return LOADING_STATE, f"{self.board.ready_count()} of {self.board.workers} workers have loaded the model"

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

    def route(self, method: str, path: str) -> tuple[str, Handler | None, dict[str, str]]:
        """Returns (endpoint label for metrics, handler or None for 404, path parameters)."""
        if path in SIMPLE_ROUTES:
            endpoint = SIMPLE_ROUTES[path]
            handler: Handler = getattr(self, f"handle_{endpoint}")
            return endpoint, handler, {}
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
        state, reason = self.not_ready()
        return Response(503, {"error": reason, "state": state})

    # -- handlers (GET ones ignore the body reader)

    def handle_server_metadata(self, **_: Any) -> Response:
        return Response(200, {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": []})

    def handle_health_live(self, **_: Any) -> Response:
        return Response(200, {"live": True})

    def handle_health_ready(self, **_: Any) -> Response:
        return Response(200, {"ready": True}) if self.ready else self._not_ready()

    def handle_metrics(self, **_: Any) -> Response:
        text = self.metrics.render(
            model_ready=self.ready, workers=self.board.workers, workers_ready=self.board.ready_count()
        )
        return Response(200, text, "text/plain; version=0.0.4; charset=utf-8")

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

    def handle_infer(self, name: str, version: str, read_body: BodyReader) -> Response:
        not_found = self._model_not_found(name, version)
        if not_found:
            return not_found
        model = self.model
        if model is None or self.shutting_down:
            return self._not_ready()
        # Decoding and predicting hold memory and the CPU: a bounded number at once, the rest wait a
        # little, then are told to come back rather than piling up.
        if not self._inference_slots.acquire(timeout=self.settings.queue_timeout):
            raise self._busy()
        try:
            return self._infer(model, read_body())
        finally:
            self._inference_slots.release()

    def _infer(self, model: LoadedModel, body: bytes) -> Response:
        # Parsed JSON takes up to about 25 times the size of its body. The interpreter lock lets one
        # thread parse at a time anyway, so one request at a time parses and decodes, and its JSON
        # objects are gone (only arrays are left) before the next one starts.
        if not self._decoding.acquire(timeout=self.settings.queue_timeout):
            raise self._busy()
        try:
            request = parse_infer_request(body)
            inputs = decode_inputs(request.pop("inputs"), self.settings.limits)
            self._check_inputs(inputs)
            requested = requested_outputs(request, model.output_names())
        finally:
            self._decoding.release()
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

    def _busy(self) -> ClientError:
        return ClientError(
            f"server busy: {self.settings.max_concurrency} inference requests already running; retry later",
            503,
            headers={"Retry-After": "1"},
        )

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
    names: list[str] = [o["name"] for o in raw]
    if available is not None:
        unknown = [name for name in names if name not in available]
        if unknown:
            raise ClientError(f"unknown output(s) {unknown}; the model can produce {available}")
    return names or None
