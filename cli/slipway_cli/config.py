"""Where the CLI finds the server and the token: the environment first, then `slipway login`'s file.

The file holds a secret, so it is created with mode 600 (in a folder with mode 700) before anything
is written to it; a file another user can read is refused rather than used.
"""

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import click

from slipway_cli.errors import Usage

APP_NAME = "slipway"


@dataclass(frozen=True)
class Settings:
    url: str
    token: str
    retries: int
    backoff: float
    poll_interval: float


def config_path() -> Path:
    """`$XDG_CONFIG_HOME/slipway/config.json` on Linux (click knows each system's convention)."""
    return Path(click.get_app_dir(APP_NAME)) / "config.json"


def read_file() -> dict:
    path = config_path()
    if not path.exists():
        return {}
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise Usage(f"{path} holds a token but others may read it (mode {mode:o}); run `chmod 600 {path}`.")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise Usage(f"{path} is not readable JSON ({exc}); run `slipway login` again.") from None
    return data if isinstance(data, dict) else {}


def write_file(*, url: str, token: str) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_suffix(".tmp")
    # Created with mode 600 from the start: the token is never readable by others, even briefly.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"url": url, "token": token}, handle)
    os.chmod(temporary, 0o600)  # O_CREAT's mode does not apply to a file left over from a crash
    os.replace(temporary, path)
    return path


def remove_file() -> bool:
    path = config_path()
    if path.exists():
        path.unlink()
        return True
    return False


def normalize_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise Usage(f"the server address must start with http:// or https://, got {url!r}")
    return url


def number(name: str, default: float, *, minimum: float = 0) -> float:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise Usage(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise Usage(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def load() -> Settings:
    stored = {} if (os.environ.get("SLIPWAY_URL") and os.environ.get("SLIPWAY_TOKEN")) else read_file()
    url = os.environ.get("SLIPWAY_URL") or stored.get("url", "")
    token = os.environ.get("SLIPWAY_TOKEN", "")
    if not token and stored.get("url") and normalize_url(stored["url"]) == normalize_url(url or stored["url"]):
        # A kept token goes only to the server it was kept for, never to another SLIPWAY_URL.
        token = stored.get("token", "")
    if not url or not token:
        missing = " and ".join(n for n, v in (("SLIPWAY_URL", url), ("SLIPWAY_TOKEN", token)) if not v)
        raise Usage(f"{missing} not set: export them, or run `slipway login URL`.")
    return Settings(
        url=normalize_url(url),
        token=token.strip(),
        retries=int(number("SLIPWAY_RETRIES", 4)),
        backoff=number("SLIPWAY_RETRY_BACKOFF", 1.0),
        poll_interval=number("SLIPWAY_POLL_INTERVAL", 1.0, minimum=0.05),
    )
