"""Prometheus text exposition of request counts, durations, readiness and worker restarts.

Counters live in anonymous shared memory made before the workers are forked: each process adds to its
own row and /metrics, answered by any worker, sums the rows, so a scrape sees the whole server.
"""

from __future__ import annotations

import bisect
import mmap
import threading
from http import HTTPStatus

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CODES = tuple(int(status) for status in HTTPStatus)
_CODE_INDEX = {code: index for index, code in enumerate(CODES)}
_DOUBLE = 8


class Metrics:
    def __init__(self, rows: int, endpoints: tuple[str, ...]) -> None:
        self.endpoints = endpoints
        self._endpoint_index = {name: index for index, name in enumerate(endpoints)}
        # One row: request counts [endpoint x code], histograms [endpoint x (buckets, +Inf, sum, count)],
        # then worker restarts.
        self._hist_width = len(BUCKETS) + 3
        self._hist_start = len(endpoints) * len(CODES)
        self._restarts = self._hist_start + len(endpoints) * self._hist_width
        self._width = self._restarts + 1
        self._rows = rows
        self._memory = mmap.mmap(-1, rows * self._width * _DOUBLE)
        self._values = memoryview(self._memory).cast("d")
        self._row = 0
        self._lock = threading.Lock()

    def attach(self, row: int) -> None:
        """This process adds to `row` from now on (called in each worker after the fork)."""
        self._row = row
        self._lock = threading.Lock()

    def observe(self, endpoint: str, code: int, seconds: float) -> None:
        endpoint_index = self._endpoint_index[endpoint]
        base = self._row * self._width
        count_at = base + endpoint_index * len(CODES) + _CODE_INDEX.get(code, _CODE_INDEX[500])
        hist_at = base + self._hist_start + endpoint_index * self._hist_width
        values = self._values
        with self._lock:
            values[count_at] += 1
            values[hist_at + bisect.bisect_left(BUCKETS, seconds)] += 1  # past the last bound: +Inf
            values[hist_at + len(BUCKETS) + 1] += seconds
            values[hist_at + len(BUCKETS) + 2] += 1

    def worker_restarted(self) -> None:
        with self._lock:
            self._values[self._row * self._width + self._restarts] += 1

    def _totals(self) -> list[float]:
        totals = [0.0] * self._width
        for row in range(self._rows):
            start = row * self._width
            for index, value in enumerate(self._values[start : start + self._width]):
                if value:
                    totals[index] += value
        return totals

    def render(self, *, model_ready: bool, workers: int, workers_ready: int) -> str:
        totals = self._totals()
        lines = [
            "# HELP slipway_requests_total HTTP requests answered, by endpoint and status code.",
            "# TYPE slipway_requests_total counter",
        ]
        errors = 0
        for endpoint_index, endpoint in enumerate(self.endpoints):
            for code_index, code in enumerate(CODES):
                count = int(totals[endpoint_index * len(CODES) + code_index])
                if count:
                    lines.append(f'slipway_requests_total{{endpoint="{endpoint}",code="{code}"}} {count}')
                    errors += count if code >= 400 else 0
        lines += [
            "# HELP slipway_request_errors_total HTTP requests answered with a status of 400 or more.",
            "# TYPE slipway_request_errors_total counter",
            f"slipway_request_errors_total {errors}",
            "# HELP slipway_request_duration_seconds Time to answer an HTTP request.",
            "# TYPE slipway_request_duration_seconds histogram",
        ]
        name = "slipway_request_duration_seconds"
        for endpoint_index, endpoint in enumerate(self.endpoints):
            start = self._hist_start + endpoint_index * self._hist_width
            hist = totals[start : start + self._hist_width]
            if not hist[-1]:
                continue
            label = f'endpoint="{endpoint}"'
            cumulative = 0.0
            for bound, observed in zip([*map(str, BUCKETS), "+Inf"], hist[: len(BUCKETS) + 1], strict=True):
                cumulative += observed
                lines.append(f'{name}_bucket{{{label},le="{bound}"}} {int(cumulative)}')
            lines.append(f"{name}_sum{{{label}}} {hist[-2]:.6f}")
            lines.append(f"{name}_count{{{label}}} {int(hist[-1])}")
        lines += [
            "# HELP slipway_model_ready 1 when every worker has loaded the model and can answer inference requests.",
            "# TYPE slipway_model_ready gauge",
            f"slipway_model_ready {1 if model_ready else 0}",
            "# HELP slipway_workers Worker processes this server runs.",
            "# TYPE slipway_workers gauge",
            f"slipway_workers {workers}",
            "# HELP slipway_workers_ready Worker processes that have loaded the model.",
            "# TYPE slipway_workers_ready gauge",
            f"slipway_workers_ready {workers_ready}",
            "# HELP slipway_worker_restarts_total Worker processes that died and were started again.",
            "# TYPE slipway_worker_restarts_total counter",
            f"slipway_worker_restarts_total {int(totals[self._restarts])}",
        ]
        return "\n".join(lines) + "\n"
