"""What an archive artifact may hold: one set of rules, checked at upload and again when a build extracts it.

Standard library only, so the image builder (deployments.imaging) uses it without Django. Every entry
must land inside the archive's folder: no absolute paths, no '..', no link leading out (and no links
in zip files, which cannot be extracted safely), nothing but files, folders and links, at most
MAX_ENTRIES entries of any kind and MAX_EXTRACTED_BYTES once extracted. Nothing is extracted until
every entry passed.

Memory stays bounded whatever the archive claims: tar entries are counted and sized as they stream
(tarfile's own list of members is emptied as it goes), and a zip's entry count is read from its end
record before its central directory is parsed. No entry's content is read while listing.
"""

import posixpath
import re
import shutil
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from serving.contract import ARCHIVE_SUFFIXES

MAX_ENTRIES = 100_000
MAX_EXTRACTED_BYTES = 4 * 1024**3
_READ_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError)


class ArchiveRejected(Exception):
    """The archive is refused; the message says why in one sentence."""


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def list_files(path: Path, name: str) -> list[str]:
    """The archive's files (sorted, '/'-separated), once every entry passed the rules."""
    try:
        return sorted(_checked_files(path, name))
    except ArchiveRejected:
        raise
    except _READ_ERRORS as exc:
        raise ArchiveRejected(f"The archive could not be read: {exc}.") from None


def extract(path: Path, name: str, dest: Path) -> None:
    """Check every entry, then extract into dest (created if missing)."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        list(_checked_files(path, name))
        if _is_zip(name):
            _extract_zip(path, dest)
        else:
            with tarfile.open(path, "r:*") as tar:
                # The 'data' filter repeats the checks against the real file system as it extracts.
                tar.extractall(dest, filter="data")
    except ArchiveRejected:
        raise
    except _READ_ERRORS as exc:
        raise ArchiveRejected(f"The archive {name!r} could not be extracted: {exc}.") from None


def _is_zip(name: str) -> bool:
    return name.lower().endswith(".zip")


def _checked_files(path: Path, name: str) -> Iterator[str]:
    size = 0
    entries = _zip_entries(path) if _is_zip(name) else _tar_entries(path)
    for count, (member, entry_size) in enumerate(entries, start=1):
        size += entry_size
        if count > MAX_ENTRIES:
            raise ArchiveRejected(f"The archive has more than {MAX_ENTRIES:,} entries.")
        if size > MAX_EXTRACTED_BYTES:
            raise ArchiveRejected(f"The archive expands to more than {MAX_EXTRACTED_BYTES // 1024**2:,} MiB.")
        if member is not None:
            yield member


def _tar_entries(path: Path) -> Iterator[tuple[str | None, int]]:
    """(file name or None for folders and links, size): every entry counts towards MAX_ENTRIES."""
    with tarfile.open(path, mode="r:*") as archive:
        for entry in archive:  # one entry at a time: a huge listing never sits in memory
            archive.members = []  # type: ignore[attr-defined]  # tarfile keeps every TarInfo it read; a million folders would too
            member = check_entry_name(entry.name)
            if entry.issym():
                _check_link_target(member, entry.linkname)
            elif entry.islnk():
                check_entry_name(entry.linkname)  # hard links are named from the archive's root
            elif not (entry.isfile() or entry.isdir()):
                raise ArchiveRejected(f"The archive entry '{entry.name}' is not a regular file, folder or link.")
            yield (member, entry.size) if entry.isfile() else (None, 0)


def _zip_entries(path: Path) -> Iterator[tuple[str | None, int]]:
    _check_zip_entry_count(path)
    with zipfile.ZipFile(path) as archive:
        for entry in archive.infolist():
            member = check_entry_name(entry.filename)
            if stat.S_ISLNK(entry.external_attr >> 16):  # refused from its header: its target is never read
                raise ArchiveRejected(f"The archive entry '{entry.filename}' is a link; zip links are refused.")
            yield (None, 0) if entry.is_dir() else (member, entry.file_size)


def _check_zip_entry_count(path: Path) -> None:
    """ZipFile parses the whole central directory when it opens: refuse a huge one before it does."""
    with open(path, "rb") as handle:
        end = zipfile._EndRecData(handle)  # type: ignore[attr-defined]  # the stdlib's own end-record reader
    if end is None:
        raise ArchiveRejected("The archive is not a readable zip file.")
    if end[zipfile._ECD_ENTRIES_TOTAL] > MAX_ENTRIES:  # type: ignore[attr-defined]
        raise ArchiveRejected(f"The archive has more than {MAX_ENTRIES:,} entries.")


def check_entry_name(name: str) -> str:
    """The entry's name with '/' separators; refused when it would land outside the archive's folder."""
    if "\x00" in name:
        raise ArchiveRejected("An archive entry name contains a NUL byte.")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise ArchiveRejected(f"The archive entry '{name}' has an absolute path; entries must stay inside it.")
    if ".." in re.split(r"[\\/]+", name):
        raise ArchiveRejected(f"The archive entry '{name}' escapes its folder ('..' leads outside the archive).")
    return posixpath.normpath(name.replace("\\", "/"))


def _check_link_target(name: str, target: str) -> None:
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
        raise ArchiveRejected(f"The archive entry '{name}' is a link outside the archive ('{target}').")


def _extract_zip(path: Path, dest: Path) -> None:
    root = dest.resolve()
    with zipfile.ZipFile(path) as bundle:
        for entry in bundle.infolist():
            target = (dest / entry.filename).resolve()
            if not target.is_relative_to(root):
                raise ArchiveRejected(f"The archive entry '{entry.filename}' points outside the archive.")
            if entry.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with bundle.open(entry) as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink)
