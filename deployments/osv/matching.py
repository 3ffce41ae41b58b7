"""Whether an installed version falls in an advisory's ranges, by OSV's rules, and what fixes it.

The rules (https://ossf.github.io/osv-schema/#evaluation): a range's events are ordered by version;
walking them, `introduced` at or below the version makes it affected, `fixed` at or below it makes it
not affected, `last_affected` below it makes it not affected. An explicit `versions` list matches
exactly. "0" as `introduced` is before every version.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cmp_to_key
from typing import Any

from deployments.osv.advisories import SEVERITIES, Affected, Range, severity_rank
from deployments.osv.versions import UnorderedVersion, compare, ecosystem_family, version_key

__all__ = ["Finding", "Installed", "Match", "affects", "find"]


@dataclass(frozen=True)
class Installed:
    """A package in an image, as the scanner looks it up: Debian packages by their source package."""

    ecosystem: str  # "PyPI", "Debian:12"
    name: str  # normalised; for Debian the source package
    version: str  # for Debian the source version
    label: str = ""  # what a reader knows it as: the binary packages for Debian ("libssl3, openssl")


@dataclass(frozen=True)
class Match:
    affected: bool
    fixed: str = ""  # the lowest fixed version above the installed one, when there is one


@dataclass(frozen=True)
class Finding:
    advisory_id: str
    aliases: tuple[str, ...]
    ecosystem: str
    package: str
    installed_version: str
    fixed_version: str
    severity: str
    summary: str
    url: str


def _orderable(family: str, version: str) -> bool:
    try:
        version_key(family, version)
    except UnorderedVersion:
        return False
    return True


def affects(affected: Affected, version: str) -> Match:
    """Does `affected` (one package's entry of an advisory) cover `version`?"""
    if version in affected.versions:
        return Match(True, _fixed_above(affected, version))
    family = ecosystem_family(affected.ecosystem)
    if not _orderable(family, version):
        return Match(False)  # only the explicit versions list can speak of it
    for item in affected.ranges:
        if _in_range(family, item, version):
            return Match(True, _fixed_above(affected, version))
    return Match(False)


def _in_range(family: str, item: Range, installed: str) -> bool:
    # "limit" only bounds GIT ranges; an event the ecosystem cannot order cannot bound this version.
    events = [
        (kind, version)
        for kind, version in item.events
        if kind != "limit" and ((kind == "introduced" and version == "0") or _orderable(family, version))
    ]
    if len(events) > 2 or (len(events) == 2 and events[0] != ("introduced", "0")):

        def order(a: tuple[str, str], b: tuple[str, str]) -> int:
            return _event_order(family, a, b)

        events.sort(key=cmp_to_key(order))
    affected = False
    for kind, version in events:
        if kind == "introduced":
            if version == "0" or compare(family, installed, version) >= 0:
                affected = True
        elif kind == "fixed":
            if compare(family, installed, version) >= 0:
                affected = False
        elif kind == "last_affected" and compare(family, installed, version) > 0:
            affected = False
    return affected


def _event_order(family: str, a: tuple[str, str], b: tuple[str, str]) -> int:
    """Events by version, the "0" of `introduced` before every version."""
    zero_a, zero_b = a == ("introduced", "0"), b == ("introduced", "0")
    if zero_a or zero_b:
        return int(zero_b) - int(zero_a)
    return compare(family, a[1], b[1])


def _fixed_above(affected: Affected, version: str) -> str:
    family = ecosystem_family(affected.ecosystem)
    installed_orderable = _orderable(family, version)
    candidates = [
        fixed
        for item in affected.ranges
        for kind, fixed in item.events
        if kind == "fixed"
        and _orderable(family, fixed)
        and (not installed_orderable or compare(family, fixed, version) > 0)
    ]
    if not candidates:
        return ""
    return min(candidates, key=cmp_to_key(lambda a, b: compare(family, a, b)))


def find(
    installed: Iterable[Installed], candidates: dict[tuple[str, str], list[tuple[Any, Affected]]]
) -> list[Finding]:
    """Every (advisory, package) that affects an installed package.

    `candidates` maps (ecosystem, name) to (advisory, affected entry) pairs; the advisory is any
    object with `id`, `aliases`, `severity`, `summary` and `url` (deployments.osv.advisories.Advisory,
    or the stored row).
    """
    findings: dict[tuple[str, str, str], Finding] = {}
    for package in installed:
        for advisory, entry in candidates.get((package.ecosystem, package.name), ()):
            match = affects(entry, package.version)
            if not match.affected:
                continue
            severity = advisory.severity
            if severity_rank(entry.severity) > severity_rank(severity):
                severity = entry.severity
            key = (advisory.id, package.ecosystem, package.name)
            findings[key] = Finding(
                advisory_id=advisory.id,
                aliases=tuple(advisory.aliases),
                ecosystem=package.ecosystem,
                package=package.label or package.name,
                installed_version=package.version,
                fixed_version=match.fixed,
                severity=severity if severity in SEVERITIES else "unknown",
                summary=advisory.summary,
                url=advisory.url,
            )
    return sorted(findings.values(), key=lambda f: (-severity_rank(f.severity), f.package, f.advisory_id))
