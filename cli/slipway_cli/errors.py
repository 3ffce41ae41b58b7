"""The exit codes a CI script relies on, and the one place that maps a failure to its code."""

import json
import re
from enum import IntEnum

import click

# Django REST framework's own answers for an address that matches no object.
_GENERIC_NOT_FOUND = re.compile(r"^(Not found\.|No \w+ matches the given query\.|HTTP 404)$")


class Exit(IntEnum):
    DONE = 0
    WORK_FAILED = 1
    USAGE = 2
    TIMED_OUT = 3
    REFUSED = 4
    SERVER_ERROR = 5


EXIT_CODES_HELP = """\b
Exit codes:
  0  done
  1  the work failed (build failed, rollout failed, promotion rejected or expired)
  2  usage error, or a request the server found invalid (it names the field and the reason)
  3  timed out (--timeout)
  4  refused: authentication or permission, with the server's reason
  5  server or network error, after retries with backoff"""


class CliError(click.ClickException):
    """An error that ends the command with its exit code and a one-paragraph message on stderr."""

    exit_code = Exit.WORK_FAILED

    def __init__(self, message: str, *, page_url: str | None = None):
        super().__init__(message)
        self.page_url = page_url

    def show(self, file=None) -> None:
        text = f"slipway: {self.format_message()}"
        if self.page_url:
            text += f"\n  {self.page_url}"
        click.echo(text, err=True)


class WorkFailed(CliError):
    exit_code = Exit.WORK_FAILED


class Usage(CliError):
    exit_code = Exit.USAGE


class TimedOut(CliError):
    exit_code = Exit.TIMED_OUT


class Refused(CliError):
    exit_code = Exit.REFUSED


class ServerError(CliError):
    exit_code = Exit.SERVER_ERROR


def reasons_of(body) -> str:
    """The server's reasons as one line: `detail`, or `field: reason` for each field."""
    if isinstance(body, dict):
        if set(body) == {"detail"}:
            return str(body["detail"])
        parts = []
        for field, reasons in body.items():
            if isinstance(reasons, list):
                reasons = " ".join(str(r) for r in reasons)
            elif isinstance(reasons, dict):
                reasons = json.dumps(reasons)
            parts.append(str(reasons) if field in ("detail", "non_field_errors") else f"{field}: {reasons}")
        return "; ".join(parts)
    return str(body)


def for_status(status: int, body, *, method: str, path: str) -> CliError:
    """A final (not retried) error answer from the server, as the exception its exit code belongs to."""
    reason = reasons_of(body) if body not in (None, "") else f"HTTP {status}"
    if status == 401:
        return Refused(f"not signed in: {reason} (check SLIPWAY_TOKEN, or run `slipway login`)")
    if status == 403:
        return Refused(f"refused: {reason}")
    if status == 404:
        if body in (None, "") or _GENERIC_NOT_FOUND.match(reason):
            return Usage(f"not found: {path} does not exist, or belongs to a team you are not in")
        # The server named what it did not find (`can-i`: "No promotion 7 in your teams."): the
        # address itself exists, so saying it does not would mislead.
        return Usage(f"not found: {reason}")
    if status == 413:
        return Usage(f"too large for the server: {reason}")
    if 400 <= status < 500:
        return Usage(f"the server refused {method} {path}: {reason}")
    return ServerError(f"the server answered {status} to {method} {path}: {reason}")
