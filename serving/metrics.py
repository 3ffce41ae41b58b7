"""Prometheus text exposition of request counts, errors, durations and model readiness."""

from __future__ import annotations

import threading


class Metrics:
    BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, int], int] = {}
        self._errors = 0
        self._histograms: dict[str, list[float]] = {}  # endpoint -> bucket counts, then sum, then count

    def observe(self, endpoint: str, code: int, seconds: float) -> None:
        with self._lock:
            key = (endpoint, code)
            self._requests[key] = self._requests.get(key, 0) + 1
            if code >= 400:
                self._errors += 1
            hist = self._histograms.setdefault(endpoint, [0.0] * (len(self.BUCKETS) + 2))
            for index, bound in enumerate(self.BUCKETS):
                if seconds <= bound:
                    hist[index] += 1
            hist[-2] += seconds
            hist[-1] += 1

    def render(self, model_ready: bool) -> str:
        with self._lock:
            requests = sorted(self._requests.items())
            errors = self._errors
            histograms = {k: list(v) for k, v in sorted(self._histograms.items())}
        lines = [
            "# HELP slipway_requests_total HTTP requests answered, by endpoint and status code.",
            "# TYPE slipway_requests_total counter",
        ]
        lines += [f'slipway_requests_total{{endpoint="{ep}",code="{code}"}} {n}' for (ep, code), n in requests]
        lines += [
            "# HELP slipway_request_errors_total HTTP requests answered with a status of 400 or more.",
            "# TYPE slipway_request_errors_total counter",
            f"slipway_request_errors_total {errors}",
            "# HELP slipway_request_duration_seconds Time to answer an HTTP request.",
            "# TYPE slipway_request_duration_seconds histogram",
        ]
        for endpoint, hist in histograms.items():
            name = "slipway_request_duration_seconds"
            label = f'endpoint="{endpoint}"'
            bounds = [*(str(bound) for bound in self.BUCKETS), "+Inf"]
            counts = [*hist[: len(self.BUCKETS)], hist[-1]]
            lines += [f'{name}_bucket{{{label},le="{le}"}} {int(n)}' for le, n in zip(bounds, counts, strict=True)]
            lines.append(f"{name}_sum{{{label}}} {hist[-2]:.6f}")
            lines.append(f"{name}_count{{{label}}} {int(hist[-1])}")
        lines += [
            "# HELP slipway_model_ready 1 when the model is loaded and can answer inference requests.",
            "# TYPE slipway_model_ready gauge",
            f"slipway_model_ready {1 if model_ready else 0}",
        ]
        return "\n".join(lines) + "\n"
