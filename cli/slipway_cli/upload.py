"""A multipart upload streamed from disk with its length known up front, and its progress shown.

The body is generated chunk by chunk, so a 2 GiB artifact never sits in memory, and it carries a
Content-Length (not chunked encoding), which every WSGI server and proxy accepts.
"""

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from slipway_cli.output import Output

CHUNK = 1024 * 1024


def quoted(value: str) -> str:
    """A form field name or file name inside quotes, escaped the way browsers do it."""
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


class MultipartFile:
    def __init__(self, fields: dict[str, str], file_field: str, path: Path):
        self.path = path
        self.size = path.stat().st_size
        boundary = secrets.token_hex(16)
        self.content_type = f"multipart/form-data; boundary={boundary}"
        head = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{quoted(name)}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
            for name, value in fields.items()
        )
        self.head = (
            head
            + (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{quoted(file_field)}"; '
                f'filename="{quoted(path.name)}"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
        )
        self.tail = f"\r\n--{boundary}--\r\n".encode()
        self.length = len(self.head) + self.size + len(self.tail)

    def body(self, on_chunk: Callable[[int], None]) -> Iterator[bytes]:
        yield self.head
        with self.path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                on_chunk(len(chunk))
                yield chunk
        yield self.tail


class UploadProgress:
    """A live bar on a terminal; in a CI log (not a terminal), one line at every tenth."""

    def __init__(self, out: Output, name: str, total: int):
        self.out, self.name, self.total = out, name, total
        self.sent = 0
        self.reported = -1
        self.bar = None
        if out.stderr.is_terminal:
            self.bar = Progress(
                TextColumn("Uploading {task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=out.stderr,
            )
            self.task = self.bar.add_task(name, total=total)

    def restart(self) -> None:
        """A retried upload starts again from the first byte."""
        self.sent, self.reported = 0, -1
        if self.bar is not None:
            self.bar.reset(self.task)

    def advance(self, count: int) -> None:
        self.sent += count
        if self.bar is not None:
            self.bar.update(self.task, completed=self.sent)
            return
        tenth = self.sent * 10 // self.total if self.total else 10
        if tenth > self.reported:
            self.reported = tenth
            self.out.note(f"Uploading {self.name}: {tenth * 10}% ({size_text(self.sent)} of {size_text(self.total)})")

    def __enter__(self):
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()


def size_text(size: int) -> str:
    if size < 1000:
        return f"{size} B"
    if size < 1_000_000:
        return f"{size / 1000:.1f} kB"
    return f"{size / 1_000_000:.1f} MB"
