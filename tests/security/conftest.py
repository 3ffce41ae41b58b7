"""Helpers for the attacks in this folder: each test is written as the attack, and now fails."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_watched: list[set[str]] = []
_opened: list[str] = []


def _audit(event: str, args: tuple) -> None:
    # An audit hook sees every open() of the process, whichever library makes it: the only way to
    # prove that a file was never read (its atime is not reliable under relatime).
    if _watched and event == "open" and isinstance(args[0], str | bytes | Path):
        path = str(Path(args[0] if not isinstance(args[0], bytes) else args[0].decode()).resolve())
        if any(path in watched for watched in _watched):
            _opened.append(path)


sys.addaudithook(_audit)


class OpenedFiles:
    """Which of the watched paths this process opened while the fixture was active."""

    def __init__(self) -> None:
        self.paths: set[str] = set()

    def watch(self, *paths: Path) -> None:
        self.paths.update(str(Path(p).resolve()) for p in paths)

    @property
    def opened(self) -> list[str]:
        return [p for p in _opened if p in self.paths]


@pytest.fixture
def opened_files() -> Iterator[OpenedFiles]:
    files = OpenedFiles()
    _watched.append(files.paths)
    try:
        yield files
    finally:
        _watched.remove(files.paths)
        _opened.clear()
