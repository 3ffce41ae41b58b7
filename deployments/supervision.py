"""Keeping long work honest: enqueueing that cannot lose a row, heartbeats from the worker, and a
reaper for work whose worker died or whose message never arrived.

Builds and rollouts share this: both are enqueued after their row commits, claimed by one worker,
report a heartbeat while they run, and are failed with a clear reason when the heartbeat stops, so
nothing stays "queued" or "running" forever. Webhook deliveries share the enqueueing and the requeue.
"""

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from celery import Task
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnavailable

logger = logging.getLogger(__name__)

# A Build or a Rollout (and their log line models): rows with a state, heartbeat_at, worker,
# failure_reason and log_line_count, which no common base class declares.
Work = Any
T = TypeVar("T")

# What a lost database connection raises: the server stopped, restarted, or cannot be reached.
DATABASE_ERRORS = (OperationalError, InterfaceError)


class DatabaseUnavailable(Exception):
    """The database stayed unreachable for longer than SLIPWAY_DATABASE_RETRY_LIMIT; the message is the
    reason the work is failed with (once the database is back to record it)."""


def with_database(call: Callable[[], T], *, limit: float | None = None) -> T:
    """`call()`, retried with backoff while the database is unreachable (a restart, a failover, a few
    seconds of network trouble), for up to `limit` seconds (SLIPWAY_DATABASE_RETRY_LIMIT); then
    DatabaseUnavailable. Only for calls outside a transaction, which can be repeated as a whole."""
    limit = settings.DATABASE_RETRY_LIMIT if limit is None else limit
    started = time.monotonic()
    delay = 0.25
    while True:
        try:
            return call()
        except DATABASE_ERRORS as exc:
            if connection.in_atomic_block:
                raise
            waited = time.monotonic() - started
            if waited >= limit:
                logger.error("database unavailable for %.1f s, giving up: %s", waited, str(exc).strip())
                raise DatabaseUnavailable(
                    f"The database was unavailable for {waited:.0f} s, longer than a worker waits for it "
                    f"(SLIPWAY_DATABASE_RETRY_LIMIT, {limit:g} s)."
                ) from None
            logger.warning("database unavailable for %.1f s, retrying: %s", waited, str(exc).strip())
            forget_connection()
            time.sleep(min(delay, max(0.05, limit - waited)))
            delay = min(delay * 2, 5.0)


def ending_patience() -> float:
    """How long a runner waits for the database to record how its work ended: far longer than a step
    waits, since the database is the only place the true reason can go (the worker's heartbeat resumes
    as soon as it is back, so the reaper does not take the work meanwhile)."""
    return settings.DATABASE_RETRY_LIMIT * 10


def forget_connection() -> None:
    """Drop a broken connection, so that the next query opens a new one."""
    try:
        connection.close()
    except DATABASE_ERRORS:
        connection.connection = None


def enqueue(task: Task, *args: Any) -> bool:
    """Send the task now; False when the broker cannot take it (the row stays; it is enqueued again later)."""
    try:
        task.delay(*args)
    except (BrokerUnavailable, OSError) as exc:
        logger.warning("could not enqueue %s%s, it stays queued and is enqueued again later: %s", task.name, args, exc)
        return False
    return True


def enqueue_on_commit(work: Work, task: Task, *args: Any) -> None:
    """Enqueue `task(*args)` once the transaction commits, never failing the request that saved `work`.

    The row has committed by then: a broker that is down must neither undo it nor turn the answer into
    a 500. `work.queued_for_later` tells the caller (an API view answers 202 instead of 201).
    """
    work.queued_for_later = False

    def send() -> None:
        if not enqueue(task, *args):
            work.queued_for_later = True

    transaction.on_commit(send, robust=True)


class Heartbeat(threading.Thread):
    """Tells the reaper the worker is alive, even while a step prints nothing for minutes."""

    def __init__(self, model: type[Work], pk: int, running_states: list[str], seconds: float):
        super().__init__(name=f"heartbeat-{model.__name__}-{pk}", daemon=True)
        self.model, self.pk, self.running_states, self.seconds = model, pk, running_states, seconds
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(self.seconds):
                try:
                    self.model.objects.filter(pk=self.pk, state__in=self.running_states).update(
                        heartbeat_at=timezone.now()
                    )
                except DATABASE_ERRORS:  # the database is away: beat again as soon as it is back
                    forget_connection()
        finally:
            forget_connection()

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


def requeue(waiting: QuerySet, task: Task, *, since: str = "created_at") -> int:
    """Enqueue again the rows of `waiting` that have waited (from the time in their field `since`) for
    longer than SLIPWAY_BUILD_REQUEUE_AFTER: their message may have died with the broker, never reached
    it, or died with the worker that held it. A message that did arrive twice is harmless: the claim is a
    conditional update, and the second one finds nothing left to do."""
    cutoff = timezone.now() - timedelta(seconds=settings.BUILD_REQUEUE_AFTER)
    pks = waiting.filter(**{f"{since}__lt": cutoff}).values_list("pk", flat=True)
    return sum(1 for pk in pks if enqueue(task, pk))


def expire_queued(
    model: type[Work], line_model: type[Work], *, queued_state: str, failed_state: str, what: str
) -> list[Work]:
    """Fail the work that no worker started within SLIPWAY_QUEUE_EXPIRE_AFTER seconds, so that it
    cannot block its version or its environment for ever; the reason says what to look at."""
    limit = settings.QUEUE_EXPIRE_AFTER
    now = timezone.now()
    expired = []
    for row in model.objects.filter(state=queued_state, created_at__lt=now - timedelta(seconds=limit)):
        reason = f"No worker started this {what} within {limit} s of it being queued (is a worker running?)."
        if model.objects.filter(pk=row.pk, state=queued_state).update(
            state=failed_state, failure_reason=reason, finished_at=now
        ):
            append_line(row, line_model, f"ERROR: {reason}")
            logger.warning("%s %s: never started, failed after %s s in the queue", what, row.pk, limit)
            row.state, row.failure_reason = failed_state, reason
            expired.append(row)
    return expired
