"""Keeping the vulnerability database, scanning builds against it, and accepting findings.

The database is read from SLIPWAY_VULN_DB (deployments.osv.sources) outside any transaction, then
stored as one change: advisories whose `modified` changed are replaced, those no longer published
(or withdrawn) are deleted. After each refresh, the image of every running release is scanned again;
a finding that was not there before is a release that became vulnerable after it was deployed, and
its team is told (email and webhooks).
"""

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from itertools import islice

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.permissions import Action, Actor, Refused, require
from audit.services import record
from deployments.models import (
    Advisory,
    AffectedPackage,
    Build,
    Environment,
    Finding,
    FindingAcceptance,
    Rollout,
    RolloutState,
    Severity,
    VulnerabilityDatabase,
)
from deployments.osv import advisories as osv_advisories
from deployments.osv import matching, sources
from deployments.osv.cyclonedx import component_ecosystem
from deployments.osv.versions import PYPI, normalise_name
from deployments.services import notifications
from registry.models import RegisteredModel

logger = logging.getLogger(__name__)

BATCH = 2000
SKIPPED_KEPT = 50  # the warnings of a load shown to admins; the log has them all


def _chunks(items, size=BATCH):
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


# -- the database ---------------------------------------------------------------------------------------


def database_refresh(*, source: str | None = None) -> dict:
    """Load the advisories from the configured source, store them, and re-check running releases."""
    source = settings.VULN_DB if source is None else source
    if not source:
        return {"configured": False}
    started, now = time.monotonic(), timezone.now()
    try:
        loaded = sources.load(source)
    except sources.SourceUnavailable as exc:
        logger.error("vulnerability database not refreshed: %s", exc)
        VulnerabilityDatabase.objects.update_or_create(
            pk=1, defaults={"attempted_at": now, "last_error": str(exc)[:500], "source": sources.describe(source)}
        )
        return {"configured": True, "error": str(exc)}
    changes = _store(loaded.advisories)
    VulnerabilityDatabase.objects.update_or_create(
        pk=1,
        defaults={
            "source": sources.describe(source),
            "refreshed_at": now,
            "attempted_at": now,
            "advisory_count": Advisory.objects.count(),
            "withdrawn_count": loaded.withdrawn,
            "skipped": loaded.skipped[:SKIPPED_KEPT],
            "last_error": "",
            "load_seconds": round(time.monotonic() - started, 2),
        },
    )
    logger.info(
        "vulnerability database refreshed from %s: %s added or changed, %s removed, %s skipped",
        sources.describe(source),
        changes["changed"],
        changes["removed"],
        len(loaded.skipped),
    )
    recheck = recheck_running_releases()
    return {"configured": True, **changes, "skipped": len(loaded.skipped), **recheck}


def _store(loaded: list[osv_advisories.Advisory]) -> dict:
    by_id = {advisory.id: advisory for advisory in loaded}
    VulnerabilityDatabase.objects.get_or_create(pk=1)
    with transaction.atomic():
        # Two refreshes at once (a slow one and the next beat) take turns: the second finds nothing to do.
        VulnerabilityDatabase.objects.select_for_update().get(pk=1)
        stored = dict(Advisory.objects.values_list("osv_id", "modified"))
        changed = [a for a in by_id.values() if stored.get(a.id) != a.modified]
        gone = [osv_id for osv_id in stored if osv_id not in by_id]
        for chunk in _chunks([*gone, *(a.id for a in changed if a.id in stored)]):
            AffectedPackage.objects.filter(advisory__osv_id__in=chunk).delete()
            Advisory.objects.filter(osv_id__in=chunk).delete()
        for chunk in _chunks(changed):
            rows = Advisory.objects.bulk_create(
                [
                    Advisory(
                        osv_id=a.id,
                        modified=a.modified,
                        summary=a.summary,
                        aliases=list(a.aliases),
                        severity=a.severity,
                        score=a.score,
                        url=a.url,
                    )
                    for a in chunk
                ]
            )
            AffectedPackage.objects.bulk_create(
                [
                    AffectedPackage(
                        advisory_id=row.pk,
                        ecosystem=entry.ecosystem,
                        name=entry.name,
                        ranges=[{"type": r.type, "events": [list(e) for e in r.events]} for r in entry.ranges],
                        versions=list(entry.versions),
                        severity=entry.severity,
                    )
                    for row, advisory in zip(rows, chunk, strict=True)
                    for entry in advisory.affected
                ],
                batch_size=BATCH,
            )
    return {"changed": len(changed), "removed": len(gone)}


# -- scanning -----------------------------------------------------------------------------------------


def installed_packages(bill_of_materials: list[dict]) -> list[matching.Installed]:
    """What the scanner looks up for a bill of materials: Python packages by name, Debian packages by the
    source package they were built from (what Debian's advisories name)."""
    installed: dict[tuple, matching.Installed] = {}
    for item in bill_of_materials:
        ecosystem = component_ecosystem(item)
        if ecosystem == PYPI:
            name = normalise_name(ecosystem, item["name"])
            installed[(ecosystem, name)] = matching.Installed(ecosystem, name, item["version"])
        elif ecosystem.startswith("Debian:"):
            source = item.get("source") or item["name"]
            version = item.get("source_version") or item["version"]
            installed[(ecosystem, source, version)] = matching.Installed(ecosystem, source, version)
    return list(installed.values())


def _candidates(installed: list[matching.Installed]) -> dict:
    """(ecosystem, name) -> [(advisory, affected entry)] for every stored entry naming an installed package.

    Read as plain values, not model instances: a Debian image names thousands of entries.
    """
    names = defaultdict(set)
    for package in installed:
        names[package.ecosystem].add(package.name)
    if not names:
        return {}
    condition = Q()
    for ecosystem, wanted in names.items():
        condition |= Q(ecosystem=ecosystem, name__in=sorted(wanted))
    advisories: dict[str, _StoredAdvisory] = {}
    candidates = defaultdict(list)
    # Aliases, summaries and links are read afterwards, for the few advisories that match (_described).
    rows = AffectedPackage.objects.filter(condition).values_list(
        "ecosystem", "name", "ranges", "versions", "severity", "advisory__osv_id", "advisory__severity"
    )
    for ecosystem, name, ranges, versions, severity, osv_id, advisory_severity in rows:
        advisory = advisories.get(osv_id)
        if advisory is None:
            advisory = advisories[osv_id] = _StoredAdvisory(osv_id, (), advisory_severity, "", "")
        entry = osv_advisories.Affected(
            ecosystem=ecosystem,
            name=name,
            ranges=tuple(osv_advisories.Range(r["type"], tuple(map(tuple, r["events"]))) for r in ranges),
            versions=tuple(versions),
            severity=severity,
        )
        candidates[(ecosystem, name)].append((advisory, entry))
    return candidates


def _described(found: list[matching.Finding]) -> list[matching.Finding]:
    """The findings with their advisories' aliases, summaries and links."""
    details = {
        osv_id: (tuple(aliases), summary, url)
        for osv_id, aliases, summary, url in Advisory.objects.filter(
            osv_id__in={f.advisory_id for f in found}
        ).values_list("osv_id", "aliases", "summary", "url")
    }
    described = []
    for finding in found:
        aliases, summary, url = details.get(finding.advisory_id, ((), "", ""))
        described.append(replace(finding, aliases=aliases, summary=summary, url=url))
    return described


@dataclass(frozen=True)
class _StoredAdvisory:
    """A stored advisory as deployments.osv.matching reads one (its description comes later)."""

    id: str
    aliases: tuple
    severity: str
    summary: str
    url: str


@dataclass
class ScanResult:
    findings: int = 0
    counts: dict = field(default_factory=dict)
    new: list = field(default_factory=list)  # Finding rows not seen by this build's earlier scans
    seconds: float = 0.0
    rescanned: bool = False  # the build had been scanned before


def scan_build(build: Build, bill_of_materials: list[dict] | None = None) -> ScanResult:
    """Scan the build's packages against the stored advisories; its findings become what this scan found."""
    started = time.monotonic()
    bill = build.bill_of_materials if bill_of_materials is None else bill_of_materials
    installed = installed_packages(bill)
    found = _described(matching.find(installed, _candidates(installed)))
    now = timezone.now()
    counts = {severity: 0 for severity in Severity.values}
    for finding in found:
        counts[finding.severity] += 1
    result = ScanResult(findings=len(found), counts=counts, rescanned=build.scanned_at is not None)
    with transaction.atomic():
        existing = {(f.advisory_id, f.ecosystem, f.package): f for f in Finding.objects.filter(build=build)}
        keep = set()
        new_rows = []
        for finding in found:
            key = (finding.advisory_id, finding.ecosystem, finding.package)
            keep.add(key)
            fields = {
                "aliases": list(finding.aliases),
                "installed_version": finding.installed_version,
                "fixed_version": finding.fixed_version,
                "severity": finding.severity,
                "severity_rank": Severity.rank(finding.severity),
                "summary": finding.summary,
                "url": finding.url,
            }
            if key in existing:
                row = existing[key]
                if any(getattr(row, name) != value for name, value in fields.items()):
                    Finding.objects.filter(pk=row.pk).update(**fields)
            else:
                new_rows.append(
                    Finding(
                        build=build,
                        advisory_id=finding.advisory_id,
                        ecosystem=finding.ecosystem,
                        package=finding.package,
                        first_seen_at=now,
                        **fields,
                    )
                )
        Finding.objects.filter(pk__in=[f.pk for key, f in existing.items() if key not in keep]).delete()
        result.new = Finding.objects.bulk_create(new_rows)
        result.seconds = round(time.monotonic() - started, 3)
        Build.objects.filter(pk=build.pk).update(
            scanned_at=now, scan_seconds=result.seconds, vulnerability_counts=counts
        )
    build.scanned_at, build.scan_seconds, build.vulnerability_counts = now, result.seconds, counts
    return result


def recheck_running_releases() -> dict:
    """Scan again the image of every running release; tell the team of each that became vulnerable."""
    releases = list(
        Rollout.objects.filter(state=RolloutState.SUCCEEDED).select_related(
            "build", "environment", "model__team", "version"
        )
    )
    by_build = defaultdict(list)
    for release in releases:
        by_build[release.build_id].append(release)
    flagged = 0
    for rollouts in by_build.values():
        build = rollouts[0].build
        result = scan_build(build)
        if not result.new:
            continue
        for rollout in rollouts:
            late = [f for f in result.new if rollout.finished_at and f.first_seen_at > rollout.finished_at]
            if late:
                flagged += 1
                notifications.release_vulnerable_event(rollout, late)
    return {"rechecked": len(by_build), "flagged": flagged}


# -- accepting findings -----------------------------------------------------------------------------------


def _require_environment_admin(actor: Actor, environment: Environment) -> None:
    """Findings are accepted by the environment's admins (a global environment's: site administrators)."""
    require(actor, Action.MANAGE_TEAM, environment)


def acceptance_create(
    *,
    actor: Actor,
    environment: Environment,
    model: RegisteredModel,
    advisory_id: str,
    reason: str,
    expires_at: datetime,
) -> FindingAcceptance:
    """An environment's admin accepts an advisory for one model there, with a reason, until `expires_at`."""
    advisory_id, reason = advisory_id.strip(), reason.strip()
    try:
        _require_environment_admin(actor, environment)
        if environment.team_id is not None and environment.team_id != model.team_id:
            raise ValidationError({"environment": f"{environment.name} belongs to another team."})
        errors = {}
        if not advisory_id:
            errors["advisory_id"] = "Name the advisory (its id or a CVE)."
        if not reason:
            errors["reason"] = "Say why this finding is acceptable for this model."
        latest = timezone.now() + timedelta(days=settings.VULN_ACCEPT_MAX_DAYS)
        if expires_at <= timezone.now():
            errors["expires_at"] = "The expiry must be in the future."
        elif expires_at > latest:
            errors["expires_at"] = f"An acceptance lasts at most {settings.VULN_ACCEPT_MAX_DAYS} days."
        if errors:
            raise ValidationError(errors)
    except Refused:
        raise  # the policy recorded it
    except (PermissionDenied, ValidationError) as exc:
        record(
            actor=actor,
            action="vulnerability.accept",
            obj=model,
            outcome="refused",
            reason=" ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc),
            environment=environment.name,
        )
        raise
    with transaction.atomic():
        acceptance = FindingAcceptance.objects.create(
            environment=environment,
            model=model,
            advisory_id=advisory_id,
            reason=reason,
            expires_at=expires_at,
            accepted_by=actor.user,
        )
        record(
            actor=actor,
            action="vulnerability.accept",
            obj=acceptance,
            environment=environment.name,
            reason=reason,
            after={"advisory": advisory_id, "model": model.name, "expires_at": expires_at},
            flagged=True,
        )
    return acceptance


def acceptance_revoke(*, actor: Actor, acceptance: FindingAcceptance) -> FindingAcceptance:
    environment = acceptance.environment
    _require_environment_admin(actor, environment)
    with transaction.atomic():
        if not FindingAcceptance.objects.filter(pk=acceptance.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        ):
            raise ValidationError("This acceptance was already revoked.")
        record(
            actor=actor,
            action="vulnerability.revoke",
            obj=acceptance,
            environment=environment.name,
            before={"advisory": acceptance.advisory_id, "expires_at": acceptance.expires_at},
        )
    acceptance.refresh_from_db()
    return acceptance
