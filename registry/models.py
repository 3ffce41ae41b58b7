"""Registered models and their immutable versions."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.models import Team, dns_label_validator


class Framework(models.TextChoices):
    SKLEARN = "sklearn", "scikit-learn"
    ONNX = "onnx", "ONNX"
    PYTHON = "python", "Python class"
    CUSTOM = "custom", "Custom Dockerfile"
    IMAGE = "image", "Prebuilt image"


class RegisteredModel(models.Model):
    TEAM_LOOKUP = "team"

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="models")
    name = models.CharField(max_length=63, validators=[dns_label_validator])
    description = models.TextField(blank=True)
    task = models.CharField(max_length=64, blank=True, help_text="A free label, e.g. classification.")
    auto_build = models.BooleanField(default=True, help_text="Build an image when a version is uploaded.")
    archived = models.BooleanField(default=False)
    archived_at = models.DateTimeField(null=True, blank=True)
    # Builds have no network unless a site administrator allows it, saying why (shown on every build).
    build_network_reason = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["team__slug", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "name"],
                name="model_name_unique_in_team",
                violation_error_message="The team already has a model with this name.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}"


class ImmutableError(Exception):
    pass


class ModelVersion(models.Model):
    TEAM_LOOKUP = "model__team"
    # Not stored: set when the row committed but the build of a new version could not be enqueued (the broker was down).
    queued_for_later = False

    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    label = models.CharField(max_length=128, blank=True)
    framework = models.CharField(max_length=16, choices=Framework.choices)
    artifact = models.FileField(upload_to="artifacts/", max_length=500, blank=True)
    artifact_name = models.CharField(max_length=255, blank=True)
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    artifact_size = models.BigIntegerField(default=0)
    artifact_info = models.JSONField(default=dict, blank=True)
    # "": inspected at upload (or nothing to inspect). A large archive or ONNX file is inspected on a
    # worker: "inspecting" until then, "rejected" (with the reason in inspection_note) if it failed.
    # Set with a queryset update: the artifact itself never changes.
    inspection = models.CharField(max_length=16, blank=True, db_index=True)
    inspection_note = models.CharField(max_length=500, blank=True)
    image_reference = models.CharField(max_length=500, blank=True)
    requirements = models.JSONField(default=list, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    signature = models.JSONField(default=dict, blank=True)
    source_url = models.URLField(max_length=500, blank=True)
    source_commit = models.CharField(max_length=64, blank=True)
    tags = models.JSONField(default=list, blank=True)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["model", "number"], name="version_number_unique_in_model"),
            models.UniqueConstraint(
                fields=["model", "label"], condition=~models.Q(label=""), name="version_label_unique_in_model"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model}:v{self.number}"

    def save(self, *args, **kwargs):
        # A version is a record of what was built and deployed; changing it afterwards would
        # make history lie. New content means a new version.
        if self.pk is not None:
            raise ImmutableError("Model versions are immutable; upload a new version instead.")
        super().save(*args, **kwargs)

    @property
    def display_name(self) -> str:
        return f"v{self.number}" + (f" ({self.label})" if self.label else "")
