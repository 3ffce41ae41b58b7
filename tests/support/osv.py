"""Small OSV databases written by the tests: advisories as OSV publishes them, in a folder or a zip."""

import json
import zipfile
from pathlib import Path

# CVSS 3.1 vectors of a known base score.
CVSS_HIGH = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"  # 7.5
CVSS_CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 9.8
CVSS_MEDIUM = "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:L/A:N"  # 4.2


def advisory(
    advisory_id,
    package,
    *events,
    ecosystem="PyPI",
    aliases=(),
    cvss=None,
    label=None,
    versions=(),
    modified="2026-11-01T00:00:00Z",
    summary="",
    withdrawn=None,
    urgency=None,
):
    """One advisory affecting one package; `events` like ("introduced", "0"), ("fixed", "1.2")."""
    affected = {"package": {"ecosystem": ecosystem, "name": package}}
    if events:
        affected["ranges"] = [{"type": "ECOSYSTEM", "events": [{kind: version} for kind, version in events]}]
    if versions:
        affected["versions"] = list(versions)
    if urgency:
        affected["ecosystem_specific"] = {"urgency": urgency}
    raw = {
        "schema_version": "1.6.0",
        "id": advisory_id,
        "modified": modified,
        "published": "2026-10-01T00:00:00Z",
        "aliases": list(aliases),
        "summary": summary or f"{advisory_id} in {package}",
        "affected": [affected],
        "references": [{"type": "ADVISORY", "url": f"https://example.org/{advisory_id}"}],
    }
    if cvss:
        raw["severity"] = [{"type": "CVSS_V3", "score": cvss}]
    if label:
        raw["database_specific"] = {"severity": label}
    if withdrawn:
        raw["withdrawn"] = withdrawn
    return raw


def write_folder(folder: Path, advisories, *, malformed=()) -> Path:
    """One JSON file per advisory (and the given malformed texts as files of their own)."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.json"):
        old.unlink()
    for raw in advisories:
        (folder / f"{raw['id']}.json").write_text(json.dumps(raw), encoding="utf-8")
    for index, text in enumerate(malformed):
        (folder / f"BROKEN-{index}.json").write_text(text, encoding="utf-8")
    return folder


def write_zip(path: Path, advisories, *, malformed=()) -> Path:
    """An `all.zip` as OSV publishes one per ecosystem."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
        for raw in advisories:
            bundle.writestr(f"{raw['id']}.json", json.dumps(raw))
        for index, text in enumerate(malformed):
            bundle.writestr(f"BROKEN-{index}.json", text)
    return path
