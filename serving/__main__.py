"""`python -m serving`: serve the model in SLIPWAY_MODEL_DIR over the Open Inference Protocol v2 (REST).

Only the standard library and numpy are imported at start; the model's framework (scikit-learn,
onnxruntime or the user's ``model.py``) is imported by the loader thread once the socket listens, so
liveness answers at once and readiness turns 200 only after the model really loaded.

Environment: SLIPWAY_MODEL_DIR (default /opt/slipway/model, holds slipway.json), PORT (default 8080,
0 picks a free port), SLIPWAY_HOST (default 0.0.0.0), SLIPWAY_MAX_BODY_BYTES (default 64 MiB).
`python -m serving --healthcheck` exits 0 when the server on PORT is ready (the image's HEALTHCHECK).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType

from serving.config import DEFAULT_MODEL_DIR, load_config, read_int_env
from serving.errors import ConfigError
from serving.http import SlipwayServer
from serving.logs import log_event
from serving.protocol import App

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
DRAIN_SECONDS = 10.0


def healthcheck() -> int:
    port = os.environ.get("PORT", "8080")
    url = f"http://127.0.0.1:{port}/v2/health/ready"
    try:
        with urllib.request.urlopen(url, timeout=3) as answer:
            return 0 if answer.status == 200 else 1
    except (urllib.error.URLError, OSError):
        return 1


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

    def stop(signum: int, _frame: FrameType | None) -> None:
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
