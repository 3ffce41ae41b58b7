"""A build's bill of materials and its vulnerabilities as CycloneDX 1.5 documents (the BOM and the VEX).

Bill-of-materials items are plain dicts, as builds record them:
- Python packages: {"name", "version", "filename", "sha256"} (older builds) or with "ecosystem": "PyPI";
- Debian packages: {"ecosystem": "Debian:12", "name", "version", "arch", "source", "source_version"};
- the serving runtime: {"ecosystem": "generic", "name": "slipway-serving", "version"}.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

__all__ = ["PYPI", "bom_document", "component_ecosystem", "purl", "vex_document"]

PYPI = "PyPI"
_RATINGS = {"critical": "critical", "high": "high", "medium": "medium", "low": "low", "unknown": "unknown"}


def component_ecosystem(item: Mapping[str, Any]) -> str:
    return str(item.get("ecosystem") or PYPI)


def purl(item: Mapping[str, Any]) -> str:
    """The package URL of a bill-of-materials item (https://github.com/package-url/purl-spec)."""
    ecosystem = component_ecosystem(item)
    name, version = quote(str(item["name"]), safe=""), quote(str(item["version"]), safe="")
    if ecosystem == PYPI:
        return f"pkg:pypi/{name.lower()}@{version}"
    if ecosystem.startswith("Debian"):
        qualifiers = []
        if item.get("arch"):
            qualifiers.append(f"arch={quote(str(item['arch']), safe='')}")
        release = ecosystem.partition(":")[2]
        if release:
            qualifiers.append(f"distro=debian-{release}")
        if item.get("source") and item["source"] != item["name"]:
            qualifiers.append(f"upstream={quote(str(item['source']), safe='')}")
        return f"pkg:deb/debian/{name}@{version}" + ("?" + "&".join(qualifiers) if qualifiers else "")
    return f"pkg:generic/{name}@{version}"


def _component(item: Mapping[str, Any]) -> dict[str, Any]:
    ecosystem = component_ecosystem(item)
    component: dict[str, Any] = {
        "type": "application" if ecosystem == "generic" else "library",
        "bom-ref": purl(item),
        "name": item["name"],
        "version": item["version"],
        "purl": purl(item),
    }
    if item.get("sha256"):
        component["hashes"] = [{"alg": "SHA-256", "content": item["sha256"]}]
    return component


def bom_document(*, name: str, digest: str, items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {"component": {"type": "container", "name": name, "version": digest}},
        "components": [_component(item) for item in items],
    }


def vex_document(
    *, name: str, digest: str, findings: Iterable[Mapping[str, Any]], purls: Mapping[tuple[str, str], str]
) -> dict[str, Any]:
    """One vulnerability per advisory, affecting the components it was found in.

    `findings`: {"advisory_id", "aliases", "ecosystem", "package", "installed_version", "fixed_version",
    "severity", "summary", "url", "accepted_reason"}; `purls` maps (ecosystem, package) to a component's purl.
    """
    vulnerabilities: dict[str, dict[str, Any]] = {}
    for finding in findings:
        entry = vulnerabilities.setdefault(
            finding["advisory_id"],
            {
                "id": finding["advisory_id"],
                "references": [{"id": alias, "source": {"name": "alias"}} for alias in finding["aliases"]],
                "ratings": [{"severity": _RATINGS.get(finding["severity"], "unknown")}],
                "description": finding["summary"],
                "affects": [],
                "analysis": {"state": "exploitable"},
            },
        )
        if finding.get("url"):
            entry["advisories"] = [{"url": finding["url"]}]
        ref = purls.get((finding["ecosystem"], finding["package"]), finding["package"])
        entry["affects"].append({"ref": ref, "versions": [{"version": finding["installed_version"]}]})
        if finding.get("fixed_version"):
            entry["recommendation"] = f"Upgrade {finding['package']} to {finding['fixed_version']} or later."
        if finding.get("accepted_reason"):
            entry["analysis"] = {
                "state": "exploitable",
                "response": ["will_not_fix"],
                "detail": finding["accepted_reason"],
            }
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {"component": {"type": "container", "name": name, "version": digest}},
        "vulnerabilities": list(vulnerabilities.values()),
    }
