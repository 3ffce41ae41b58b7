"""API token secrets: how they look, and the digest stored instead of them."""

import secrets

from django.utils.crypto import constant_time_compare, salted_hmac

TOKEN_MARK = "slw"  # noqa: S105 (a visible marker, not a secret)


def generate() -> tuple[str, str]:
    """A new token and its public prefix. The token is shown to its owner once."""
    prefix = secrets.token_hex(4)
    return f"{TOKEN_MARK}_{prefix}_{secrets.token_urlsafe(32)}", prefix


def digest(token: str) -> str:
    # Keyed with the server's secret, so a stolen database alone cannot confirm guesses.
    return salted_hmac("slipway.api-token", token, algorithm="sha256").hexdigest()


def prefix_of(token: str) -> str | None:
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_MARK or len(parts[1]) != 8:
        return None
    return parts[1]


def matches(token: str, stored_digest: str) -> bool:
    return constant_time_compare(digest(token), stored_digest)
