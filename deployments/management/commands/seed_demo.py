"""Demo data for `make run`: a team, four users with known passwords, the local registry and a
small model whose first version builds as soon as the worker starts. Safe to run twice."""

import hashlib

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.core.management.base import BaseCommand

from accounts.models import Membership, Role, Team
from accounts.permissions import Actor
from deployments.models import ContainerRegistry, Environment, TargetKind
from registry import services as registry_services
from registry.models import RegisteredModel

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


class Command(BaseCommand):
    help = "Create the demo team, users, registry and model (idempotent)."

    def handle(self, *args, **options):
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
        self.seed_environments()
        self.seed_model(team, User.objects.get(username="alice"))

        self.stdout.write("Demo logins (team 'vision'):")
        for username, role, password, superuser in DEMO_USERS:
            kind = "site admin" if superuser else role.label.lower()
            self.stdout.write(f"  {username:<6} / {password:<14} {kind}")

    def seed_environments(self) -> None:
        """dev, staging and prod (protected) on this machine's Docker engine: no cluster needed."""
        for name, position, protected in (("dev", 10, False), ("staging", 20, False), ("prod", 30, True)):
            Environment.objects.get_or_create(
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

    def seed_model(self, team, alice) -> None:
        actor = Actor(user=alice)
        model = RegisteredModel.objects.filter(team=team, name="sensor-score").first()
        if model is None:
            model = registry_services.model_create(
                actor=actor,
                team=team,
                name="sensor-score",
                task="regression",
                description="A tiny demo model: upload, build, deploy it without any ML library.",
            )
        if model.versions.exists():
            return
        upload = TemporaryUploadedFile("model.py", "text/x-python", len(DEMO_MODEL), "utf-8")
        upload.write(DEMO_MODEL)
        upload.seek(0)
        upload.sha256 = hashlib.sha256(DEMO_MODEL).hexdigest()  # type: ignore[attr-defined]  # as the upload handler sets it
        registry_services.version_create(
            actor=actor,
            model=model,
            framework="python",
            artifact=upload,
            label="demo",
            signature=DEMO_SIGNATURE,
            metrics={"mae": 0.12},
            tags=["demo"],
        )
        upload.close()
