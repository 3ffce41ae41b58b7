"""`python -m serving.probe`: the build's smoke test, run inside the image it checks (no network needed).

Waits for the server on 127.0.0.1:PORT to be ready, then sends it one inference request made from the
signature in slipway.json (zeros of each input's datatype, every -1 dimension taken as 1). Prints a JSON
line every half second while it waits, so whoever runs it can stop it, and a last one with the verdict:
{"event": "result", "ok": ..., "stage": "load" | "ready" | "infer", "error": ..., "seconds": ...}.
Exits 0 when the model loaded and answered, 1 otherwise.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from serving.config import DEFAULT_MODEL_DIR, ModelConfig, load_config
from serving.contract import LOAD_FAILED_STATE, READY_PATH
from serving.errors import ConfigError

ZEROS: dict[str, object] = {"BOOL": False, "BYTES": "", "FP16": 0.0, "FP32": 0.0, "FP64": 0.0}
WAIT_REPORT_SECONDS = 0.5
POLL_SECONDS = 0.05


def call(port: int, method: str, path: str, body: object = None, timeout: float = 10) -> tuple[int, Any]:
    """One request to the local server (http.client: no proxy settings apply to loopback here)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body)
        connection.request(method, path, data, {"Content-Type": "application/json"})
        answer = connection.getresponse()
        raw = answer.read()
    finally:
        connection.close()
    try:
        return answer.status, json.loads(raw)
    except ValueError:
        return answer.status, {"error": raw[:500].decode("utf-8", "replace")}


def request_from_signature(config: ModelConfig) -> dict[str, Any] | None:
    """An inference request the model's signature says it takes, or None without a complete signature."""
    if not config.inputs or any(not spec.datatype for spec in config.inputs):
        return None
    inputs = []
    for spec in config.inputs:
        shape = [1 if dimension == -1 else dimension for dimension in spec.shape]
        zero = ZEROS.get(spec.datatype, 0)
        inputs.append({"name": spec.name, "datatype": spec.datatype, "shape": shape, "data": [zero] * math.prod(shape)})
    return {"id": "slipway-smoke-test", "inputs": inputs}


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def probe(config: ModelConfig, port: int, timeout: float) -> dict[str, Any]:
    started = time.monotonic()
    reported = started
    reason = "no answer yet"
    while True:
        try:
            status, body = call(port, "GET", READY_PATH, timeout=2)
        except OSError as exc:
            status, body = 0, {"error": f"no answer yet ({type(exc).__name__})"}
        if status == 200:
            break
        reason = str(body.get("error", body)) if isinstance(body, dict) else str(body)
        if status == 503 and isinstance(body, dict) and body.get("state") == LOAD_FAILED_STATE:
            return {"ok": False, "stage": "load", "error": reason}
        now = time.monotonic()
        if now - started > timeout:
            return {"ok": False, "stage": "ready", "error": f"not ready after {timeout:g} s: {reason}"}
        if now - reported >= WAIT_REPORT_SECONDS:
            reported = now
            emit("waiting", reason=reason, seconds=round(now - started, 2))
        time.sleep(POLL_SECONDS)
    request = request_from_signature(config)
    if request is None:
        return {"ok": True, "stage": "ready", "note": "no complete signature: readiness only"}
    status, body = call(port, "POST", f"/v2/models/{config.name}/infer", request, timeout=max(10.0, timeout))
    if status != 200:
        error = body.get("error", body) if isinstance(body, dict) else body
        return {"ok": False, "stage": "infer", "error": f"{status}: {error}", "request": request}
    outputs = [output.get("name") for output in body.get("outputs", [])] if isinstance(body, dict) else []
    return {"ok": True, "stage": "infer", "outputs": outputs}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.probe", description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for readiness")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        config = load_config(Path(os.environ.get("SLIPWAY_MODEL_DIR") or DEFAULT_MODEL_DIR))
        port = int(os.environ.get("PORT") or 8080)
    except (ConfigError, ValueError) as exc:
        result: dict[str, Any] = {"ok": False, "stage": "load", "error": str(exc)}
    else:
        result = probe(config, port, args.timeout)
    emit("result", **result, seconds=round(time.monotonic() - started, 3))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
