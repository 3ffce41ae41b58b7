"""The benchmark's noisy build: a 100,000-line log (with ANSI colours), made once per benchmark database."""

import time

LINES = 100_000
PASSWORD = "bench-logs-password"  # noqa: S105 - a benchmark user on the benchmark database


def noisy_build(*, lines: int = LINES, state: str = "building", name: str = "noisy"):
    """(user, build): a viewer of team bench-logs, and a build of its model with `lines` log lines."""
    from django.contrib.auth import get_user_model

    from accounts.models import Membership, Role, Team
    from deployments.models import Build, BuildLogLine
    from registry.models import ModelVersion, RegisteredModel

    user, _ = get_user_model().objects.get_or_create(username="bench-logs")
    user.set_password(PASSWORD)
    user.save()
    team, _ = Team.objects.get_or_create(slug="bench-logs", defaults={"name": "Bench logs"})
    Membership.objects.get_or_create(team=team, user=user, defaults={"role": Role.VIEWER})
    model, _ = RegisteredModel.objects.get_or_create(team=team, name=name, defaults={"created_by": user})
    version = ModelVersion.objects.filter(model=model).first() or ModelVersion.objects.create(
        model=model, number=1, framework="sklearn", created_by=user
    )
    build = Build.objects.filter(version=version, log_line_count=lines, state=state).first()
    if build is None:
        Build.objects.filter(version=version).delete()
        build = Build.objects.create(version=version, state=state)
        started = time.monotonic()
        for offset in range(0, lines, 10_000):
            BuildLogLine.objects.bulk_create(
                BuildLogLine(
                    build=build,
                    seq=n,
                    text=f"Step {n}: \x1b[32mcompiling\x1b[0m module_{n % 977}.py "
                    f"{'ERROR boom' if n == 73_210 else 'ok'}",
                )
                for n in range(offset + 1, min(offset + 10_001, lines + 1))
            )
        Build.objects.filter(pk=build.pk).update(log_line_count=lines)
        print(f"(wrote {lines:,} lines in {time.monotonic() - started:.1f} s)\n")
    return user, build
