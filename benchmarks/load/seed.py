"""The data the load test works on, written through the test suite's factories and the product's services.

    DATABASE_URL=... python benchmarks/load/seed.py OUT.json

One team ("load") with 10 developers, 12 approvers and a viewer, each with an API token; a global
registry; dev, staging and prod (protected, 4 approvals, no previous-stage rule, so requests need
no real rollouts); 30 models with 3 versions each, every version with a succeeded build and a
2,000-line log, the latest released in dev and staging; one pending prod request per model, half
of them already approved once (by the last approver, whom the run leaves out).
Automatic builds are off for these models: uploads during the run are measured, not the image
builds they would start. Writes OUT.json with what the simulated users need.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODELS, VERSIONS, LOG_LINES = 30, 3, 2000
DEVELOPERS, APPROVERS = 10, 12
PASSWORD = "load-test-" + "p" * 12


def main(out: Path) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone

    from accounts import services as account_services
    from accounts.models import Membership, Role, Team
    from accounts.permissions import Actor
    from deployments.models import PromotionRequest, Rollout, RolloutState
    from deployments.services.promotions import promotion_request
    from tests.support.factories import (
        EnvironmentFactory,
        ModelFactory,
        RegistryFactory,
        VersionFactory,
        add_log_lines,
        succeeded_build,
    )

    call_command("migrate", verbosity=0)
    users = get_user_model().objects
    team = Team.objects.create(slug="load", name="Load")

    def person(name: str, role: str) -> dict:
        user = users.create_user(name, password=PASSWORD)
        Membership.objects.create(team=team, user=user, role=role)
        _, token = account_services.token_create(
            user=user, name="load", scopes=["read", "deploy", "approve"], expires_in_days=1
        )
        return {"username": name, "password": PASSWORD, "token": token}

    developers = [person(f"dev{i}", Role.DEVELOPER) for i in range(DEVELOPERS)]
    approvers = [person(f"approver{i}", Role.APPROVER) for i in range(APPROVERS)]
    viewer = person("viewer", Role.VIEWER)
    RegistryFactory(url="127.0.0.1:5999")
    dev = EnvironmentFactory(name="dev", position=10)
    staging = EnvironmentFactory(name="staging", position=20)
    prod = EnvironmentFactory(
        name="prod", position=30, protected=True, required_approvals=4, requires_previous_stage=False
    )
    requester = Actor(user=users.get(username="dev0"))
    models, builds = [], []
    for m in range(MODELS):
        model = ModelFactory(team=team, name=f"model-{m:02d}", auto_build=False, created_by=requester.user)
        for n in range(1, VERSIONS + 1):
            version = VersionFactory(model=model, number=n, metrics={"accuracy": 0.9 + n / 100})
            build = succeeded_build(version, digest_char="abcdef"[(m + n) % 6])
            add_log_lines(build, LOG_LINES, text="step {n}: collecting, building, pushing")
            builds.append({"id": build.pk, "lines": LOG_LINES})
        for environment in (dev, staging):
            Rollout.objects.create(
                environment=environment,
                model=model,
                version=version,
                build=build,
                image=build.digest_reference,
                requested_by=requester.user,
                state=RolloutState.SUCCEEDED,
                started_at=timezone.now(),
                finished_at=timezone.now(),
            )
        promotion_request(actor=requester, version=version, environment=prod, reason="load test")
        models.append({"id": model.pk, "team": team.slug, "name": model.name})
    # Some requests already carry an approval, so that the counts taken before the run read every
    # kind of row the run adds (approvals and their approvers) and a growth means a query per row.
    approver = Client(SERVER_NAME="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {approvers[-1]['token']}")
    for promotion in PromotionRequest.objects.filter(environment=prod)[: MODELS // 2]:
        answer = approver.post(
            f"/api/v1/promotions/{promotion.pk}/approve/",
            {"comment": "seeded", "digest": promotion.image.rpartition("@")[2]},
            content_type="application/json",
        )
        assert answer.status_code == 200, answer.content
    fixture = {
        "developers": developers,
        "approvers": approvers,
        "viewer": viewer,
        "models": models,
        "builds": builds,
        "environments": [dev.pk, staging.pk, prod.pk],
    }
    out.write_text(json.dumps(fixture))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
