"""Gunicorn settings for the platform's web server (the image's entrypoint and `make run`).

- Metrics: every worker process counts the requests it serves into files in
  PROMETHEUS_MULTIPROC_DIR, and /metrics adds up all of them (prometheus_client's multiprocess
  mode). The folder is emptied when the server starts, and a dead worker's gauges are dropped.
- Logs: Django logs one line per request (with its request id), so gunicorn's own access log is
  off; gunicorn's messages use the same format as the application's (SLIPWAY_LOG_FORMAT).
"""

import os
import tempfile

from config.env import envchoice, envint
from config.logs import FORMATS, logging_config

# Set before any worker imports prometheus_client: the library picks its storage at import.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="slipway-metrics-")
metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]

accesslog = None

# How long an idle keep-alive connection stays open. Gunicorn's default, 2 s, is shorter than the
# pauses of scripts and browsers and than the idle timeout of the proxies in front (60 s for nginx
# and most load balancers): a request sent just as the server closed the connection came back as
# "connection reset by peer" (about one in fifty requests after a 2 s pause, benchmarks/load).
# Above the proxies' 60 s, the client side always closes first. Idle connections cost a file
# descriptor each in the worker's poller, not a thread.
keepalive = envint("SLIPWAY_KEEPALIVE_SECONDS", 75, minimum=1)
_format = envchoice("SLIPWAY_LOG_FORMAT", "plain", FORMATS)
_config = logging_config(log_format=_format, level=os.environ.get("SLIPWAY_LOG_LEVEL", "INFO"))
logconfig_dict = {
    **_config,
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
    },
}


def on_starting(server):
    # Counts left by an earlier server would be added to this one's.
    os.makedirs(metrics_dir, exist_ok=True)
    for name in os.listdir(metrics_dir):
        if name.endswith(".db"):
            os.remove(os.path.join(metrics_dir, name))


def child_exit(server, worker):
    # Not at the top: prometheus_client picks its storage when imported, after the folder is set above.
    from prometheus_client import multiprocess  # noqa: PLC0415

    multiprocess.mark_process_dead(worker.pid)


# Gunicorn's control socket defaults to one path per user (~/.gunicorn/gunicorn.ctl), so two servers
# on one machine (make run beside a test server) share it and the first to stop removes the other's.
# Slipway never uses it.
control_socket_disable = True

# A worker tells the arbiter it is alive by touching a file, between any two requests. On a disk that is
# a journal write, which a busy disk stalls (0.8 ms a touch on average while other builds wrote, 6 us
# when quiet); in memory it costs nothing, as gunicorn's documentation advises for containers.
if os.path.isdir("/dev/shm"):  # noqa: S108  gunicorn makes its own file there, with mkstemp
    worker_tmp_dir = "/dev/shm"  # noqa: S108
