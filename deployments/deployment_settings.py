"""Validation of deployment settings (replicas, resources, autoscaling, env, secrets, port).

Environments carry defaults, models may override them per environment; every value is checked
here, and each error names the setting and the rule.
"""

import re

from django.core.exceptions import ValidationError

from deployments.models import DEFAULT_DEPLOYMENT_SETTINGS

CPU_RE = re.compile(r"^([0-9]+m|[0-9]+(\.[0-9]{1,3})?)$")
MEMORY_RE = re.compile(r"^[0-9]+(Ki|Mi|Gi|Ti|K|M|G|T)?$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SECRET_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def _fail(key: str, rule: str):
    raise ValidationError({"deployment_settings": f"{key}: {rule}"})


def _integer(data: dict, key: str, low: int, high: int) -> None:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _fail(key, f"must be a whole number from {low} to {high}, not {value!r}")


def clean_deployment_settings(data, *, partial: bool = True) -> dict:
    """Check settings; with `partial`, only the keys given (an override), else all of them."""
    if data in (None, ""):
        return {}
    if not isinstance(data, dict):
        raise ValidationError({"deployment_settings": "Give an object of settings."})
    unknown = sorted(set(data) - set(DEFAULT_DEPLOYMENT_SETTINGS))
    if unknown:
        _fail(unknown[0], f"unknown setting; known ones are {', '.join(DEFAULT_DEPLOYMENT_SETTINGS)}")
    checked = dict(data) if partial else {**DEFAULT_DEPLOYMENT_SETTINGS, **data}
    if "replicas" in checked:
        _integer(checked, "replicas", 0, 100)
    if "gpus" in checked:
        _integer(checked, "gpus", 0, 16)
    if "port" in checked:
        _integer(checked, "port", 1, 65535)
    if "progress_deadline_seconds" in checked:
        _integer(checked, "progress_deadline_seconds", 5, 7200)
    for key in ("cpu_request", "cpu_limit"):
        if key in checked and checked[key] and not CPU_RE.match(str(checked[key])):
            _fail(key, f"use cores ('0.5', '2') or millicores ('500m'), not {checked[key]!r}")
    for key in ("memory_request", "memory_limit"):
        if key in checked and checked[key] and not MEMORY_RE.match(str(checked[key])):
            _fail(key, f"use a Kubernetes quantity such as '512Mi' or '2Gi', not {checked[key]!r}")
    if "env" in checked:
        env = checked["env"]
        if not isinstance(env, dict):
            _fail("env", "must be an object of NAME: value")
        for name, value in env.items():
            if not ENV_NAME_RE.match(name):
                _fail("env", f"'{name}' is not a valid variable name")
            if not isinstance(value, str):
                _fail("env", f"the value of {name} must be a string")
    if "secret_refs" in checked:
        refs = checked["secret_refs"]
        if not isinstance(refs, list) or not all(isinstance(r, str) and SECRET_NAME_RE.match(r) for r in refs):
            _fail("secret_refs", "must be a list of Kubernetes Secret names")
    if checked.get("autoscaling") is not None:
        scaling = checked["autoscaling"]
        if not isinstance(scaling, dict) or set(scaling) - {"min_replicas", "max_replicas", "target_cpu_percent"}:
            _fail("autoscaling", "give min_replicas, max_replicas and target_cpu_percent, or null")
        scaling = {"target_cpu_percent": 80, **scaling}
        for key, low, high in (("min_replicas", 1, 100), ("max_replicas", 1, 100), ("target_cpu_percent", 1, 100)):
            if key not in scaling:
                _fail("autoscaling", f"{key} is required")
            value = scaling[key]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                _fail("autoscaling", f"{key} must be a whole number from {low} to {high}")
        if scaling["min_replicas"] > scaling["max_replicas"]:
            _fail("autoscaling", "min_replicas cannot be more than max_replicas")
        checked["autoscaling"] = scaling
    return checked
