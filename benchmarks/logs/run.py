"""A 100,000-line build log: how long the API takes to serve the windows the log viewer asks for.

    .venv/bin/python benchmarks/logs/run.py

Every read is a window (tail, after, before, search), so the time should not depend on the size
of the log. Prints a Markdown table of p50 and p95 over 50 requests each.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import LINES, noisy_build
from _setup import django_ready, percentile

REQUESTS = 50


def main() -> None:
    django_ready()
    from django.test import Client

    user, build = noisy_build()
    client = Client()
    client.force_login(user)
    url = f"/api/v1/builds/{build.pk}/log/"
    cases = {
        "tail=1000 (first view)": {"tail": 1000},
        "after=99000 (live follow)": {"after": 99_000},
        "after=50000&limit=1000 (jump)": {"after": 50_000, "limit": 1000},
        "before=20000&limit=500 (scroll up)": {"before": 20_000, "limit": 500},
        "search=ERROR (first error)": {"search": "ERROR", "after": 0, "limit": 1},
        "build page (HTML)": None,
    }
    print(f"## Log windows of a {LINES:,}-line build log ({REQUESTS} requests each)\n")
    print("| request | p50 | p95 | lines |\n|---|---|---|---|")
    for label, params in cases.items():
        timings, count = [], 0
        for _ in range(REQUESTS):
            started = time.perf_counter()
            response = client.get(url, params) if params is not None else client.get(f"/builds/{build.pk}/")
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.status_code
            count = len(response.json()["lines"]) if params is not None else 0
        print(f"| {label} | {percentile(timings, 50):.1f} ms | {percentile(timings, 95):.1f} ms | {count or '—'} |")


if __name__ == "__main__":
    main()
