"""The two ways the runtime refuses: a client's mistake, or a configuration it cannot serve."""

from __future__ import annotations


class ClientError(Exception):
    """A mistake in the request: answered with its status and message, never as a 500."""

    def __init__(self, message: str, status: int = 400, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class ConfigError(Exception):
    """slipway.json or an environment variable the runtime cannot start with."""
