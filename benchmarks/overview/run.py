"""The overview page with 200 models, 5 environments and 10,000 versions: server render time.

    .venv/bin/python benchmarks/overview/run.py

Seeds the data once (in the slipway_bench database), then renders "/" 100 times through Django's
test client (no network), and compares the number of queries with a near-empty team.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _setup import django_ready, percentile

MODELS, ENVIRONMENTS, VERSIONS_PER_MODEL = 200, 5, 50
REQUESTS = 100


def seed():
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from accounts.models import Membership, Role, Team
    from deployments.models import Build, BuildState, Environment, PromotionRequest, Rollout, RolloutState
    from registry.models import ModelVersion, RegisteredModel

    user, _ = get_user_model().objects.get_or_create(username="bench-overview")
    team, created = Team.objects.get_or_create(slug="bench-overview", defaults={"name": "Bench overview"})
    Membership.objects.get_or_create(team=team, user=user, defaults={"role": Role.ADMIN})
    if not created and RegisteredModel.objects.filter(team=team).count() == MODELS:
        return user
    started = time.monotonic()
    environments = [
        Environment.objects.get_or_create(name=f"bench-env-{n}", team=team, defaults={"position": n * 10})[0]
        for n in range(ENVIRONMENTS)
    ]
    models = RegisteredModel.objects.bulk_create(
        RegisteredModel(team=team, name=f"model-{n:03d}", created_by=user, task="classification") for n in range(MODELS)
    )
    versions = ModelVersion.objects.bulk_create(
        ModelVersion(model=m, number=v, framework="sklearn", created_by=user, metrics={"accuracy": 0.9})
        for m in models
        for v in range(1, VERSIONS_PER_MODEL + 1)
    )
    latest = {v.model_id: v for v in versions if v.number == VERSIONS_PER_MODEL}
    builds = Build.objects.bulk_create(
        Build(
            version=v,
            state=BuildState.SUCCEEDED,
            image_reference=f"r/{v.model_id}:v{v.number}",
            image_digest="sha256:" + f"{v.model_id:064x}",
        )
        for v in latest.values()
    )
    now = timezone.now()
    Rollout.objects.bulk_create(
        Rollout(
            environment=e,
            model_id=b.version.model_id,
            version=b.version,
            build=b,
            image=b.digest_reference,
            state=RolloutState.SUCCEEDED,
            finished_at=now,
            requested_by=user,
        )
        for b in builds
        for e in environments[:4]
    )
    PromotionRequest.objects.bulk_create(
        PromotionRequest(
            environment=environments[4],
            model_id=b.version.model_id,
            version=b.version,
            build=b,
            image=b.digest_reference,
            requested_by=user,
            reason="bench",
            expires_at=now,
        )
        for b in builds[:20]
    )
    print(f"(seeded {MODELS} models, {len(versions):,} versions in {time.monotonic() - started:.1f} s)\n")
    return user


def small_team(user):
    """One model in one environment, to compare the number of queries with."""
    from django.utils import timezone

    from accounts.models import Membership, Role, Team
    from deployments.models import Build, BuildState, Environment, Rollout, RolloutState
    from registry.models import ModelVersion, RegisteredModel

    team, created = Team.objects.get_or_create(slug="bench-small", defaults={"name": "Bench small"})
    Membership.objects.get_or_create(team=team, user=user, defaults={"role": Role.ADMIN})
    if not created:
        return
    environment = Environment.objects.create(name="bench-small-env", team=team, position=10)
    model = RegisteredModel.objects.create(team=team, name="lonely", created_by=user)
    version = ModelVersion.objects.create(model=model, number=1, framework="sklearn", created_by=user)
    build = Build.objects.create(
        version=version, state=BuildState.SUCCEEDED, image_reference="r/l:v1", image_digest="sha256:" + "1" * 64
    )
    Rollout.objects.create(
        environment=environment,
        model=model,
        version=version,
        build=build,
        image=build.digest_reference,
        state=RolloutState.SUCCEEDED,
        finished_at=timezone.now(),
    )


def main() -> None:
    django_ready()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    user = seed()
    client = Client()
    client.force_login(user)
    client.get("/?team=bench-overview")  # warm caches (templates, connections)
    timings = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        response = client.get("/?team=bench-overview")
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    with CaptureQueriesContext(connection) as large:
        client.get("/?team=bench-overview")
    small_team(user)
    with CaptureQueriesContext(connection) as small:
        client.get("/?team=bench-small")
    print(
        f"## Overview page: {MODELS} models by {ENVIRONMENTS} environments, "
        f"{MODELS * VERSIONS_PER_MODEL:,} versions ({REQUESTS} renders)\n"
    )
    print("| p50 | p95 | max | queries (this data) | queries (a team with 1 model) |\n|---|---|---|---|---|")
    print(
        f"| {percentile(timings, 50):.0f} ms | {percentile(timings, 95):.0f} ms | {max(timings):.0f} ms | "
        f"{len(large)} | {len(small)} |"
    )
    print(f"\ntarget: p95 at most 200 ms: {'met' if percentile(timings, 95) <= 200 else 'NOT met'}")


if __name__ == "__main__":
    main()
