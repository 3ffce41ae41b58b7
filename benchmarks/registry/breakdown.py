"""Where a registry API request spends its time: queries and writes by purpose, and the slowest calls.

    .venv/bin/python benchmarks/registry/breakdown.py [--calls 30] [--cprofile OPERATION]

Runs the four operations of run.py in this process through Django's test client, on a fresh SQLite
database (as `make run`), with a registry configured so that every upload queues its automatic
build on Redis (as deployed; nothing consumes it). For each operation it prints the statements of one
request sorted by purpose (the token check and its last-used time, permission lookups, audit rows,
the build enqueue, the operation's own rows) and the p50 of in-process calls, without HTTP.
`--cprofile create-version` adds the functions with the most cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PURPOSES = (
    ("token", ("accounts_apitoken", "accounts_apitoken_teams", "accounts_apitoken_environments")),
    ("audit", ("audit_auditevent",)),
    ("permissions", ("accounts_membership", "accounts_team", "auth_user")),
    ("build enqueue", ("deployments_build", "deployments_containerregistry")),
)


def table_of(sql: str) -> str:
    """The table a statement reads from or writes to: the first one after FROM, INTO or UPDATE."""
    for keyword in (" FROM ", "INSERT INTO ", "UPDATE ", "DELETE FROM "):
        if keyword in sql:
            return sql.split(keyword, 1)[1].split()[0].strip('"')
    return ""


def purpose_of(sql: str) -> str:
    if sql.startswith(("BEGIN", "COMMIT", "RELEASE", "SAVEPOINT")):
        return "transaction"
    table = table_of(sql)
    for name, tables in PURPOSES:
        if table in tables:
            return name
    return "the operation"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--cprofile", choices=["create-model", "create-version", "list", "get"])
    parser.add_argument("--lines", type=int, default=40)
    parser.add_argument("--sort", default="cumulative", choices=["cumulative", "tottime"])
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="slipway-bench-profile-"))
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=f"sqlite:///{work / 'db.sqlite3'}",
        REDIS_URL=os.environ.get("SLIPWAY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
        SLIPWAY_SECRET_KEY="profile-only-" + "k" * 40,
        SLIPWAY_MEDIA_ROOT=str(work / "media"),
        SLIPWAY_VAR_DIR=str(work / "var"),
        SLIPWAY_LOG_LEVEL="ERROR",
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from accounts import services
    from accounts.models import Membership, Role, Team
    from deployments.models import ContainerRegistry

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("bench")
    team = Team.objects.create(slug="bench", name="Bench")
    Membership.objects.create(team=team, user=user, role=Role.ADMIN)
    ContainerRegistry.objects.create(name="local", url="127.0.0.1:5000")
    _, secret = services.token_create(user=user, name="bench", scopes=["read", "deploy"], expires_in_days=1)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}", SERVER_NAME="127.0.0.1")

    model_id = client.post("/api/v1/models/", {"team": "bench", "name": "m"}, content_type="application/json").json()[
        "id"
    ]

    def upload(_: int):
        artifact = SimpleUploadedFile("model.joblib", os.urandom(1024 * 1024))
        return client.post(f"/api/v1/models/{model_id}/versions/", {"framework": "sklearn", "artifact": artifact})

    version_id = upload(0).json()["id"]
    # As run.py lists: a model of its own with 20 versions.
    listed_id = client.post(
        "/api/v1/models/", {"team": "bench", "name": "listed"}, content_type="application/json"
    ).json()["id"]
    for _ in range(20):
        artifact = SimpleUploadedFile("model.joblib", os.urandom(1024 * 1024))
        client.post(f"/api/v1/models/{listed_id}/versions/", {"framework": "sklearn", "artifact": artifact})
    operations = {
        "create-model": lambda i: client.post(
            "/api/v1/models/", {"team": "bench", "name": f"m{i}"}, content_type="application/json"
        ),
        "create-version": upload,
        "list": lambda i: client.get(f"/api/v1/models/{listed_id}/versions/"),
        "get": lambda i: client.get(f"/api/v1/versions/{version_id}/"),
    }
    serial = iter(range(10**9))
    for name, call in operations.items():
        for _ in range(3):
            call(next(serial))  # warm up
        statements: list[str] = []

        def capture(execute, sql, params, many, context, statements=statements):
            statements.append(sql.lstrip())
            return execute(sql, params, many, context)

        with connection.execute_wrapper(capture):
            response = call(next(serial))
        assert response.status_code < 300, (name, response.status_code, response.content[:300])
        durations = []
        for _ in range(args.calls):
            began = time.perf_counter()
            call(next(serial))
            durations.append(time.perf_counter() - began)
        writes = [s for s in statements if s.startswith(("INSERT", "UPDATE", "DELETE"))]
        by_purpose = Counter(purpose_of(s) for s in statements)
        p50 = statistics.median(durations) * 1000
        print(f"\n{name}: {len(statements)} statements ({len(writes)} writes), p50 {p50:.1f} ms in-process")
        for purpose, count in by_purpose.most_common():
            print(f"  {count:3d}  {purpose}")
        for sql in statements:
            print(f"       {purpose_of(sql):14s} {sql[:110]}")
        if args.cprofile == name:
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(args.calls):
                call(next(serial))
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.lines)
            print(out.getvalue())
    import redis

    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()


if __name__ == "__main__":
    main()
