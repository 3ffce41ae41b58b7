from django.db import models
from django.db.models import Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Team
from deployments.crypto import EncryptedTextField


class ContainerRegistry(models.Model):
    """Where built images are pushed. A team's own registry wins over the global one."""

    TEAM_LOOKUP = "team"

    name = models.CharField(max_length=100)
    team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="registries",
        help_text="Empty for the global registry used by every team without its own.",
    )
    url = models.CharField(max_length=255, help_text="host[:port][/path], e.g. registry.example.com/ml")
    username = models.CharField(max_length=255, blank=True)
    password = EncryptedTextField(blank=True)
    insecure = models.BooleanField(default=False, help_text="Plain HTTP; only for a registry on loopback.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["team__slug", "name"]
        constraints = [
            # One registry per team, and one global one (team NULL counts as team 0 here).
            models.UniqueConstraint(
                Coalesce("team", Value(0)),
                name="one_registry_per_team",
                violation_error_message="This team already has a registry.",
            ),
        ]
        verbose_name_plural = "container registries"

    def __str__(self) -> str:
        return f"{self.name} ({self.url})"

    @property
    def host(self) -> str:
        return self.url.split("/", 1)[0]

    @property
    def auth_config(self) -> dict | None:
        if not self.username:
            return None
        return {"username": self.username, "password": self.password, "serveraddress": self.host}

    def repository_for(self, team_slug: str, model_name: str) -> str:
        return f"{self.url.rstrip('/')}/{team_slug}/{model_name}"
