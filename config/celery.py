import contextvars
import logging.config
import os

from celery import Celery, signals
from django.conf import settings

from config.logs import current_request_id, request_id_var

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("slipway")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The id of the web request that queued a task travels in the message's headers and is set again
# around the task in the worker: the task's log lines carry it, and the tasks it queues pass it on.
REQUEST_ID_HEADER = "slipway_request_id"
_request_id_tokens: dict[str, contextvars.Token[str]] = {}


@signals.before_task_publish.connect
def _send_request_id(headers=None, **_):
    request_id = current_request_id()
    if request_id and headers is not None:
        headers.setdefault(REQUEST_ID_HEADER, request_id)


@signals.task_prerun.connect
def _adopt_request_id(task_id=None, task=None, **_):
    _request_id_tokens[task_id] = request_id_var.set(getattr(task.request, REQUEST_ID_HEADER, None) or "")


@signals.task_postrun.connect
def _after_task(task_id=None, task=None, retval=None, state=None, **_):
    # Imported here: this module loads with the settings, before the apps (and their models) are ready.
    from config import metrics  # noqa: PLC0415

    token = _request_id_tokens.pop(task_id, None)
    if token is not None:
        request_id_var.reset(token)
    if state == "SUCCESS":
        metrics.record_task_result(task.name, retval)


@signals.setup_logging.connect
def _configure_logging(**_):
    # Celery would put its own handlers and format on the root logger; Django's LOGGING (plain, or
    # JSON lines with request ids: SLIPWAY_LOG_FORMAT) is used instead, as in the web process.
    logging.config.dictConfig(settings.LOGGING)
