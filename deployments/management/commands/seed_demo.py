"""Demo data for `make run`: a team, four users with known passwords, the local registry, three small
models whose versions build as soon as the worker starts and, with `--roll-out` (run by `make run` once
the worker is up), those versions running in dev and staging, some history, and one promotion to prod
waiting for bob. Safe to run twice: what exists is left as it is."""

import hashlib
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.management.base import BaseCommand
from django.utils import timezone

from accounts.models import Membership, Role, Team
from accounts.permissions import Actor
from deployments import targets
from deployments.models import (
    Build,
    BuildState,
    ContainerRegistry,
    Drift,
    Environment,
    EnvironmentGrant,
    PromotionRequest,
    Rollout,
    RolloutState,
    TargetKind,
)
from deployments.runners import drift
from deployments.services import promotions, rollouts
from deployments.services.environments import identity_for, target_for
from registry import services as registry_services
from registry.models import ModelVersion, RegisteredModel

DEMO_USERS = [
    # username, role in team "vision", password, site admin
    ("alice", Role.DEVELOPER, "alice-slipway", False),
    ("bob", Role.APPROVER, "bob-slipway", False),
    ("carol", Role.VIEWER, "carol-slipway", False),
    ("admin", Role.ADMIN, "admin-slipway", True),
]

DEMO_MODEL = b'''"""A stand-in for a real model: scores each row by a weighted sum. Needs only numpy."""
import numpy as np


class Model:
    weights = np.array([0.4, -0.2, 0.9, 0.1])

    def predict(self, inputs):
        features = np.asarray(inputs["features"], dtype=np.float64)
        return {"score": features @ self.weights}
'''
DEMO_SIGNATURE = {
    "inputs": [{"name": "features", "datatype": "FP64", "shape": [-1, 4]}],
    "outputs": [{"name": "score", "datatype": "FP64", "shape": [-1]}],
}
DEFECT_MODEL = b'''"""Flags a part as defective when its sensor readings pass a threshold. Needs only numpy."""
import numpy as np


class Model:
    threshold = %(threshold)s

    def predict(self, inputs):
        readings = np.asarray(inputs["features"], dtype=np.float64)
        return {"score": (readings.mean(axis=-1) > self.threshold).astype(np.float64)}
'''
SHELF_MODEL = b'''"""Counts the empty slots on a shelf from a row of occupancy readings. Needs only numpy."""
import numpy as np


class Model:
    def predict(self, inputs):
        occupancy = np.asarray(inputs["features"], dtype=np.float64)
        return {"score": (occupancy < 0.5).sum(axis=-1).astype(np.float64)}
'''
# The demo's models: name, task, description, and their versions (source, metrics).
DEMO_MODELS = [
    (
        "sensor-score",
        "regression",
        "A tiny demo model: upload, build, deploy it without any ML library.",
        [(DEMO_MODEL, {"mae": 0.12})],
    ),
    (
        "defect-detector",
        "classification",
        "Flags defective parts on the line from four sensor readings.",
        [
            (DEFECT_MODEL % {b"threshold": b"0.7"}, {"accuracy": 0.91, "recall": 0.84}),
            (DEFECT_MODEL % {b"threshold": b"0.65"}, {"accuracy": 0.94, "recall": 0.9}),
        ],
    ),
    (
        "shelf-gap",
        "counting",
        "Counts empty slots on a shelf from occupancy readings.",
        [(SHELF_MODEL, {"mae": 0.4})],
    ),
]
# What `--roll-out` makes of them, in order: (model, version, environments); then one request for prod
# that waits for bob (an approver), and the history the second version of defect-detector leaves.
ROLL_OUT = [
    ("sensor-score", 1, ["dev", "staging"]),
    ("defect-detector", 1, ["dev", "staging"]),
    ("shelf-gap", 1, ["dev", "staging"]),
    ("defect-detector", 2, ["dev", "staging"]),
]
PROMOTION = ("defect-detector", 2, "prod", "Recall 0.84 → 0.90 on the March line data; ready for Thursday's shift.")


class Command(BaseCommand):
    help = "Create the demo team, users, registry and models (idempotent); --roll-out deploys them."

    def add_arguments(self, parser):
        parser.add_argument(
            "--roll-out",
            action="store_true",
            help="Wait for the demo's builds (a worker does them), deploy them to dev and staging and ask "
            "for prod, printing the progress.",
        )
        parser.add_argument("--timeout", type=float, default=900, help="Seconds to wait for builds and rollouts.")

    def handle(self, *args, **options):
        if options["roll_out"]:
            self.roll_out(timeout=options["timeout"])
            return
        team, _ = Team.objects.get_or_create(
            slug="vision", defaults={"name": "Vision", "description": "Image and sensor models."}
        )
        User = get_user_model()
        for username, role, password, superuser in DEMO_USERS:
            user, created = User.objects.get_or_create(
                username=username, defaults={"email": f"{username}@example.com", "first_name": username.title()}
            )
            if created or not user.check_password(password):
                user.set_password(password)
            user.is_superuser = user.is_staff = superuser
            user.save()
            Membership.objects.update_or_create(team=team, user=user, defaults={"role": role})

        if settings.DEFAULT_REGISTRY_URL and not ContainerRegistry.objects.filter(team__isnull=True).exists():
            ContainerRegistry.objects.create(
                name="local",
                url=settings.DEFAULT_REGISTRY_URL,
                insecure=settings.DEFAULT_REGISTRY_URL.startswith(("127.", "localhost")),
            )
        self.seed_environments(team)
        alice = User.objects.get(username="alice")
        for name, task, description, versions in DEMO_MODELS:
            self.seed_model(team, alice, name, task, description, versions)

        self.stdout.write("Demo logins (team 'vision'):")
        for username, role, password, superuser in DEMO_USERS:
            kind = "site admin" if superuser else role.label.lower()
            self.stdout.write(f"  {username:<6} / {password:<14} {kind}")

    def seed_environments(self, team: Team) -> None:
        """dev, staging and prod (protected) on this machine's Docker engine: no cluster needed. Global
        environments, granting the demo team its full role in each (a global one takes no team unasked)."""
        for name, position, protected in (("dev", 10, False), ("staging", 20, False), ("prod", 30, True)):
            environment, _ = Environment.objects.get_or_create(
                name=name,
                team=None,
                defaults={
                    "position": position,
                    "protected": protected,
                    "requires_previous_stage": protected,
                    "target": TargetKind.DOCKER,
                    "docker_url": settings.DOCKER_HOST,
                    "bind_address": "127.0.0.1",
                    "description": "Local Docker host" + (" · needs an approved promotion" if protected else ""),
                },
            )
            EnvironmentGrant.objects.get_or_create(environment=environment, team=team, defaults={"role": Role.ADMIN})

    def seed_model(self, team, alice, name, task, description, versions) -> None:
        actor = Actor(user=alice)
        model = RegisteredModel.objects.filter(team=team, name=name).first()
        if model is None:
            model = registry_services.model_create(
                actor=actor, team=team, name=name, task=task, description=description
            )
        for number, (source, metrics) in enumerate(versions, start=1):
            if model.versions.filter(number__gte=number).exists():
                continue
            upload = TemporaryUploadedFile("model.py", "text/x-python", len(source), "utf-8")
            upload.write(source)
            upload.seek(0)
            upload.sha256 = hashlib.sha256(source).hexdigest()  # type: ignore[attr-defined]  # as the upload handler sets it
            registry_services.version_create(
                actor=actor,
                model=model,
                framework="python",
                artifact=upload,
                label="demo" if number == 1 else f"demo-{number}",
                signature=DEMO_SIGNATURE,
                metrics=metrics,
                tags=["demo"],
            )
            upload.close()

    # -- --roll-out -----------------------------------------------------------------------------

    def say(self, text: str) -> None:
        self.stdout.write(f"demo: {text}")
        self.stdout.flush()

    def roll_out(self, *, timeout: float) -> None:
        """Drive the demo through the platform's own services, as alice would in the UI."""
        deadline = time.monotonic() + timeout
        self.began = timezone.now()
        alice = get_user_model().objects.get(username="alice")
        environments = {e.name: e for e in Environment.objects.filter(team=None, name__in=["dev", "staging", "prod"])}
        broken: set[str] = set()
        for name, number, places in ROLL_OUT:
            if name in broken:
                continue
            version = ModelVersion.objects.select_related("model__team").get(
                model__team__slug="vision", model__name=name, number=number
            )
            if not self.built(version, deadline):
                broken.add(name)
                continue
            for target in places:
                if not self.deployed(alice, version, environments[target], deadline):
                    broken.add(name)
                    break
        name, number, target, reason = PROMOTION
        if name not in broken:
            self.request(alice, name, number, environments[target], reason)
        self.say("done: open the overview" if not broken else f"done, except {', '.join(sorted(broken))}")

    def wait(self, what, deadline: float, show):
        """Poll `what()` until it returns a finished row; `show(row)` reports each change of state."""
        last = None
        while True:
            row = what()
            shown = show(row) if row is not None else None
            if shown and shown != last:
                self.say(shown)
                last = shown
            if row is not None and row.is_finished:
                return row
            if time.monotonic() > deadline:
                self.say("gave up waiting: is a worker running? (make run starts one)")
                return None
            time.sleep(1)

    def built(self, version, deadline: float) -> bool:
        label = f"{version.model.name} v{version.number}"
        build = self.wait(
            lambda: Build.objects.filter(version=version).order_by("-pk").first(),
            deadline,
            lambda b: (
                f"{label}: build #{b.pk} {b.get_state_display().lower()}"
                + (f" in {b.duration.total_seconds():.0f} s" if b.duration else "")
                + (f": {b.failure_reason}" if b.failure_reason else "")
                + self.earlier(b)
            ),
        )
        return build is not None and build.state == BuildState.SUCCEEDED

    def deployed(self, alice, version, environment, deadline: float) -> bool:
        label = f"{version.model.name} v{version.number} in {environment.name}"
        rollout = (
            Rollout.objects.filter(environment=environment, version=version)
            .exclude(state=RolloutState.FAILED)
            .order_by("-pk")
            .first()
        )
        if rollout is not None and rollout.state == RolloutState.SUCCEEDED and not self.still_runs(rollout):
            self.say(
                f"{label}: rollout #{rollout.pk} no longer runs (make stop removes the demo's containers); "
                "deploying it again"
            )
            rollout = None
        if rollout is None:
            try:
                rollout = rollouts.rollout_start(
                    actor=Actor(user=alice), version=version, environment=environment, reason="Demo"
                )
            except ValidationError as error:
                self.say(f"{label}: not deployed: {' '.join(error.messages)}")
                return False
        done = self.wait(
            lambda: Rollout.objects.get(pk=rollout.pk),
            deadline,
            lambda r: (
                f"{label}: rollout #{r.pk} {r.get_state_display().lower()}"
                + (f" at {r.endpoint}" if r.endpoint and r.state == RolloutState.SUCCEEDED else "")
                + (f": {r.failure_reason}" if r.failure_reason else "")
                + self.earlier(r)
            ),
        )
        return done is not None and done.state in RolloutState.released()

    def earlier(self, work) -> str:
        """Marks what a previous `make run` did, so it is not read as this start's progress."""
        return " (earlier run)" if work.finished_at and work.finished_at < self.began else ""

    def still_runs(self, release: Rollout) -> bool:
        """Whether the release's container still serves it; when it cannot be told, the drift check will."""
        environment = release.environment
        try:
            live = target_for(environment, quick=True).live_state(identity_for(environment, release.model))
        except (targets.TargetError, targets.TransientTargetError):
            return True
        return drift.compare(release, live)[0] != Drift.MISSING

    def request(self, alice, name, number, environment, reason) -> None:
        version = ModelVersion.objects.get(model__team__slug="vision", model__name=name, number=number)
        if PromotionRequest.objects.filter(version=version, environment=environment).exists():
            return
        try:
            promotion = promotions.promotion_request(
                actor=Actor(user=alice), version=version, environment=environment, reason=reason
            )
        except (ValidationError, PermissionDenied) as error:
            self.say(f"{name} v{number} to {environment.name}: not requested: {error}")
            return
        self.say(f"{name} v{number} to {environment.name}: promotion #{promotion.pk} waits for bob's approval")
