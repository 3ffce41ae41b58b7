from django.conf import settings
from django.db import models
from django.utils import timezone

from deployments.models.builds import Build
from deployments.models.environments import Environment
from registry.models import ModelVersion, RegisteredModel


class RolloutState(models.TextChoices):
    QUEUED = "queued", "Queued"
    APPLYING = "applying", "Applying"
    PROGRESSING = "progressing", "Progressing"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    ROLLED_BACK = "rolled_back", "Rolled back"
    SUPERSEDED = "superseded", "Superseded"
    CANCELLED = "cancelled", "Cancelled"

    @classmethod
    def active(cls) -> list[str]:
        return [cls.QUEUED, cls.APPLYING, cls.PROGRESSING]

    @classmethod
    def running(cls) -> list[str]:
        return [cls.APPLYING, cls.PROGRESSING]

    @classmethod
    def final(cls) -> list[str]:
        return [cls.SUCCEEDED, cls.FAILED, cls.ROLLED_BACK, cls.SUPERSEDED, cls.CANCELLED]

    @classmethod
    def released(cls) -> list[str]:
        """States of a rollout that once ran successfully (it is, or was, the release)."""
        return [cls.SUCCEEDED, cls.ROLLED_BACK, cls.SUPERSEDED]


class RolloutKind(models.TextChoices):
    DEPLOY = "deploy", "Deploy"
    ROLLBACK = "rollback", "Rollback"
    AUTO_ROLLBACK = "auto_rollback", "Automatic rollback"


class Drift(models.TextChoices):
    """What the last check found running, compared with the release."""

    UNKNOWN = "", "Not checked"
    IN_SYNC = "in_sync", "In sync"
    DRIFTED = "drifted", "Drifted"  # another image, or other replicas, than released
    MISSING = "missing", "Missing"  # nothing runs: stopped, exited, restarting, removed, scaled to 0
    UNHEALTHY = "unhealthy", "Unhealthy"  # it runs, but does not answer ready (or not all replicas are available)

    @classmethod
    def problems(cls) -> list[str]:
        return [cls.DRIFTED, cls.MISSING, cls.UNHEALTHY]


class Rollout(models.Model):
    """One attempt to run a version's image (by digest) in an environment: a deployment record."""

    TEAM_LOOKUP = "model__team"
    ENVIRONMENT_LOOKUP = "environment__name"
    # Not stored: set when the row committed but its work could not be enqueued (the broker was down).
    queued_for_later = False

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="rollouts")
    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="rollouts")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="rollouts")
    build = models.ForeignKey(Build, on_delete=models.PROTECT, related_name="rollouts")
    image = models.CharField(max_length=500, help_text="The image by digest: repository@sha256:…")
    kind = models.CharField(max_length=16, choices=RolloutKind.choices, default=RolloutKind.DEPLOY)
    replaces = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="replaced_by",
        help_text="For a rollback: the rollout it undoes.",
    )
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.CharField(max_length=500, blank=True)
    state = models.CharField(max_length=16, choices=RolloutState.choices, default=RolloutState.QUEUED, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True, help_text="When another release replaced this one.")
    deployment_settings = models.JSONField(default=dict, blank=True)
    manifests = models.JSONField(default=list, blank=True)
    progress = models.JSONField(default=dict, blank=True)
    endpoint = models.CharField(max_length=300, blank=True)
    failure_reason = models.CharField(max_length=1000, blank=True)
    cancel_requested = models.BooleanField(default=False)
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    log_line_count = models.PositiveIntegerField(default=0)
    drift = models.CharField(max_length=16, choices=Drift.choices, default=Drift.UNKNOWN, blank=True)
    drift_detail = models.CharField(max_length=500, blank=True)
    drift_checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["environment", "model", "-finished_at"], name="rollout_history")]
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "model"],
                condition=models.Q(state__in=RolloutState.active()),
                name="one_active_rollout_per_environment_and_model",
                violation_error_message="A rollout of this model is already in progress in this environment.",
            )
        ]

    def __str__(self) -> str:
        return f"rollout {self.pk}: {self.version} to {self.environment}"

    @property
    def drift_problem(self) -> bool:
        return self.drift in Drift.problems()

    @property
    def is_finished(self) -> bool:
        return self.state in RolloutState.final()

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


class RolloutLogLine(models.Model):
    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="log_lines")
    seq = models.PositiveIntegerField()
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["rollout", "seq"]
        constraints = [models.UniqueConstraint(fields=["rollout", "seq"], name="rollout_log_seq_unique")]

    def __str__(self) -> str:
        return f"{self.seq}: {self.text[:80]}"
