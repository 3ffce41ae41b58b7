"""CSV and JSON Lines exports of the audit trail, streamed: a million rows never sit in memory."""

import csv
import json
from collections.abc import Iterable, Iterator

from django.core.serializers.json import DjangoJSONEncoder

from audit.models import AuditEvent
from audit.selectors import sees_client

COLUMNS = [
    "id",
    "created_at",
    "actor",
    "token_name",
    "action",
    "outcome",
    "object_type",
    "object_id",
    "object_repr",
    "team",
    "environment",
    "reason",
    "flagged",
    "reviewed",
    "before",
    "after",
    "ip_address",
    "user_agent",
    "request_id",
]
CHUNK_SIZE = 2000
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def as_record(event: AuditEvent, *, viewer) -> dict:
    client = sees_client(viewer, event)
    return {
        "id": event.pk,
        "created_at": event.created_at.isoformat(),
        "actor": event.actor_username,
        "token_name": event.token_name,
        "action": event.action,
        "outcome": event.outcome,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "object_repr": event.object_repr,
        "team": event.team.slug if event.team else None,
        "environment": event.environment,
        "reason": event.reason,
        "flagged": event.flagged,
        "reviewed": bool(getattr(event, "reviewed", False)),
        "before": event.before,
        "after": event.after,
        "ip_address": event.ip_address if client else None,
        "user_agent": event.user_agent if client else "",
        "request_id": event.request_id,
    }


def _rows(events, viewer) -> Iterator[dict]:
    for event in events.iterator(chunk_size=CHUNK_SIZE):
        yield as_record(event, viewer=viewer)


def _batched(lines: Iterable[str], size: int = 500) -> Iterator[str]:
    batch = []
    for line in lines:
        batch.append(line)
        if len(batch) >= size:
            yield "".join(batch)
            batch = []
    if batch:
        yield "".join(batch)


class _Echo:
    def write(self, value):
        return value


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, cls=DjangoJSONEncoder)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_lines(events, *, viewer) -> Iterator[str]:
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(COLUMNS)
        for row in _rows(events, viewer):
            yield writer.writerow([_cell(row[column]) for column in COLUMNS])

    return _batched(lines())


def jsonl_lines(events, *, viewer) -> Iterator[str]:
    return _batched(json.dumps(row, ensure_ascii=False, cls=DjangoJSONEncoder) + "\n" for row in _rows(events, viewer))
