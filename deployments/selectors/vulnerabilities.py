"""Reads of vulnerability scans: the database's state, a build's findings, what an environment blocks,
what a promotion adds and removes, and which running releases became vulnerable after they deployed."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from deployments.models import (
    Build,
    Environment,
    Finding,
    FindingAcceptance,
    PromotionRequest,
    Rollout,
    Severity,
    VulnerabilityDatabase,
)
from deployments.selectors.rollouts import current_release
from registry.models import RegisteredModel


@dataclass(frozen=True)
class DatabaseStatus:
    configured: bool
    source: str
    refreshed_at: datetime | None
    attempted_at: datetime | None
    advisory_count: int
    skipped: list
    last_error: str
    max_age_hours: int

    @property
    def age(self) -> timedelta | None:
        return timezone.now() - self.refreshed_at if self.refreshed_at else None

    @property
    def stale(self) -> bool:
        """Older than SLIPWAY_VULN_DB_MAX_AGE_HOURS, or never loaded while a source is configured."""
        if not self.configured:
            return False
        age = self.age
        return age is None or age > timedelta(hours=self.max_age_hours)


def database_status() -> DatabaseStatus:
    row = VulnerabilityDatabase.objects.filter(pk=1).first() or VulnerabilityDatabase()
    return DatabaseStatus(
        configured=bool(settings.VULN_DB),
        source=row.source,
        refreshed_at=row.refreshed_at,
        attempted_at=row.attempted_at,
        advisory_count=row.advisory_count,
        skipped=list(row.skipped),
        last_error=row.last_error,
        max_age_hours=settings.VULN_DB_MAX_AGE_HOURS,
    )


def findings_of(build: Build) -> QuerySet[Finding]:
    return Finding.objects.filter(build=build).order_by("-severity_rank", "package", "advisory_id")


def findings_filtered(build: Build, *, severity="", min_severity="", ecosystem="", q="") -> QuerySet[Finding]:
    """The build's findings narrowed as the build page and the API let a reader narrow them."""
    findings = findings_of(build)
    if severity in Severity.values:
        findings = findings.filter(severity=severity)
    if min_severity in Severity.values:
        findings = findings.filter(severity_rank__gte=Severity.rank(min_severity))
    if ecosystem:
        findings = findings.filter(ecosystem__istartswith=ecosystem)
    q = q.strip()
    if q:
        findings = findings.filter(Q(package__icontains=q) | Q(advisory_id__icontains=q) | Q(aliases__icontains=q))
    return findings


def active_acceptances(environment: Environment, model: RegisteredModel) -> QuerySet[FindingAcceptance]:
    return FindingAcceptance.objects.filter(
        environment=environment, model=model, revoked_at__isnull=True, expires_at__gt=timezone.now()
    ).select_related("accepted_by")


def acceptances_for(model: RegisteredModel) -> QuerySet[FindingAcceptance]:
    """Every acceptance of the model, in every environment, expired and revoked ones included."""
    return FindingAcceptance.objects.filter(model=model).select_related("environment", "accepted_by")


def acceptance_of(finding: Finding, acceptances) -> FindingAcceptance | None:
    """The acceptance covering the finding: by its advisory id or one of its aliases (a CVE)."""
    names = {finding.advisory_id, *finding.aliases}
    return next((a for a in acceptances if a.advisory_id in names), None)


def blocking_findings(environment: Environment, build: Build) -> list[Finding]:
    """The build's findings at or above the environment's threshold that no active acceptance covers."""
    if not environment.block_severity:
        return []
    acceptances = list(active_acceptances(environment, build.version.model))
    return [
        finding
        for finding in findings_of(build).filter(severity_rank__gte=Severity.rank(environment.block_severity))
        if acceptance_of(finding, acceptances) is None
    ]


def _key(finding: Finding) -> tuple[str, str, str]:
    return (finding.advisory_id, finding.ecosystem, finding.package)


@dataclass(frozen=True)
class FindingDelta:
    running: Rollout | None
    added: list[Finding]
    removed: list[Finding]
    kept: int


def promotion_delta(promotion: PromotionRequest) -> FindingDelta:
    """What the request's image adds and removes, compared with what runs in its environment now."""
    running = current_release(promotion.environment, promotion.model)
    new = {_key(f): f for f in findings_of(promotion.build)}
    old = {_key(f): f for f in findings_of(running.build)} if running else {}
    return FindingDelta(
        running=running,
        added=[f for key, f in new.items() if key not in old],
        removed=[f for key, f in old.items() if key not in new],
        kept=len(new.keys() & old.keys()),
    )


@dataclass(frozen=True)
class VulnerableRelease:
    rollout: Rollout
    new_findings: int
    worst: str


def vulnerable_since_release(rollouts) -> dict[int, VulnerableRelease]:
    """Running releases whose image was found vulnerable after it was deployed, by rollout id.

    A finding first seen after the rollout finished came from a re-check against a newer database.
    """
    rollouts = [r for r in rollouts if r.finished_at]
    if not rollouts:
        return {}
    # One condition for all, not one per release: an OR of hundreds of clauses (the overview asks for
    # every running release) cost more to build and plan than to run. Each release's own time is
    # checked below.
    late_findings = Finding.objects.filter(
        build_id__in={r.build_id for r in rollouts}, first_seen_at__gt=min(r.finished_at for r in rollouts)
    )
    found: dict[int, list[tuple]] = defaultdict(list)
    for build_id, seen, rank in late_findings.values_list("build_id", "first_seen_at", "severity_rank"):
        found[build_id].append((seen, rank))
    flagged = {}
    for rollout in rollouts:
        late = [rank for seen, rank in found.get(rollout.build_id, []) if seen > rollout.finished_at]
        if late:
            flagged[rollout.pk] = VulnerableRelease(rollout, len(late), Severity.values[max(late)])
    return flagged
