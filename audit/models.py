"""The audit trail: who did what to which object, with what outcome, and why. Rows are never changed.

Append-only is enforced three times: `save()`/`delete()` here, the queryset's bulk `update()`/`delete()`,
and a PostgreSQL trigger (migration 0002) that refuses UPDATE, DELETE and TRUNCATE of the tables
whatever the client. A reviewer's "I looked at this" is a new `AuditReview` row, not a change.

Users and teams named by events are protected from deletion (deactivate a user instead): SET_NULL
would be an UPDATE of history, which the trigger refuses anyway.
"""

import json

from django.conf import settings
from django.db import models
from django.db.models.functions import Now


class AppendOnlyError(Exception):
    """Raised on any attempt to change or remove an audit row from Django."""

    def __init__(self, what: str = "the audit trail"):
        super().__init__(f"{what} is append-only: entries cannot be changed or deleted")


class Outcome(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    REFUSED = "refused", "Refused"
    FAILED = "failed", "Failed"


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError(self.model._meta.verbose_name_plural)

    def _update(self, values):
        raise AppendOnlyError(self.model._meta.verbose_name_plural)

    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnlyError(self.model._meta.verbose_name_plural)

    def delete(self):
        raise AppendOnlyError(self.model._meta.verbose_name_plural)

    def _raw_delete(self, using):
        raise AppendOnlyError(self.model._meta.verbose_name_plural)


class AppendOnlyModel(models.Model):
    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding or kwargs.get("force_update") or kwargs.get("update_fields"):
            raise AppendOnlyError(str(self._meta.verbose_name_plural))
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(str(self._meta.verbose_name_plural))


class AuditEvent(AppendOnlyModel):
    created_at = models.DateTimeField(db_default=Now(), db_index=True, editable=False)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Empty when the platform itself acted.",
    )
    # Kept even if the user is later renamed: the trail says who it was at the time.
    actor_username = models.CharField(max_length=150)
    token_name = models.CharField(max_length=100, blank=True, help_text="The API token used, if any.")
    action = models.CharField(max_length=64, db_index=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SUCCEEDED)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    environment = models.CharField(max_length=63, blank=True)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True, help_text="The comment given, or why the action was refused.")
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    flagged = models.BooleanField(default=False, help_text="For review, e.g. a break-glass override.")
    request_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["object_type", "object_id"], name="audit_event_object"),
            models.Index(fields=["team", "-created_at"], name="audit_event_team_time"),
            models.Index(fields=["actor_username", "-created_at"], name="audit_event_actor_time"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(outcome__in=Outcome.values), name="audit_event_outcome_valid"),
        ]

    def __str__(self) -> str:
        target = f" {self.object_type}#{self.object_id}" if self.object_type else ""
        return f"{self.actor_username} {self.action}{target} ({self.outcome})"

    def changes(self) -> list[tuple[str, str, str]]:
        """(key, before, after) for each key whose value differs, values as display text."""
        before, after = self.before, self.after
        if not isinstance(before, dict) or not isinstance(after, dict):
            return [] if before == after else [("", _display(before), _display(after))]
        keys = [*before, *(key for key in after if key not in before)]
        missing = object()
        return [
            (key, _display(before.get(key, missing), missing), _display(after.get(key, missing), missing))
            for key in keys
            if before.get(key, missing) != after.get(key, missing)
        ]


def _display(value, missing=None) -> str:
    if value is missing or value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


class AuditReview(AppendOnlyModel):
    """A reviewer's note that they looked at an event (typically a flagged one). Also append-only."""

    event = models.ForeignKey(AuditEvent, on_delete=models.PROTECT, related_name="reviews")
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reviewer_username = models.CharField(max_length=150)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"Review of event #{self.event_id} by {self.reviewer_username}"
