"""One JSON object per line on stdout: the access log, lifecycle events and errors alike."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from typing import Any

_lock = threading.Lock()


def log_event(level: str, event: str, **fields: Any) -> None:
    record = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "level": level, "event": event}
    record.update(fields)
    line = (json.dumps(record, default=str) + "\n").encode("utf-8")
    # One write per line: worker processes share stdout, and a line written whole is not interleaved.
    with _lock:
        view = memoryview(line)
        while view:
            view = view[os.write(1, view) :]
