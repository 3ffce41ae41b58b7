"""What goes where: results on stdout (tables, or JSON with --json), notes and progress on stderr.

Log lines are written as they are, never through Rich's markup, so a line holding `[bold]` or an
escape sequence reaches the terminal (or the CI log) exactly as the build printed it.
"""

import json
import sys
from collections.abc import Callable, Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

# CI logs are not terminals; a wide virtual screen keeps image digests and reasons on one line.
LOG_WIDTH = 200


class Output:
    def __init__(self, *, as_json: bool):
        self.as_json = as_json
        self.stdout = Console(highlight=False, soft_wrap=False)
        self.stderr = Console(stderr=True, highlight=False)
        if not self.stdout.is_terminal:
            self.stdout.width = LOG_WIDTH
        if not self.stderr.is_terminal:
            self.stderr.width = LOG_WIDTH

    def note(self, text: str) -> None:
        """A message for the person watching, on stderr (stdout stays parseable)."""
        self.stderr.print(escape(text), soft_wrap=True)

    def say(self, text: str) -> None:
        """A line of the human-readable result; stderr under --json, where stdout is JSON only."""
        (self.stderr if self.as_json else self.stdout).print(escape(text), soft_wrap=True)

    def page(self, url: str) -> None:
        self.say(f"  page: {url}")

    def log_lines(self, lines: Sequence[dict], *, is_result: bool = False) -> None:
        """Lines of a build or rollout log. Under --json they are JSON lines on stdout when they are
        the result (`builds logs`), and plain text on stderr when they accompany one (`--wait`)."""
        if not lines:
            return
        if self.as_json and is_result:
            text, stream = "".join(json.dumps(line) + "\n" for line in lines), sys.stdout
        else:
            text = "".join(f"{line['text']}\n" for line in lines)
            stream = sys.stderr if self.as_json else sys.stdout
        # Rich's own buffer first, so a note printed just before is not overtaken.
        self.stdout.file.flush()
        self.stderr.file.flush()
        stream.write(text)
        stream.flush()

    def result(self, data, *, human: Callable[[], None]) -> None:
        if self.as_json:
            sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
            sys.stdout.flush()
        else:
            human()

    def table(self, columns: Sequence[str], rows: Sequence[Sequence]) -> None:
        table = Table(*columns, box=None, pad_edge=False, header_style="bold")
        for row in rows:
            table.add_row(*("" if cell is None else escape(str(cell)) for cell in row))
        self.stdout.print(table)
