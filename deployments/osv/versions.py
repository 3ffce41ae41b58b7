"""How each ecosystem orders its versions, as OSV's range rules need: PEP 440 for PyPI (through
`packaging`), Debian's own ordering for Debian (through python-debian)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from debian.debian_support import Version as DebianVersion
from packaging.version import InvalidVersion
from packaging.version import Version as PythonVersion

__all__ = ["PYPI", "UnorderedVersion", "compare", "ecosystem_family", "normalise_name", "version_key"]

PYPI = "PyPI"
DEBIAN = "Debian"
FAMILIES = (PYPI, DEBIAN)


class UnorderedVersion(ValueError):
    """A version string the ecosystem cannot place in its order (e.g. not PEP 440)."""


def ecosystem_family(ecosystem: str) -> str:
    """`Debian:12` -> `Debian`; `PyPI` -> `PyPI`."""
    return ecosystem.split(":", 1)[0]


def normalise_name(ecosystem: str, name: str) -> str:
    """The name a package is indexed and matched under (PEP 503 for PyPI, as is for Debian)."""
    if ecosystem_family(ecosystem) == PYPI:
        return re.sub(r"[-_.]+", "-", name).lower()
    return name.strip()


@lru_cache(maxsize=200_000)
def version_key(family: str, version: str) -> Any:
    """A value ordered as the ecosystem orders versions. Raises UnorderedVersion when it cannot."""
    if family == PYPI:
        try:
            return PythonVersion(version)
        except InvalidVersion:
            raise UnorderedVersion(f"{version!r} is not a PEP 440 version") from None
    if family == DEBIAN:
        try:
            return DebianVersion(version)
        except ValueError:
            raise UnorderedVersion(f"{version!r} is not a Debian version") from None
    raise UnorderedVersion(f"no version ordering for the ecosystem {family!r}")


@lru_cache(maxsize=500_000)
def compare(family: str, a: str, b: str) -> int:
    """-1, 0 or 1 as `a` sorts before, with or after `b` in the ecosystem's order.

    Cached: Debian's comparison (python-debian's, in Python) is the scan's main cost, and the same
    installed version meets the same fixed versions across many advisories.
    """
    key_a, key_b = version_key(family, a), version_key(family, b)
    return 1 if key_a > key_b else -1 if key_a < key_b else 0
