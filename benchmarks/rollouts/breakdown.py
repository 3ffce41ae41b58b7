"""Where one rollout to the emulated cluster spends its time before the first apply, and what it asks for.

    .venv/bin/python benchmarks/rollouts/breakdown.py [--cprofile]

One rollout at a time (after one to warm up), asked for through the API with the task run eagerly in
the request's thread, as run.py does. Prints a timeline from the request to the first apply of the
Deployment (every SQL statement of the request's thread and every request the emulated API server
answered for the platform, in milliseconds since the request), then the statements and API requests
of the whole rollout by kind. `--cprofile` adds the functions with the most cumulative time until the
rollout is shown succeeded.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _setup import django_ready
from run import INTERNAL, Cluster

SHOWN_SQL = 110


def statement_kind(sql: str) -> str:
    verb = sql.split(None, 1)[0].upper()
    for keyword in (" FROM ", "INSERT INTO ", "UPDATE ", "DELETE FROM "):
        if keyword in sql:
            return f"{verb} {sql.split(keyword, 1)[1].split()[0].strip(chr(34))}"
    return verb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cprofile", action="store_true")
    args = parser.parse_args()
    django_ready()
    from django.db import connection
    from kubernetes import client, config
    from rest_framework.test import APIClient

    from accounts.models import Role
    from config.celery import app
    from deployments.models import Environment, Rollout, TargetKind
    from deployments.services.environments import identity_for
    from tests.support.factories import (
        MembershipFactory,
        ModelFactory,
        RegistryFactory,
        TeamFactory,
        UserFactory,
        VersionFactory,
        grant,
        succeeded_build,
    )

    app.conf.task_always_eager = True
    stamp = f"{int(time.time())}"
    team = TeamFactory(slug=f"bench-breakdown-{stamp}")
    user = UserFactory(username=f"bench-breakdown-{stamp}")
    MembershipFactory(team=team, user=user, role=Role.DEVELOPER)
    RegistryFactory()
    model = ModelFactory(team=team, name="model-00", created_by=user)
    cluster = Cluster()
    try:
        kube = client.CoreV1Api(config.new_client_from_config(str(cluster.kubeconfig)))
        kube.create_namespace({"metadata": {"name": "breakdown"}})
        environment = Environment.objects.create(
            name=f"bench-breakdown-{stamp}",
            position=10,
            target=TargetKind.KUBERNETES,
            namespace="breakdown",
            kubeconfig=cluster.kubeconfig.read_text(),
        )
        grant(environment, team)
        api = APIClient()
        api.force_authenticate(user=user)
        rounds = 4
        for number in range(1, rounds + 1):  # the first warms up (imports, schemas, connections)
            version = VersionFactory(model=model, number=number)
            succeeded_build(version, digest_char="abcdef"[number % 6])
            statements: list[tuple[float, str]] = []

            def note(execute, sql, params, many, context, statements=statements):
                statements.append((time.time(), sql))
                return execute(sql, params, many, context)

            profile = cProfile.Profile() if args.cprofile and number == rounds else None
            seen = len(cluster.ask("requests"))
            requested = time.time()
            with connection.execute_wrapper(note):
                if profile:
                    profile.enable()
                answer = api.post(
                    "/api/v1/rollouts/", {"version": version.pk, "environment": environment.pk}, format="json"
                )
                if profile:
                    profile.disable()
            assert answer.status_code == 201, answer.content
            rollout = Rollout.objects.get(pk=answer.json()["id"])
            assert rollout.state == "succeeded", rollout.failure_reason
            time.sleep(0.2)
            records = [r for r in cluster.ask("requests")[seen:] if not r[3].startswith(INTERNAL)]
            path = f"/deployments/{identity_for(environment, model).name}"
            first_apply = min(
                at
                for method, p, kind, _, at, _ in records
                if method == "PATCH" and p.endswith(path) and "apply" in kind
            )
            print(
                f"rollout {number}: request -> first apply of the Deployment: {1000 * (first_apply - requested):.0f} ms"
            )
            if number < rounds:
                continue
            print()
            timeline = [(at, f"SQL  {sql[:SHOWN_SQL]}") for at, sql in statements if at <= first_apply]
            timeline += [(at, f"KUBE {m} {p} {kind}") for m, p, kind, _, at, _ in records if at <= first_apply]
            for at, what in sorted(timeline):
                print(f"  +{1000 * (at - requested):7.1f} ms  {what}")
            print(f"\nwhole rollout: {len(statements)} SQL statements (request's thread), {len(records)} API requests")
            for kind, count in Counter(statement_kind(sql) for _, sql in statements).most_common():
                print(f"  {count:4d}  {kind}")
            print()
            for kind, count in Counter(
                f"{m} {p.rsplit('/', 1)[-1] if m != 'GET' else p}" for m, p, *_ in records
            ).most_common():
                print(f"  {count:4d}  {kind}")
            if profile:
                out = io.StringIO()
                stats = pstats.Stats(profile, stream=out).sort_stats("cumulative")
                stats.print_stats(45)
                stats.sort_stats("tottime").print_stats(30)
                print(out.getvalue())
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
