from django.db import models
from django.utils import timezone

from audit.redaction import redact_url
from deployments.crypto import EncryptedTextField


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
        return self.shown_url

    @property
    def shown_url(self) -> str:
        """The URL as the team at large sees it (the audit trail): its host, never its path, query or
        credentials, where receivers carry their tokens. The team's admins read it whole from the API."""
        return redact_url(self.url, keep_path=False)


class WebhookDelivery(models.Model):
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=64)
    payload = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveSmallIntegerField(default=0)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    # When the next attempt is due (the one under way: when it began); none once delivered or given up.
    # A delivery due for long was lost with its message or its worker, and is enqueued again.
    due_at = models.DateTimeField(null=True, blank=True, default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.event} to {self.webhook}"
