from django.conf import settings
from django.db import models
from django.utils import timezone

from deployments.crypto import EncryptedTextField
from deployments.models.builds import Build
from deployments.models.environments import Environment
from deployments.models.rollouts import Rollout
from registry.models import ModelVersion, RegisteredModel


class FreezeWindow(models.Model):
    """No deployments into the environment between the two times (break-glass aside)."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="freeze_windows")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=300)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")), name="freeze_window_ends_after_it_starts"
            )
        ]

    def __str__(self) -> str:
        return f"freeze of {self.environment} {self.starts_at:%Y-%m-%d %H:%M} to {self.ends_at:%Y-%m-%d %H:%M}"


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
    note = models.CharField(max_length=500, blank=True, help_text="Why the request is where it is.")

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
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            # Each person counts once per digest, whatever the number of clicks or API calls.
            models.UniqueConstraint(fields=["request", "approver", "digest"], name="one_decision_per_person_and_digest")
        ]

    def __str__(self) -> str:
        return f"{self.approver} {self.decision} {self.request}"


class Webhook(models.Model):
    """An HTTPS endpoint told about promotions and deployments, signed with HMAC-SHA256."""

    TEAM_LOOKUP = "team"

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=500)
    secret = EncryptedTextField(help_text="Shared secret for the signature; shown once, stored encrypted.")
    events = models.JSONField(default=list, blank=True, help_text="Event names; empty for all.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=64)
    payload = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveSmallIntegerField(default=0)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.event} to {self.webhook}"
