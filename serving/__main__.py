"""`python -m serving`: serve the model in SLIPWAY_MODEL_DIR over the Open Inference Protocol v2 (REST).

Only the standard library and numpy are imported at start; the model's framework (scikit-learn,
onnxruntime or the user's ``model.py``) is imported when the model loads, after the socket listens, so
liveness answers at once and readiness turns 200 only once every worker has the model. Start-up time
is mostly that framework's import: nothing else is imported that serving does not use (the
healthcheck's HTTP client, for one, is imported by the healthcheck alone).
The environment variables are listed in serving/README.md.

Exit codes: 0 after SIGTERM or SIGINT; 2 for a configuration it cannot start with (slipway.json, an
environment variable, the port); 3 when the model cannot be loaded (readiness answers 503 with the
error for SLIPWAY_LOAD_FAILURE_GRACE seconds first, and the last log line names it).
`python -m serving --healthcheck` exits 0 when the server on PORT is ready (the image's HEALTHCHECK).
"""

from __future__ import annotations

import os
import sys

from serving.config import load_config, read_settings, threads_per_worker
from serving.contract import READY_PATH
from serving.errors import ConfigError
from serving.logs import log_event

EXIT_CONFIG = 2
# What OpenBLAS reads for its thread count, first found first; an operator's own setting wins.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")


def healthcheck() -> int:
    # Run every few seconds by the container engine: it imports the HTTP client only, not the server.
    from serving.probe import call  # the server itself never needs http.client

    try:
        status, _ = call(int(os.environ.get("PORT") or 8080), "GET", READY_PATH, timeout=3)
    except (OSError, ValueError):
        return 1
    return 0 if status == 200 else 1


def size_blas_threads(workers: int) -> None:
    """numpy's and SciPy's OpenBLAS each start a thread per CPU as they load, and those threads spin while
    the supervisor goes on importing, on the CPUs it would use. Each worker gets its share of the CPUs,
    as an ONNX session does: one thread when there is a worker per CPU."""
    if not any(os.environ.get(name) for name in BLAS_THREAD_VARIABLES):
        os.environ["OPENBLAS_NUM_THREADS"] = str(threads_per_worker(workers))


def main(argv: list[str]) -> int:
    if "--healthcheck" in argv:
        return healthcheck()
    return serve()


def serve() -> int:
    try:
        settings = read_settings()
        config = load_config(settings.model_dir)
    except ConfigError as exc:
        log_event("error", "invalid_config", error=str(exc))
        return EXIT_CONFIG
    size_blas_threads(settings.workers)  # before numpy loads OpenBLAS
    from serving.workers import Supervisor, listen  # numpy and the server: not for the healthcheck

    try:
        listener = listen(settings.host, settings.port)
    except OSError as exc:
        log_event("error", "listen_failed", host=settings.host, port=settings.port, error=str(exc))
        return EXIT_CONFIG
    log_event(
        "info",
        "listening",
        host=settings.host,
        port=listener.getsockname()[1],
        model=config.name,
        version=config.version,
        framework=config.framework,
        workers=settings.workers,
    )
    return Supervisor(config, settings, listener).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
