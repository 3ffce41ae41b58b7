from django.conf import settings
from django.db import models
from django.utils import timezone

from registry.models import ModelVersion


def repository_of(reference: str) -> str:
    """`host:5000/team/model:tag@sha256:…` without its tag and digest."""
    reference = reference.split("@", 1)[0]
    slash = reference.rfind("/")
    colon = reference.rfind(":")
    return reference[:colon] if colon > slash else reference


class BuildState(models.TextChoices):
    QUEUED = "queued", "Queued"
    PREPARING = "preparing", "Preparing"
    BUILDING = "building", "Building"
    TESTING = "testing", "Smoke testing"  # the image just built serves its model, or it is never pushed
    PUSHING = "pushing", "Pushing"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"

    @classmethod
    def active(cls) -> list[str]:
        return [cls.QUEUED, cls.PREPARING, cls.BUILDING, cls.TESTING, cls.PUSHING]

    @classmethod
    def running(cls) -> list[str]:
        return [cls.PREPARING, cls.BUILDING, cls.TESTING, cls.PUSHING]

    @classmethod
    def final(cls) -> list[str]:
        return [cls.SUCCEEDED, cls.FAILED, cls.CANCELLED]


class Build(models.Model):
    """One attempt at turning a version into an image in the registry."""

    TEAM_LOOKUP = "version__model__team"
    # Not stored: set when the row committed but its work could not be enqueued (the broker was down).
    queued_for_later = False

    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="builds")
    state = models.CharField(max_length=16, choices=BuildState.choices, default=BuildState.QUEUED, db_index=True)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    registry = models.ForeignKey(
        "deployments.ContainerRegistry", null=True, on_delete=models.SET_NULL, related_name="builds"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # {"preparing": {"started": iso, "finished": iso, "seconds": 1.2}, ...}: what the timeline shows.
    steps = models.JSONField(default=dict, blank=True)
    image_reference = models.CharField(max_length=500, blank=True)
    image_digest = models.CharField(max_length=100, blank=True)
    image_size = models.BigIntegerField(null=True, blank=True)
    bill_of_materials = models.JSONField(default=list, blank=True)
    failure_reason = models.CharField(max_length=500, blank=True)
    # Empty: RUN steps had no network. Otherwise the site administrator's reason for allowing it.
    network_reason = models.CharField(max_length=300, blank=True)
    cancel_requested = models.BooleanField(default=False)
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    log_line_count = models.PositiveIntegerField(default=0)
    # The vulnerability scan: when it last ran (at the build, again when the database is refreshed)
    # and what it found, by severity ({"high": 1, ...}); findings are deployments.models.Finding rows.
    scanned_at = models.DateTimeField(null=True, blank=True)
    scan_seconds = models.FloatField(null=True, blank=True)
    vulnerability_counts = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Two builds of one version at once would race to push the same image.
            models.UniqueConstraint(
                fields=["version"],
                condition=models.Q(state__in=BuildState.active()),
                name="one_active_build_per_version",
                violation_error_message="This version already has a build in progress.",
            )
        ]

    def __str__(self) -> str:
        return f"build {self.pk} of {self.version}"

    @property
    def is_finished(self) -> bool:
        return self.state in BuildState.final()

    @property
    def digest_reference(self) -> str:
        """The image by digest: what every deployment uses, never the tag."""
        if not self.image_digest:
            return ""
        return f"{repository_of(self.image_reference)}@{self.image_digest}"

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


class BuildLogLine(models.Model):
    build = models.ForeignKey(Build, on_delete=models.CASCADE, related_name="log_lines")
    seq = models.PositiveIntegerField()
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["build", "seq"]
        constraints = [models.UniqueConstraint(fields=["build", "seq"], name="build_log_seq_unique")]

    def __str__(self) -> str:
        return f"{self.seq}: {self.text[:80]}"
