"""The data the load test works on, written through the test suite's factories and the product's services.

    DATABASE_URL=... python benchmarks/load/seed.py OUT.json            # the data of the run (1x)
    DATABASE_URL=... python benchmarks/load/seed.py OUT.json --grow 2   # then twice as much again (3x)

One team ("load") with 10 developers, 12 approvers and a viewer, each with an API token; a global
registry; dev, staging and prod (protected, 4 approvals, no previous-stage rule, so requests need
no real rollouts); 30 models with 3 versions each, every version with a succeeded build and a
2,000-line log, the latest released in dev and staging; one pending prod request per model, half
of them already approved once (by the last approver, whom the run leaves out), and the last one approved
by four, so that a prod rollout is queued (no worker runs rollouts here: the users approve, nothing deploys).
Automatic builds are off for these models: uploads during the run are measured, not the image
builds they would start. Writes OUT.json with what the simulated users need.

`--grow N` adds N times the models (with their versions, builds, logs, releases and requests, half
approved once), N times the versions of every existing model, and N times the log lines of every
build seeded first (the builds whose logs and pages the users read; the added builds get short logs),
so that statements.py can compare each endpoint's statements at 1x and (N+1)x rows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODELS, VERSIONS, LOG_LINES = 30, 3, 2000
GROWN_LOG_LINES = 20  # the logs the users read are the seeded builds'; a million more lines would only slow this
DEVELOPERS, APPROVERS = 10, 12
PASSWORD = "load-test-" + "p" * 12


def main(out: Path, grow: int) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone

    from accounts import services as account_services
    from accounts.models import Membership, Role, Team
    from accounts.permissions import Actor
    from deployments.models import Build, Environment, PromotionRequest, Rollout, RolloutState
    from deployments.services.promotions import promotion_request
    from registry.models import RegisteredModel
    from tests.support.factories import (
        EnvironmentFactory,
        ModelFactory,
        RegistryFactory,
        VersionFactory,
        add_log_lines,
        succeeded_build,
    )

    users = get_user_model().objects

    def add_model(team, name: str, requester: Actor, environments, lines: int) -> tuple[dict, list[dict]]:
        dev, staging, prod = environments
        model = ModelFactory(team=team, name=name, auto_build=False, created_by=requester.user)
        builds = [add_version(model, n, lines) for n in range(1, VERSIONS + 1)]
        build = Build.objects.get(pk=builds[-1]["id"])
        for environment in (dev, staging):
            Rollout.objects.create(
                environment=environment,
                model=model,
                version=build.version,
                build=build,
                image=build.digest_reference,
                requested_by=requester.user,
                state=RolloutState.SUCCEEDED,
                started_at=timezone.now(),
                finished_at=timezone.now(),
            )
        promotion_request(actor=requester, version=build.version, environment=prod, reason="load test")
        return {"id": model.pk, "team": team.slug, "name": model.name}, builds

    def add_version(model, number: int, lines: int) -> dict:
        version = VersionFactory(
            model=model, number=number, metrics={"accuracy": 0.9 + number / 100}, created_by=model.created_by
        )
        build = succeeded_build(version, digest_char="abcdef"[(model.pk + number) % 6])
        add_log_lines(build, lines, text="step {n}: collecting, building, pushing")
        return {"id": build.pk, "lines": lines}

    def approve(tokens: list[str], promotions) -> None:
        # Some requests already carry approvals, so that the counts read every kind of row the run
        # adds (approvals and their approvers; a prod rollout once a request has all it needs) and a
        # growth means a query per row.
        for token in tokens:
            approver = Client(SERVER_NAME="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {token}")
            for promotion in promotions:
                answer = approver.post(
                    f"/api/v1/promotions/{promotion.pk}/approve/",
                    {"comment": "seeded", "digest": promotion.image.rpartition("@")[2]},
                    content_type="application/json",
                )
                assert answer.status_code == 200, answer.content

    if grow:
        fixture = json.loads(out.read_text())
        team = Team.objects.get(slug="load")
        requester = Actor(user=users.get(username=fixture["developers"][0]["username"]))
        environments = [Environment.objects.get(pk=pk) for pk in fixture["environments"]]
        for build in Build.objects.filter(pk__in=[b["id"] for b in fixture["builds"]]):
            add_log_lines(build, grow * LOG_LINES, text="step {n}: collecting, building, pushing")
        for model in RegisteredModel.objects.filter(team=team):
            first = max(model.versions.values_list("number", flat=True)) + 1
            for number in range(first, first + grow * VERSIONS):
                add_version(model, number, GROWN_LOG_LINES)
        existing = RegisteredModel.objects.filter(team=team).count()
        new = [
            add_model(team, f"model-{m:02d}", requester, environments, GROWN_LOG_LINES)[0]["id"]
            for m in range(existing, existing + grow * MODELS)
        ]
        fresh = list(PromotionRequest.objects.filter(model_id__in=new).order_by("pk"))
        # The newest carry approvals too: lists show them first, and a page without any approval skips
        # the query for the approvers' names.
        approve([fixture["approvers"][-1]["token"]], fresh[len(new) // 2 : -grow])
        approve([a["token"] for a in fixture["approvers"][-4:]], fresh[-grow:])
        return

    call_command("migrate", verbosity=0)
    team = Team.objects.create(slug="load", name="Load")
    # Hashed once for everyone: the hash is deliberately slow (about 0.2 s of CPU here).
    password_hash = make_password(PASSWORD)

    def person(name: str, role: str) -> dict:
        user = users.create(username=name, password=password_hash)
        Membership.objects.create(team=team, user=user, role=role)
        _, token = account_services.token_create(
            user=user, name="load", scopes=["read", "deploy", "approve"], expires_in_days=1
        )
        return {"username": name, "password": PASSWORD, "token": token}

    developers = [person(f"dev{i}", Role.DEVELOPER) for i in range(DEVELOPERS)]
    approvers = [person(f"approver{i}", Role.APPROVER) for i in range(APPROVERS)]
    viewer = person("viewer", Role.VIEWER)
    RegistryFactory(url="127.0.0.1:5999")
    environments = (
        EnvironmentFactory(name="dev", position=10, grants={team: Role.ADMIN}),
        EnvironmentFactory(name="staging", position=20, grants={team: Role.ADMIN}),
        EnvironmentFactory(
            name="prod",
            position=30,
            protected=True,
            required_approvals=4,
            requires_previous_stage=False,
            grants={team: Role.ADMIN},
        ),
    )
    requester = Actor(user=users.get(username="dev0"))
    models, builds = [], []
    for m in range(MODELS):
        model, its_builds = add_model(team, f"model-{m:02d}", requester, environments, LOG_LINES)
        models.append(model)
        builds += its_builds
    requests = list(PromotionRequest.objects.order_by("pk"))
    approve([approvers[-1]["token"]], requests[: MODELS // 2])
    approve([a["token"] for a in approvers[-4:]], requests[-1:])  # approved: its prod rollout is queued
    fixture = {
        "developers": developers,
        "approvers": approvers,
        "viewer": viewer,
        "models": models,
        "builds": builds,
        "environments": [environment.pk for environment in environments],
    }
    out.write_text(json.dumps(fixture))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fixture", type=Path)
    parser.add_argument("--grow", type=int, default=0, help="add this many times the data (after a first seed)")
    arguments = parser.parse_args()
    main(arguments.fixture, arguments.grow)
