"""Settings read from the environment and validated when they load.

A wrong value stops the process at start-up with a message naming the variable,
instead of surfacing later as a confusing runtime error.
"""

import ipaddress
import os
import re
from pathlib import Path


class ImproperlyConfigured(Exception):
    pass


def env(name: str, default: str = "") -> str:
    value = os.environ.get(name)
    if value is None and os.environ.get(f"{name}_FILE"):
        # Secrets may come from a mounted file (Kubernetes Secrets, Docker secrets).
        value = Path(os.environ[f"{name}_FILE"]).read_text().strip()
    return default if value is None else value


def envbool(name: str, default: bool) -> bool:
    value = env(name, "")
    if value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {value!r}")


def envint(name: str, default: int, *, minimum: int = 0) -> int:
    value = env(name, "")
    if value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}")
    return number


def envlist(name: str, default: list[str]) -> list[str]:
    value = env(name, "")
    if value == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def envchoice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env(name, "") or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def envnetworks(name: str, default: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Comma-separated addresses or networks (`10.0.0.0/8,::1`); a typo stops the start."""
    networks = []
    for item in envlist(name, default):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {item!r} is not an IP address or network (e.g. 10.0.0.0/8)") from None
    return networks


def envgrouproles(name: str) -> list[tuple[str, str, str]]:
    """`group=team:role,...` (a group may be named more than once, for several teams), as triples.

    The shape is checked here; the role names are checked against the roles when the accounts
    app loads (settings cannot import models), with the same variable named.
    """
    rules = []
    for item in envlist(name, []):
        group, _, target = item.partition("=")
        team, _, role = target.partition(":")
        if not (group.strip() and team.strip() and role.strip()):
            raise ImproperlyConfigured(
                f"{name}: {item!r} is not group=team:role (e.g. ml-platform-admins=vision:admin)"
            )
        rules.append((group.strip(), team.strip(), role.strip()))
    return rules


_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


def envlabel(name: str, default: str) -> str:
    """A value usable as a Kubernetes label value and in Docker label filters."""
    value = env(name, "") or default
    if value and not _LABEL_VALUE.match(value):
        raise ImproperlyConfigured(
            f"{name} must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter "
            f"or digit, got {value!r}"
        )
    return value
