"""Log lines, plain or JSON (SLIPWAY_LOG_FORMAT), each carrying the id of the request it serves.

The request id is set by `config.middleware.RequestIdMiddleware` for a web request, travels with
every Celery task that request queues (`config.celery`), and is set again around the task in the
worker, so a build's log lines and the API call that started it share one id.
"""

import contextvars
import json
import logging
import re
import uuid
from datetime import UTC, datetime

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("slipway_request_id", default="")

# What a client may send as its own X-Request-ID: short, printable, safe in a header and a log line.
# The audit trail keeps 64 characters of it.
CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+=-]{0,63}$")
FORMATS = ("plain", "json")

# Fields a call may pass in `extra=` that JSON lines keep (the request log line uses them).
EXTRA_FIELDS = ("method", "path", "route", "status", "duration_ms", "task", "task_id")


def new_request_id() -> str:
    return uuid.uuid4().hex


def accept_request_id(value: str | None) -> str:
    """The client's id when it is a sensible one, else a new one."""
    if value and CLIENT_REQUEST_ID.match(value):
        return value
    return new_request_id()


def current_request_id() -> str:
    return request_id_var.get()


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            record.request_id = request_id_var.get()
        return True


class RefusalLoggedFilter(logging.Filter):
    """Leaves out django.request's line for a 403 whose refusal was logged already."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        return not (getattr(record, "status_code", None) == 403 and getattr(request, "refusal_logged", False))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, and the known extras."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "") or request_id_var.get(),
        }
        for field in EXTRA_FIELDS:
            if hasattr(record, field):
                line[field] = getattr(record, field)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


def logging_config(*, log_format: str, level: str) -> dict:
    """Django's LOGGING for the given format; gunicorn's config uses the same formatters."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": "config.logs.RequestIdFilter"},
            "refusal_logged": {"()": "config.logs.RefusalLoggedFilter"},
        },
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
            "json": {"()": "config.logs.JsonFormatter"},
        },
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": log_format, "filters": ["request_id"]},
        },
        "root": {"handlers": ["console"], "level": level},
        # Two INFO lines per SSH connection to an ssh:// Docker host (the docker SDK mutes them the same way);
        # a refusal reaches the rollout's log and the connection test as Slipway's own sentence.
        "loggers": {"paramiko": {"level": "WARNING"}, "django.request": {"filters": ["refusal_logged"]}},
    }
