"""What Debian packages an image holds: its dpkg status file and its os-release, read as text.

Debian's advisories name *source* packages (glibc, not libc6) and their versions, so each installed
binary package is looked up by the source package it was built from (the `Source:` field, with its
own version in brackets when the two differ).
"""

from __future__ import annotations

from dataclasses import dataclass

from debian.deb822 import Deb822

__all__ = ["DebianPackage", "debian_ecosystem", "parse_status"]


@dataclass(frozen=True)
class DebianPackage:
    name: str
    version: str
    architecture: str
    source: str
    source_version: str


def parse_status(text: str) -> list[DebianPackage]:
    """The installed packages of a dpkg status file (`/var/lib/dpkg/status`), sorted by name."""
    packages = []
    for paragraph in Deb822.iter_paragraphs(text.splitlines(keepends=True)):
        name, version = paragraph.get("Package", ""), paragraph.get("Version", "")
        if not name or not version or not paragraph.get("Status", "").endswith(" installed"):
            continue
        source, _, rest = (paragraph.get("Source") or name).partition(" ")
        source_version = rest.strip().strip("()") or version
        packages.append(
            DebianPackage(
                name=name,
                version=version,
                architecture=paragraph.get("Architecture", ""),
                source=source,
                source_version=source_version,
            )
        )
    return sorted(packages, key=lambda p: p.name)


def debian_ecosystem(os_release: str) -> str:
    """`Debian:12` for a Debian 12 os-release; "" when the image is not Debian (or says no release)."""
    fields = {}
    for line in os_release.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip().strip('"')
    if fields.get("ID") != "debian":
        return ""
    release = fields.get("VERSION_ID", "").split(".", 1)[0]
    return f"Debian:{release}" if release.isdigit() else ""
