"""The vulnerability database the operator mirrors (its advisories and its state), what each build's
scan found, and the findings an environment admin accepted for a model."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from deployments.models.builds import Build
from deployments.models.environments import Environment
from deployments.osv.advisories import SEVERITIES, severity_rank
from registry.models import RegisteredModel


class Severity(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"

    @classmethod
    def rank(cls, value: str) -> int:
        return severity_rank(value)

    @classmethod
    def at_least(cls, value: str) -> list[str]:
        return [s for s in SEVERITIES if severity_rank(s) >= severity_rank(value)]


class VulnerabilityDatabase(models.Model):
    """The one row saying where the advisories came from and when (pk 1)."""

    source = models.CharField(max_length=500, blank=True, help_text="Without credentials.")
    refreshed_at = models.DateTimeField(null=True, blank=True, help_text="The last successful load.")
    attempted_at = models.DateTimeField(null=True, blank=True)
    advisory_count = models.PositiveIntegerField(default=0)
    withdrawn_count = models.PositiveIntegerField(default=0)
    skipped = models.JSONField(default=list, blank=True, help_text="Advisories the last load could not read.")
    last_error = models.CharField(max_length=500, blank=True)
    load_seconds = models.FloatField(null=True, blank=True)

    def __str__(self) -> str:
        return f"vulnerability database from {self.source or 'nowhere'}"


class Advisory(models.Model):
    osv_id = models.CharField(max_length=200, unique=True)
    modified = models.CharField(max_length=40)
    summary = models.CharField(max_length=300, blank=True)
    aliases = models.JSONField(default=list, blank=True)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.UNKNOWN)
    score = models.FloatField(null=True, blank=True)
    url = models.CharField(max_length=500, blank=True)

    def __str__(self) -> str:
        return self.osv_id


class AffectedPackage(models.Model):
    """One package an advisory affects: what the scanner looks up by (ecosystem, name)."""

    advisory = models.ForeignKey(Advisory, on_delete=models.CASCADE, related_name="affected")
    ecosystem = models.CharField(max_length=40)
    name = models.CharField(max_length=200)
    ranges = models.JSONField(default=list, blank=True)  # [{"type": "ECOSYSTEM", "events": [[kind, version], ...]}]
    versions = models.JSONField(default=list, blank=True)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.UNKNOWN)

    class Meta:
        indexes = [models.Index(fields=["ecosystem", "name"], name="affected_package_lookup")]

    def __str__(self) -> str:
        return f"{self.advisory_id}: {self.ecosystem}/{self.name}"


class Finding(models.Model):
    """An advisory affecting a package in a build's image, as its last scan found it."""

    TEAM_LOOKUP = "build__version__model__team"

    build = models.ForeignKey(Build, on_delete=models.CASCADE, related_name="findings")
    advisory_id = models.CharField(max_length=200)
    aliases = models.JSONField(default=list, blank=True)
    ecosystem = models.CharField(max_length=40)
    package = models.CharField(max_length=300)
    installed_version = models.CharField(max_length=200)
    fixed_version = models.CharField(max_length=200, blank=True)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.UNKNOWN)
    severity_rank = models.PositiveSmallIntegerField(default=0)
    summary = models.CharField(max_length=300, blank=True)
    url = models.CharField(max_length=500, blank=True)
    first_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-severity_rank", "package", "advisory_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["build", "advisory_id", "ecosystem", "package"], name="one_finding_per_scan"
            )
        ]

    def __str__(self) -> str:
        return f"{self.advisory_id} in {self.package} {self.installed_version}"

    @property
    def cve(self) -> str:
        """The CVE among the aliases, else the advisory id: what a reader looks for."""
        return next((a for a in self.aliases if a.startswith("CVE-")), self.advisory_id)

    def explain(self) -> str:
        """`CVE-… in numpy 1.24.0, high, fixed in 1.24.3`."""
        fix = f"fixed in {self.fixed_version}" if self.fixed_version else "no fix yet"
        return f"{self.cve} in {self.package} {self.installed_version}, {self.severity}, {fix}"


class FindingAcceptance(models.Model):
    """An environment admin accepted an advisory for a model there, with a reason, until an expiry."""

    TEAM_LOOKUP = "model__team"
    ENVIRONMENT_LOOKUP = "environment__name"

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="finding_acceptances")
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="finding_acceptances")
    advisory_id = models.CharField(max_length=200, help_text="The advisory id or one of its aliases (a CVE).")
    reason = models.TextField()
    expires_at = models.DateTimeField()
    accepted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.advisory_id} accepted for {self.model} in {self.environment}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()
