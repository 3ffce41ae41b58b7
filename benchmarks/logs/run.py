"""A 100,000-line build log: how long the API takes to serve the windows the log viewer asks for.

    .venv/bin/python benchmarks/logs/run.py

Every read is a window (tail, after, before, search), so the time should not depend on the size
of the log. Prints a Markdown table of p50 and p95 over 50 requests each.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _setup import django_ready, percentile

LINES = 100_000
REQUESTS = 50


def main() -> None:
    django_ready()
    from django.contrib.auth import get_user_model
    from django.test import Client

    from accounts.models import Membership, Role, Team
    from deployments.models import Build, BuildLogLine, BuildState
    from registry.models import ModelVersion, RegisteredModel

    user, _ = get_user_model().objects.get_or_create(username="bench-logs")
    team, _ = Team.objects.get_or_create(slug="bench-logs", defaults={"name": "Bench logs"})
    Membership.objects.get_or_create(team=team, user=user, defaults={"role": Role.VIEWER})
    model, _ = RegisteredModel.objects.get_or_create(team=team, name="noisy", defaults={"created_by": user})
    version = ModelVersion.objects.filter(model=model).first() or ModelVersion.objects.create(
        model=model, number=1, framework="sklearn", created_by=user
    )
    build = Build.objects.filter(version=version, log_line_count=LINES).first()
    if build is None:
        build = Build.objects.create(version=version, state=BuildState.BUILDING)
        started = time.monotonic()
        for offset in range(0, LINES, 10_000):
            BuildLogLine.objects.bulk_create(
                BuildLogLine(
                    build=build,
                    seq=n,
                    text=f"Step {n}: \x1b[32mcompiling\x1b[0m module_{n % 977}.py "
                    f"{'ERROR boom' if n == 73_210 else 'ok'}",
                )
                for n in range(offset + 1, offset + 10_001)
            )
        Build.objects.filter(pk=build.pk).update(log_line_count=LINES)
        print(f"(wrote {LINES:,} lines in {time.monotonic() - started:.1f} s)\n")

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
