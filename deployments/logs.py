"""Step and engine output, stored line by line with a sequence number as it arrives.

One writer per build or rollout (the worker running it) assigns the numbers, so readers can tail
with `after=<seq>` and see every line exactly once, in order. Readers only ever load windows.
"""

import re
import time
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from deployments.supervision import with_database

# Control characters other than the ESC that starts colour codes would garble a page or a terminal.
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f]")
MAX_LINE_LENGTH = 8000
MAX_WINDOW = 5000
# Which lines are errors: the red lines of the log viewer and where "Jump to first error" goes. One
# rule, read by Python for each line served and by the database (case-insensitive regex, the same
# text in both dialects) to find the first error of a long log. Whole words only, or an exception's
# name before its message ("ValueError: …"): a line that merely names an exception class, such as the
# readiness wait's "no answer yet (ConnectionError)", is not an error.
ERROR_LINE_PATTERN = (
    r"(^|[^a-z])(error|failed|failure|fatal|traceback|exception|panic)([^a-z]|$)|[a-z](error|exception):"
)
_ERROR_LINE = re.compile(ERROR_LINE_PATTERN, re.IGNORECASE)


def is_error_line(text: str) -> bool:
    return _ERROR_LINE.search(text) is not None


def clean_line(text: str) -> str:
    text = CONTROL_CHARS.sub("", text.rstrip("\r\n"))
    return text if len(text) <= MAX_LINE_LENGTH else text[:MAX_LINE_LENGTH] + " …[line truncated]"


class LogWriter:
    """Buffers lines and writes them in batches: a 100,000-line log is a few hundred INSERTs."""

    def __init__(
        self,
        line_model: type[Any],
        parent: Any,
        *,
        flush_every: float = 0.3,
        batch: int = 500,
        seq: int | None = None,
    ):
        """`seq`: the parent's log_line_count, when the caller has just read the row (else it is read here)."""
        self.line_model = line_model
        self.parent = parent
        self.parent_field = line_model._meta.get_field(self._parent_field_name()).name
        if seq is None:
            seq = type(parent).objects.filter(pk=parent.pk).values_list("log_line_count", flat=True).get()
        self.seq = seq
        self.buffer: list = []
        self.flush_every = flush_every
        self.batch = batch
        self.last_flush = time.monotonic()
        # How long a flush waits for a database that went away (None: SLIPWAY_DATABASE_RETRY_LIMIT).
        self.patience: float | None = None

    def _parent_field_name(self) -> str:
        for field in self.line_model._meta.fields:
            if field.is_relation and field.related_model is type(self.parent):
                return field.name
        raise LookupError(f"{self.line_model.__name__} has no foreign key to {type(self.parent).__name__}")

    def write(self, text: str) -> None:
        for line in str(text).splitlines() or [""]:
            self.seq += 1
            self.buffer.append(self.line_model(**{self.parent_field: self.parent}, seq=self.seq, text=clean_line(line)))
        if len(self.buffer) >= self.batch or time.monotonic() - self.last_flush >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if self.buffer:
            # Runners write their logs: a database that is away for a few seconds delays the lines.
            with_database(self._store, limit=self.patience)

    def _store(self) -> None:
        lines = self.buffer
        with transaction.atomic():
            self.line_model.objects.bulk_create(lines)
            type(self.parent).objects.filter(pk=self.parent.pk).update(
                log_line_count=F("log_line_count") + len(lines), heartbeat_at=timezone.now()
            )
        # Only once they are stored: a flush that failed (the database went away) can be repeated.
        self.buffer = self.buffer[len(lines) :]

    def __call__(self, text: str) -> None:
        self.write(text)


def read_window(
    lines,
    *,
    after: int | None = None,
    before: int | None = None,
    tail: int | None = None,
    search: str = "",
    errors: bool = False,
    limit: int = 1000,
) -> list[dict]:
    """A window of a log, never the whole of it. `lines` is the parent's line queryset. Each line says
    whether it is an error (`is_error_line`); `errors` returns only those, from `after` on."""
    limit = max(1, min(limit, MAX_WINDOW))

    def served(rows):
        return [{"seq": seq, "text": text, "error": is_error_line(text)} for seq, text in rows]

    if errors:
        found = lines.filter(seq__gt=after or 0, text__iregex=ERROR_LINE_PATTERN).order_by("seq")[:limit]
        return served(found.values_list("seq", "text"))
    if search:
        found = lines.filter(seq__gt=after or 0, text__icontains=search).order_by("seq")[:limit]
        return served(found.values_list("seq", "text"))
    if tail is not None:
        rows = lines.order_by("-seq")[: max(1, min(tail, MAX_WINDOW))]
        return served(reversed(list(rows.values_list("seq", "text"))))
    if before is not None:
        rows = lines.filter(seq__lt=before).order_by("-seq")[:limit]
        return served(reversed(list(rows.values_list("seq", "text"))))
    rows = lines.filter(seq__gt=after or 0).order_by("seq")[:limit]
    return served(rows.values_list("seq", "text"))


def log_response(parent, lines, params, *, finished_states) -> dict:
    """The JSON a log tail returns. `finished` is read before the lines, so it is never early:
    a writer stores all its lines before it stores its final state."""
    state = type(parent).objects.filter(pk=parent.pk).values_list("state", flat=True).get()
    finished = state in finished_states

    def number(name):
        value = params.get(name)
        if value in (None, ""):
            return None
        try:
            return max(0, int(value))
        except ValueError:
            raise ValueError(f"'{name}' must be a whole number, got {value!r}") from None

    after, before, tail, limit = number("after"), number("before"), number("tail"), number("limit") or 1000
    search = (params.get("search") or "").strip()
    errors = params.get("errors") in ("1", "true")
    window = read_window(lines, after=after, before=before, tail=tail, search=search, errors=errors, limit=limit)
    next_after = window[-1]["seq"] if window else (after or 0)
    if before is None and tail is None and not search and not errors:
        # A full window may have more behind it: not finished until a short read.
        finished = finished and len(window) < min(limit, MAX_WINDOW)
    return {"lines": window, "next_after": next_after, "finished": finished, "state": state}
