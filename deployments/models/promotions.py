from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from deployments.models.builds import Build
from deployments.models.environments import Environment
from deployments.models.rollouts import Rollout
from registry.models import ModelVersion, RegisteredModel


class PromotionState(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"
    DEPLOYED = "deployed", "Deployed"


class PromotionRequest(models.Model):
    """A request to run a version's image (by digest) in a protected environment."""

    TEAM_LOOKUP = "model__team"
    ENVIRONMENT_LOOKUP = "environment__name"

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="promotion_requests")
    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="promotion_requests")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="promotion_requests")
    build = models.ForeignKey(Build, on_delete=models.PROTECT, related_name="promotion_requests")
    image = models.CharField(max_length=500, help_text="The image by digest the approvals are bound to.")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_with_token = models.CharField(max_length=100, blank=True)
    reason = models.TextField()
    state = models.CharField(
        max_length=16, choices=PromotionState.choices, default=PromotionState.PENDING, db_index=True
    )
    required_approvals = models.PositiveSmallIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    rollout = models.OneToOneField(Rollout, null=True, blank=True, on_delete=models.SET_NULL, related_name="promotion")
    break_glass_justification = models.TextField(blank=True)
    # Frozen when requested: approvers approve these settings with the digest, and the rollout uses them.
    deployment_settings = models.JSONField(default=dict, blank=True)
    note = models.CharField(max_length=500, blank=True, help_text="Why the request is where it is.")
    decision_context = models.JSONField(
        default=dict,
        blank=True,
        help_text="What the request changes, as it stood when it was made (or when a rebuild rebound it): "
        "digest, dependency, metric and settings differences, and where the digest ran.",
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "model"],
                condition=models.Q(state="pending"),
                name="one_pending_promotion_per_environment_and_model",
                violation_error_message="This model already has a pending promotion to this environment.",
            )
        ]

    def __str__(self) -> str:
        return f"promotion {self.pk}: {self.version} to {self.environment}"

    @property
    def digest(self) -> str:
        return self.image.split("@", 1)[-1]

    @property
    def is_live(self) -> bool:
        """Whether its page still changes by itself: approvals may come, or the rollout it started
        runs (and for a little while after it ends, until the request says how it went)."""
        if self.state == PromotionState.PENDING:
            return True
        if self.state != PromotionState.APPROVED:
            return False
        rollout = self.rollout
        if rollout is None or not rollout.is_finished or rollout.finished_at is None:
            return True
        return rollout.finished_at > timezone.now() - timedelta(seconds=30)


class ApprovalDecision(models.TextChoices):
    APPROVE = "approve", "Approved"
    REJECT = "reject", "Rejected"


class Approval(models.Model):
    """One person's decision on a request, bound to the digest they saw."""

    request = models.ForeignKey(PromotionRequest, on_delete=models.CASCADE, related_name="approvals")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=8, choices=ApprovalDecision.choices)
    digest = models.CharField(max_length=100)
    comment = models.TextField(blank=True)
    token_name = models.CharField(max_length=100, blank=True)
    context = models.JSONField(default=dict, blank=True, help_text="What the request changed, as this person saw it.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            # Each person counts once per digest, whatever the number of clicks or API calls.
            models.UniqueConstraint(fields=["request", "approver", "digest"], name="one_decision_per_person_and_digest")
        ]

    def __str__(self) -> str:
        return f"{self.approver} {self.decision} {self.request}"
