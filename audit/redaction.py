"""Secrets people put in URLs (a password, a token in the query string) kept off the audit trail, which
the whole team reads. Standard library only: models and services of every app use it."""

import re
from typing import Any
from urllib.parse import urlsplit

REDACTED = "***"
URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")


def redact_url(url: str, *, keep_path: bool = True) -> str:
    """The URL with its credentials replaced: the user and password (an ssh:// address keeps its user
    name, which is not a secret), every query value and the fragment. `keep_path=False` also hides the
    path (a Slack-style webhook carries its token there)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.partition(":")[0] if parts.scheme.lower() == "ssh" else REDACTED
        netloc = f"{user}{':' + REDACTED if ':' in userinfo else ''}@{host}"
    path = parts.path if keep_path or parts.path in ("", "/") else "/" + REDACTED
    text = f"{parts.scheme}://{netloc}{path}"
    if parts.query:
        pieces = (piece.partition("=") for piece in parts.query.split("&"))
        text += "?" + "&".join(f"{key}={REDACTED}" if equals else REDACTED for key, equals, _ in pieces)
    if parts.fragment:
        text += "#" + REDACTED
    return text


def redact_urls_in(value: Any) -> Any:
    """Every URL inside a text, or inside the strings of a JSON-like value, redacted."""
    if isinstance(value, str):
        return URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), value) if "://" in value else value
    if isinstance(value, dict):
        return {key: redact_urls_in(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_urls_in(item) for item in value]
    return value
