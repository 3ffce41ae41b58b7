"""One OSV advisory, read from its JSON into what matching needs, with its severity.

The schema: https://ossf.github.io/osv-schema/. An advisory this module cannot read raises
MalformedAdvisory naming what is wrong, so the loader can skip it with a warning and go on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cvss import CVSS2, CVSS3, CVSS4
from cvss.exceptions import CVSSError

from deployments.osv.versions import FAMILIES, ecosystem_family, normalise_name

__all__ = [
    "SEVERITIES",
    "Advisory",
    "Affected",
    "MalformedAdvisory",
    "Range",
    "parse_advisory",
    "severity_rank",
]

# Ranked from least to most severe; "unknown" when the advisory says nothing usable.
SEVERITIES = ("unknown", "low", "medium", "high", "critical")
_LABELS = {
    "low": "low",
    "unimportant": "low",
    "moderate": "medium",
    "medium": "medium",
    "high": "high",
    "important": "high",
    "critical": "critical",
}
_CVSS = {"CVSS_V2": CVSS2, "CVSS_V3": CVSS3, "CVSS_V4": CVSS4}
_RANGE_TYPES = ("ECOSYSTEM", "SEMVER")  # GIT ranges name commits, which installed packages do not have
_EVENTS = ("introduced", "fixed", "last_affected", "limit")


class MalformedAdvisory(ValueError):
    """The advisory does not follow the OSV schema where matching depends on it."""


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


@dataclass(frozen=True)
class Range:
    type: str
    events: tuple[tuple[str, str], ...]  # (kind, version), kind one of introduced/fixed/last_affected/limit


@dataclass(frozen=True)
class Affected:
    ecosystem: str  # as the advisory says it: "PyPI", "Debian:12"
    name: str  # normalised (deployments.osv.versions.normalise_name)
    ranges: tuple[Range, ...] = ()
    versions: tuple[str, ...] = ()
    severity: str = "unknown"  # when the affected entry says more than the advisory (Debian's urgency)


@dataclass(frozen=True)
class Advisory:
    id: str
    modified: str
    summary: str = ""
    aliases: tuple[str, ...] = ()
    severity: str = "unknown"
    score: float | None = None
    url: str = ""
    withdrawn: bool = False
    affected: tuple[Affected, ...] = field(default_factory=tuple)


def parse_advisory(raw: Any, *, families: tuple[str, ...] = FAMILIES) -> Advisory:
    """Reads one advisory; only the affected entries of `families` (PyPI, Debian) are kept."""
    if not isinstance(raw, Mapping):
        raise MalformedAdvisory("an advisory must be a JSON object")
    advisory_id = raw.get("id")
    if not isinstance(advisory_id, str) or not advisory_id.strip():
        raise MalformedAdvisory("'id' is missing or not a string")
    modified = raw.get("modified")
    if not isinstance(modified, str) or not modified:
        raise MalformedAdvisory(f"{advisory_id}: 'modified' is missing or not a string")
    affected_raw = raw.get("affected", [])
    if not isinstance(affected_raw, list):
        raise MalformedAdvisory(f"{advisory_id}: 'affected' must be a list")
    affected = tuple(
        entry
        for index, item in enumerate(affected_raw)
        if (entry := _affected(advisory_id, index, item, families)) is not None
    )
    aliases = raw.get("aliases") or []
    upstream = raw.get("upstream") or []  # Debian's advisories name the CVE they track here
    if not isinstance(aliases, list) or not isinstance(upstream, list):
        raise MalformedAdvisory(f"{advisory_id}: 'aliases' must be a list")
    severity, score = _severity(advisory_id, raw)
    summary = raw.get("summary") or raw.get("details") or ""
    return Advisory(
        id=advisory_id.strip(),
        modified=modified,
        summary=str(summary).strip().splitlines()[0][:300] if summary else "",
        aliases=tuple(dict.fromkeys(str(a) for a in [*aliases, *upstream] if a and a != advisory_id)),
        severity=severity,
        score=score,
        url=_url(raw.get("references")),
        withdrawn=bool(raw.get("withdrawn")),
        affected=affected,
    )


def _affected(advisory_id: str, index: int, item: Any, families: tuple[str, ...]) -> Affected | None:
    where = f"{advisory_id}: affected[{index}]"
    if not isinstance(item, Mapping) or not isinstance(item.get("package"), Mapping):
        raise MalformedAdvisory(f"{where} has no 'package' object")
    package = item["package"]
    ecosystem, name = package.get("ecosystem"), package.get("name")
    if not isinstance(ecosystem, str) or not isinstance(name, str) or not name:
        raise MalformedAdvisory(f"{where}.package needs an 'ecosystem' and a 'name'")
    if ecosystem_family(ecosystem) not in families:
        return None
    ranges_raw = item.get("ranges", [])
    versions = item.get("versions", [])
    if not isinstance(ranges_raw, list) or not isinstance(versions, list):
        raise MalformedAdvisory(f"{where}: 'ranges' and 'versions' must be lists")
    ranges = tuple(_range(f"{where}.ranges[{i}]", r) for i, r in enumerate(ranges_raw))
    specific = item.get("ecosystem_specific") or {}
    label = ""
    if isinstance(specific, Mapping):
        label = str(specific.get("severity") or specific.get("urgency") or "")
    return Affected(
        ecosystem=ecosystem,
        name=normalise_name(ecosystem, name),
        ranges=tuple(r for r in ranges if r.type in _RANGE_TYPES),
        versions=tuple(str(v) for v in versions),
        severity=_LABELS.get(label.lower().strip(), "unknown"),
    )


def _range(where: str, raw: Any) -> Range:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("type"), str):
        raise MalformedAdvisory(f"{where} needs a 'type'")
    events_raw = raw.get("events")
    if not isinstance(events_raw, list) or not events_raw:
        raise MalformedAdvisory(f"{where} needs a non-empty 'events' list")
    events = []
    for event in events_raw:
        if not isinstance(event, Mapping) or len(event) != 1:
            raise MalformedAdvisory(f"{where}: each event is an object with one of {', '.join(_EVENTS)}")
        ((kind, version),) = event.items()
        if kind not in _EVENTS or not isinstance(version, str) or not version:
            raise MalformedAdvisory(f"{where}: {kind!r} is not an event with a version string")
        events.append((kind, version))
    if not any(kind == "introduced" for kind, _ in events):
        raise MalformedAdvisory(f"{where} has no 'introduced' event")
    return Range(type=raw["type"], events=tuple(events))


def _severity(advisory_id: str, raw: Mapping[str, Any]) -> tuple[str, float | None]:
    """The highest CVSS base score given, else the advisory's own label (GitHub's), else unknown."""
    scores = []
    entries = list(raw.get("severity") or [])
    for item in raw.get("affected") or []:
        if isinstance(item, Mapping):
            entries.extend(item.get("severity") or [])
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        kind, vector = entry.get("type"), entry.get("score")
        if kind in _CVSS and isinstance(vector, str):
            try:
                scores.append(float(_CVSS[kind](vector).base_score))
            except (CVSSError, ValueError, TypeError, KeyError, IndexError):
                continue  # an unreadable vector is not a reason to lose the advisory
    if scores:
        score = max(scores)
        return score_severity(score), score
    specific = raw.get("database_specific") or {}
    label = str(specific.get("severity") or "") if isinstance(specific, Mapping) else ""
    return _LABELS.get(label.lower().strip(), "unknown"), None


def score_severity(score: float) -> str:
    """CVSS's qualitative scale (a score of 0.0, "none", counts as low)."""
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low"


def _url(references: Any) -> str:
    if not isinstance(references, list):
        return ""
    urls = [r for r in references if isinstance(r, Mapping) and isinstance(r.get("url"), str)]
    for preferred in ("ADVISORY", "WEB"):
        for reference in urls:
            if reference.get("type") == preferred:
                return str(reference["url"])[:500]
    return str(urls[0]["url"])[:500] if urls else ""
