"""Whether an installed version falls in an advisory's ranges, by OSV's rules, and what fixes it.

The rules (https://ossf.github.io/osv-schema/#evaluation): a range's events are ordered by version;
walking them, `introduced` at or below the version makes it affected, `fixed` at or below it makes it
not affected, `last_affected` below it makes it not affected. An explicit `versions` list matches
exactly. "0" as `introduced` is before every version.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from deployments.osv.advisories import SEVERITIES, Affected, Range, severity_rank
from deployments.osv.versions import UnorderedVersion, ecosystem_family, version_key

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


def _key(family: str, version: str) -> Any:
    return version_key(family, version)


def affects(affected: Affected, version: str) -> Match:
    """Does `affected` (one package's entry of an advisory) cover `version`?"""
    if version in affected.versions:
        return Match(True, _fixed_above(affected, version))
    family = ecosystem_family(affected.ecosystem)
    try:
        installed = _key(family, version)
    except UnorderedVersion:
        return Match(False)  # only the explicit versions list can speak of it
    for item in affected.ranges:
        if _in_range(family, item, installed):
            return Match(True, _fixed_above(affected, version))
    return Match(False)


def _in_range(family: str, item: Range, installed: Any) -> bool:
    events = []
    for kind, version in item.events:
        if kind == "limit":
            continue  # only meaningful for GIT ranges
        if kind == "introduced" and version == "0":
            events.append((None, 0, kind))
            continue
        try:
            events.append((_key(family, version), 1, kind))
        except UnorderedVersion:
            continue  # an event the ecosystem cannot order cannot bound this version
    events.sort(key=_event_order)
    affected = False
    for key, _, kind in events:
        if kind == "introduced":
            if key is None or installed >= key:
                affected = True
        elif kind == "fixed":
            if installed >= key:
                affected = False
        elif kind == "last_affected" and installed > key:
            affected = False
    return affected


def _event_order(event: tuple[Any, int, str]) -> Any:
    key, rank, _ = event
    return _OrderKey(key, rank)


class _OrderKey:
    """Orders events by version, the "0" of `introduced` (rank 0) before every version."""

    __slots__ = ("key", "rank")

    def __init__(self, key: Any, rank: int) -> None:
        self.key, self.rank = key, rank

    def __lt__(self, other: _OrderKey) -> bool:
        if self.rank != other.rank:
            return self.rank < other.rank
        return bool(self.rank and self.key < other.key)


def _fixed_above(affected: Affected, version: str) -> str:
    family = ecosystem_family(affected.ecosystem)
    try:
        installed = _key(family, version)
    except UnorderedVersion:
        installed = None
    candidates = []
    for item in affected.ranges:
        for kind, fixed in item.events:
            if kind != "fixed":
                continue
            try:
                key = _key(family, fixed)
            except UnorderedVersion:
                continue
            if installed is None or key > installed:
                candidates.append((key, fixed))
    if not candidates:
        return ""
    return min(candidates, key=lambda pair: _OrderKey(pair[0], 1))[1]


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
