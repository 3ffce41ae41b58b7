"""What the containers of a Docker host say: their ports, deployment ids and state, and their log lines made
readable. Helpers of deployments.targets.docker_host, without Django."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import requests
from docker.errors import APIError
from docker.models.containers import Container
from docker.types import DeviceRequest

from .base import LogFn, RolloutStopped, StopFn


@contextlib.contextmanager
def already_gone() -> Iterator[None]:
    """A container someone else removed (404) or is removing (409) needs no removal from us."""
    try:
        yield
    except APIError as error:
        if error.status_code not in (404, 409):
            raise


def run_kwargs(config: dict[str, Any]) -> dict[str, Any]:
    """docker-py's containers.run() arguments for a rendered config."""
    kwargs = {key: value for key, value in config.items() if key not in ("kind", "restart_policy", "ports", "gpus")}
    kwargs["ports"] = {port: tuple(binding) for port, binding in config["ports"].items()}
    kwargs["detach"] = True
    # "no" until the container proved ready (see DockerHostTarget._set_restart_policy).
    kwargs["restart_policy"] = {"Name": "no"}
    if config.get("gpus"):
        kwargs["device_requests"] = [DeviceRequest(count=config["gpus"], capabilities=[["gpu"]])]
    return kwargs


def loopback_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # loopback probes must never go through an HTTP proxy
    return session


def stop_if(should_stop: StopFn, log: LogFn) -> None:
    reason = should_stop()
    if reason:
        log(f"Rollout stopped: {reason}")
        raise RolloutStopped(reason)


def container_port(container: Container) -> str:
    ports = (container.attrs.get("NetworkSettings") or {}).get("Ports") or {}
    return next(iter(ports), "")


def host_port(container: Container) -> int | None:
    ports = (container.attrs.get("NetworkSettings") or {}).get("Ports") or {}
    for bindings in ports.values():
        for binding in bindings or []:
            if binding.get("HostPort"):
                return int(binding["HostPort"])
    return None


def deployment_id_of(container: Container) -> int:
    try:
        return int(container.labels.get("slipway.io/deployment-id", "0"))
    except ValueError:
        return 0


def is_running(container: Container) -> bool:
    with contextlib.suppress(APIError, requests.RequestException):
        container.reload()
    return container.status == "running"


def running_count(containers: list[Container]) -> int:
    return sum(1 for c in containers if c.status == "running")


def error_text(answer: requests.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return answer.text[:200]
    return str(body.get("error") or body) if isinstance(body, dict) else str(body)[:200]


def readiness_state(answer: requests.Response) -> str:
    """The runtime's "state" in a 503 from readiness ("loading", "failed", "stopping"), or ""."""
    if answer.status_code != 503:
        return ""
    try:
        body = answer.json()
    except ValueError:
        return ""
    return str(body.get("state") or "") if isinstance(body, dict) else ""


def readable(line: str) -> str:
    """The runtime logs JSON: show its event and error instead of the whole record."""
    try:
        record = json.loads(line)
    except ValueError:
        return line.strip()[:500]
    if not isinstance(record, dict):
        return line.strip()[:500]
    detail = record.get("error") or record.get("message") or ""
    event = record.get("event", "")
    return f"{event}: {detail}".strip(": ")[:500] if (event or detail) else line.strip()[:500]
