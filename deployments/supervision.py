"""Keeping long work honest: heartbeats from the worker, and a reaper for work whose worker died.

Builds and rollouts share this: both are claimed by one worker, report a heartbeat while they run,
and are failed with a clear reason when the heartbeat stops, so nothing stays "running" forever.
"""

import logging
import threading
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

# A Build or a Rollout (and their log line models): rows with a state, heartbeat_at, worker,
# failure_reason and log_line_count, which no common base class declares.
Work = Any


class Heartbeat(threading.Thread):
    """Tells the reaper the worker is alive, even while a step prints nothing for minutes."""

    def __init__(self, model: type[Work], pk: int, running_states: list[str], seconds: float):
        super().__init__(name=f"heartbeat-{model.__name__}-{pk}", daemon=True)
        self.model, self.pk, self.running_states, self.seconds = model, pk, running_states, seconds
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(self.seconds):
                self.model.objects.filter(pk=self.pk, state__in=self.running_states).update(heartbeat_at=timezone.now())
        finally:
            connection.close()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stopped.set()
        self.join(timeout=5)


def append_line(parent: Work, line_model: type[Work], text: str) -> None:
    """A log line from outside the parent's own writer (cancel, reaper), numbered under a row lock."""
    parent_model = type(parent)
    field = next(f.name for f in line_model._meta.fields if f.is_relation and f.related_model is parent_model)
    with transaction.atomic():
        seq = parent_model.objects.select_for_update().only("log_line_count").get(pk=parent.pk).log_line_count + 1
        line_model.objects.create(**{field: parent}, seq=seq, text=text)
        parent_model.objects.filter(pk=parent.pk).update(log_line_count=seq)


def reap_stale(
    model: type[Work],
    line_model: type[Work],
    *,
    running_states: list[str],
    failed_state: str,
    stale_after: int,
    what: str,
) -> list[Work]:
    """Fail the running rows whose heartbeat is older than `stale_after` seconds; returns them."""
    now = timezone.now()
    reaped = []
    for row in model.objects.filter(state__in=running_states, heartbeat_at__lt=now - timedelta(seconds=stale_after)):
        reason = f"The worker running this {what} was lost (no heartbeat for {stale_after} s)."
        # Conditional on the heartbeat read: a worker that just reported keeps its work.
        if model.objects.filter(pk=row.pk, state=row.state, heartbeat_at=row.heartbeat_at).update(
            state=failed_state, failure_reason=reason, finished_at=now
        ):
            append_line(row, line_model, f"ERROR: {reason}")
            logger.warning("%s %s: worker lost (was %s on %s)", what, row.pk, row.state, row.worker)
            row.state, row.failure_reason = failed_state, reason
            reaped.append(row)
    return reaped
