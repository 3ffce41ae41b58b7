"""Reading an OSV database from where the operator keeps it: a folder or an HTTP(S) URL.

What a source may hold, as OSV publishes it or as a mirror copies it:
- a folder of OSV JSON files (any depth), and/or per-ecosystem `all.zip` archives in it
  (`PyPI/all.zip`, `Debian/all.zip`, the layout of OSV's own bucket);
- a single `.zip` file of OSV JSON files;
- an HTTP(S) URL of a `.zip`, or of a folder laid out like OSV's bucket: `<url>/PyPI/all.zip` and
  `<url>/Debian/all.zip` are fetched.

An advisory that cannot be read is skipped with a warning naming it; the rest still loads. A source that
cannot be reached at all raises SourceUnavailable, and the database keeps what it had.
"""

from __future__ import annotations

import json
import logging
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import requests

from deployments.osv.advisories import Advisory, MalformedAdvisory, parse_advisory

__all__ = ["ARCHIVE_ECOSYSTEMS", "LoadResult", "SourceUnavailable", "describe", "load"]

logger = logging.getLogger(__name__)

ARCHIVE_ECOSYSTEMS = ("PyPI", "Debian")  # the per-ecosystem archives fetched from a bucket-like URL
MAX_ARCHIVE_BYTES = 4 * 1024**3
MAX_ADVISORY_BYTES = 16 * 1024**2


class SourceUnavailable(Exception):
    """The source as a whole could not be read (missing folder, unreachable URL, broken archive)."""


@dataclass
class LoadResult:
    advisories: list[Advisory] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "where: why", one per advisory left out
    withdrawn: int = 0


def describe(source: str) -> str:
    """The source as it may be shown to admins: a URL without its credentials."""
    if "://" in source and "@" in source.split("://", 1)[1].split("/", 1)[0]:
        scheme, rest = source.split("://", 1)
        return f"{scheme}://{rest.split('@', 1)[1]}"
    return source


def load(source: str, *, timeout: float = 60, warn: Callable[[str], None] | None = None) -> LoadResult:
    """Every advisory the source holds (withdrawn ones are counted, not returned)."""
    warn = warn or logger.warning
    result = LoadResult()
    for where, payload in _documents(source.strip(), timeout):
        try:
            if payload is None:  # an archive member too large to be read at all
                raise MalformedAdvisory(f"larger than {MAX_ADVISORY_BYTES} bytes")
            advisory = parse_advisory(json.loads(payload))
        except (MalformedAdvisory, ValueError, RecursionError) as exc:
            message = f"{where}: {exc}"
            result.skipped.append(message)
            warn(f"skipped a malformed OSV advisory, {message}")
            continue
        if advisory.withdrawn:
            result.withdrawn += 1
        else:
            result.advisories.append(advisory)
    return result


def _documents(source: str, timeout: float) -> Iterator[tuple[str, bytes | None]]:
    if not source:
        raise SourceUnavailable("no vulnerability database is configured")
    if source.startswith(("http://", "https://")):
        yield from _from_url(source, timeout)
        return
    path = Path(source)
    if path.is_file() and path.suffix == ".zip":
        yield from _from_zip(path, path.name)
    elif path.is_file() and path.suffix == ".json":
        yield path.name, path.read_bytes()
    elif path.is_dir():
        yield from _from_folder(path)
    else:
        raise SourceUnavailable(f"{source} is neither a folder nor a .zip or .json file")


def _from_folder(folder: Path) -> Iterator[tuple[str, bytes | None]]:
    found = False
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(folder).as_posix()
        if path.suffix == ".json":
            found = True
            yield relative, path.read_bytes()
        elif path.suffix == ".zip":
            found = True
            yield from _from_zip(path, relative)
    if not found:
        raise SourceUnavailable(f"{folder} holds no OSV .json files or .zip archives")


def _from_zip(archive: Path | IO[bytes], name: str) -> Iterator[tuple[str, bytes | None]]:
    try:
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.infolist():
                if member.is_dir() or not member.filename.endswith(".json"):
                    continue
                if member.file_size > MAX_ADVISORY_BYTES:
                    yield f"{name}/{member.filename}", None
                    continue
                yield f"{name}/{member.filename}", bundle.read(member)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SourceUnavailable(f"{name} is not a readable zip archive: {exc}") from None


def _from_url(url: str, timeout: float) -> Iterator[tuple[str, bytes | None]]:
    if url.split("?", 1)[0].endswith(".zip"):
        urls = [url]
    else:
        urls = [f"{url.rstrip('/')}/{ecosystem}/all.zip" for ecosystem in ARCHIVE_ECOSYSTEMS]
    for address in urls:
        with tempfile.TemporaryFile() as spool:
            _download(address, spool, timeout)
            spool.seek(0)
            yield from _from_zip(spool, describe(address))


def _download(url: str, into: IO[bytes], timeout: float) -> None:
    try:
        with requests.get(url, stream=True, timeout=timeout) as response:
            if response.status_code != 200:
                raise SourceUnavailable(f"{describe(url)} answered {response.status_code}")
            size = 0
            for chunk in response.iter_content(1024 * 1024):
                size += len(chunk)
                if size > MAX_ARCHIVE_BYTES:
                    raise SourceUnavailable(f"{describe(url)} is larger than {MAX_ARCHIVE_BYTES} bytes")
                into.write(chunk)
    except requests.RequestException as exc:
        raise SourceUnavailable(f"{describe(url)} could not be fetched: {type(exc).__name__}") from None
