"""What an environment, and each model in it, may set about how a model runs, and the rule every value obeys.

One definition, standard library only: the environment form and the API save settings through
`clean()` (deployments.services.environments), and every rollout target checks the spec it is given
with the same rules (deployments.targets.base.validate_spec), so a value accepted on save is never
refused at rollout. Quantities follow Kubernetes: '500m', '0.5', '256Mi', '1.5Gi', '1e3' (suffixes are
case-sensitive: 'k' and 'Ki', never 'K').
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

DEFAULTS: dict[str, Any] = {
    "replicas": 1,
    "cpu_request": "100m",
    "memory_request": "256Mi",
    "cpu_limit": "",
    "memory_limit": "1Gi",
    "gpus": 0,
    "autoscaling": None,  # {"min_replicas": 2, "max_replicas": 5, "target_cpu_percent": 70}
    "env": {},
    "secret_refs": [],
    "port": 8080,
    "progress_deadline_seconds": 600,
}
# What people read instead of the keys (pages; the API keeps the keys).
LABELS: dict[str, str] = {
    "replicas": "Replicas",
    "cpu_request": "CPU request",
    "memory_request": "Memory request",
    "cpu_limit": "CPU limit",
    "memory_limit": "Memory limit",
    "gpus": "GPUs",
    "autoscaling": "Autoscaling",
    "env": "Environment variables",
    "secret_refs": "Secrets",
    "port": "Port",
    "progress_deadline_seconds": "Progress deadline (s)",
}
INTEGER_RANGES = {
    "replicas": (0, 100),
    "gpus": (0, 16),
    "port": (1, 65535),
    # Kubernetes and the Docker host take any positive deadline; a short one is a way to fail fast.
    "progress_deadline_seconds": (1, 7200),
}
AUTOSCALING_RANGES = {"min_replicas": (1, 100), "max_replicas": (1, 100), "target_cpu_percent": (1, 100)}
CPU_KEYS = ("cpu_request", "cpu_limit")
MEMORY_KEYS = ("memory_request", "memory_limit")

_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][0-9]+)?$")
_SUFFIXES = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
# POSIX: what a shell in the model's image (and Docker) can read; Kubernetes accepts these too.
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")

Namer = Callable[[str], str]


class SettingError(ValueError):
    """A setting breaks its rule; the message names the setting first ("memory_limit: ...")."""


def parse_quantity(value: str) -> Decimal:
    """A Kubernetes quantity ("500m", "1.5", "256Mi", "1e3") as a number; ValueError when it is not one."""
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise ValueError(f"{value!r} is not a quantity")
    number, suffix = Decimal(match[1]), match[2] or ""
    try:
        if suffix[:1] in ("e", "E"):
            return number * Decimal(10) ** int(suffix[1:])
        return number * _SUFFIXES[suffix]
    except (InvalidOperation, KeyError) as error:
        raise ValueError(f"{value!r} is not a quantity") from error


def clean(
    data: Any,
    *,
    base: Mapping[str, Any] | None = None,
    name: Namer = str,
    allowed_secret_refs: Collection[str] | None = None,
) -> dict[str, Any]:
    """The given settings, checked (autoscaling filled in); raises SettingError naming the first bad one.

    `base` is what the settings override (the defaults, or an environment's settings for a model's
    override): rules that relate two settings (a request within its limit) are checked on the result.
    `name` says how a setting is called in messages (targets call cpu_request "resources.cpu_request").
    `allowed_secret_refs`: the Secrets the environment's admins allow (see check_secret_refs_allowed).
    """
    if data in (None, ""):
        return {}
    if not isinstance(data, dict):
        raise SettingError("Give an object of settings.")
    unknown = sorted(set(data) - set(DEFAULTS))
    if unknown:
        raise SettingError(f"{name(unknown[0])}: unknown setting; known ones are {', '.join(DEFAULTS)}")
    checked = dict(data)
    for key, (low, high) in INTEGER_RANGES.items():
        if key in checked:
            _check_integer(name(key), checked[key], low, high)
    for key in CPU_KEYS:
        if checked.get(key):
            _check_cpu(name(key), checked[key])
    for key in MEMORY_KEYS:
        if checked.get(key):
            _check_memory(name(key), checked[key])
    if "env" in checked:
        _check_env(name("env"), checked["env"])
    if "secret_refs" in checked:
        _check_secret_refs(name("secret_refs"), checked["secret_refs"])
    if checked.get("autoscaling") is not None:
        checked["autoscaling"] = _check_autoscaling(name("autoscaling"), checked["autoscaling"])
    _check_together({**DEFAULTS, **(base or {}), **checked}, name)
    if allowed_secret_refs is not None:
        check_secret_refs_allowed(checked, allowed_secret_refs, name)
    return checked


def check_secret_refs_allowed(settings: Mapping[str, Any], allowed: Collection[str], name: Namer = str) -> None:
    """Every Secret a model reads must be on its environment's allow-list: a namespace may be shared by
    several teams, and a Secret name is all it takes to read another team's credentials."""
    refused = [ref for ref in settings.get("secret_refs") or [] if ref not in allowed]
    if refused:
        permitted = ", ".join(sorted(allowed)) or "none"
        raise _fail(
            name("secret_refs"),
            f"'{refused[0]}' is not a Secret this environment allows (allowed: {permitted}); "
            "its admins add Secrets to the environment's allowed_secret_refs",
        )


def clean_secret_names(names: Any) -> list[str]:
    """An allow-list of Kubernetes Secret names, as given by an environment admin."""
    if names in (None, ""):
        return []
    _check_secret_refs("allowed_secret_refs", names)
    return sorted(set(names))


def _fail(name: str, rule: str) -> SettingError:
    return SettingError(f"{name}: {rule}")


def _check_integer(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(name, f"must be a whole number from {low} to {high}, not {value!r}")


def _quantity(name: str, value: Any, example: str) -> Decimal:
    try:
        return parse_quantity(value)
    except ValueError:
        raise _fail(name, f"use a Kubernetes quantity such as {example}, not {value!r}") from None


def _check_cpu(name: str, value: Any) -> None:
    cores = _quantity(name, value, "'0.5', '2' or '500m'")
    if cores != cores.quantize(Decimal("0.001")):
        raise _fail(name, f"{value!r} is finer than a millicore (1m, 0.001)")


def _check_memory(name: str, value: Any) -> None:
    size = _quantity(name, value, "'512Mi', '1.5Gi' or '2G'")
    if size != size.to_integral_value():
        raise _fail(name, f"{value!r} is not a whole number of bytes ('m' is a thousandth; did you mean 'Mi'?)")


def _check_env(name: str, env: Any) -> None:
    if not isinstance(env, dict):
        raise _fail(name, "must be an object of NAME: value")
    for key, value in env.items():
        if not isinstance(key, str) or not _ENV_NAME.match(key):
            raise _fail(name, f"'{key}' is not a valid variable name (letters, digits, '_'; no digit first)")
        if not isinstance(value, str):
            raise _fail(name, f"the value of {key} must be a string")


def _check_secret_refs(name: str, refs: Any) -> None:
    if not isinstance(refs, list | tuple) or not all(isinstance(r, str) and _SECRET_NAME.match(r) for r in refs):
        raise _fail(name, "must be a list of Kubernetes Secret names")


def _check_autoscaling(name: str, scaling: Any) -> dict[str, int]:
    if not isinstance(scaling, dict) or set(scaling) - set(AUTOSCALING_RANGES):
        raise _fail(name, "give min_replicas, max_replicas and target_cpu_percent, or null")
    checked: dict[str, int] = {"target_cpu_percent": 80, **scaling}
    for key, (low, high) in AUTOSCALING_RANGES.items():
        if key not in checked:
            raise _fail(name, f"{key} is required")
        value = checked[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _fail(name, f"{key} must be a whole number from {low} to {high}")
    if checked["min_replicas"] > checked["max_replicas"]:
        raise _fail(name, "min_replicas cannot be more than max_replicas")
    return checked


def _check_together(settings: Mapping[str, Any], name: Namer) -> None:
    for request, limit in (("cpu_request", "cpu_limit"), ("memory_request", "memory_limit")):
        low, high = settings.get(request), settings.get(limit)
        if low and high and parse_quantity(low) > parse_quantity(high):
            raise _fail(name(request), f"{low} is more than {name(limit)} {high}")
    if settings.get("autoscaling") and not settings.get("cpu_request"):
        raise _fail(name("cpu_request"), "CPU autoscaling needs a CPU request to compute utilization")
