"""The last step of an image build: the image must serve its model before it may be pushed.

The image just built is started as a rollout starts it (the same user, a read-only root file system,
no capabilities, the platform's default resource limits) but with no network at all. Inside it,
`python -m serving.probe` waits for readiness and sends one inference request made from the version's
signature. A model that cannot load fails the build with the runtime's own error, in seconds.

Pure Python with no Django import: the build runner passes the Docker engine client and its callbacks.
Its failures are the image library's own: ImageError (with the runtime's reason) and Cancelled.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors

from deployments.deployment_settings import DEFAULTS, parse_quantity
from deployments.imaging.errors import Cancelled, ImageError
from deployments.targets.docker_host import RUN_AS

__all__ = ["SmokeTestFailed", "Verdict", "smoke_test"]

LABEL = "io.slipway.smoke-test"
TIMEOUT_SECONDS = 300.0
LOG_TAIL_LINES = 20
LOG_READ_LINES = 500
TMPFS = {"/tmp": "rw,nosuid,nodev,size=64m"}  # noqa: S108 - the container's own tmpfs, as a rollout gives it


class SmokeTestFailed(ImageError):
    """The image did not serve: the message is the one-sentence reason, the runtime's error included."""


@dataclass(frozen=True)
class Verdict:
    seconds: float
    summary: str


def smoke_test(
    *,
    client: docker.APIClient,
    image: str,
    name: str,
    log: Callable[[str], None],
    should_stop: Callable[[], str | None],
    memory_limit: str = DEFAULTS["memory_limit"],  # what a rollout gets unless its environment says otherwise
    cpu_limit: str = DEFAULTS["cpu_limit"],
    timeout: float = TIMEOUT_SECONDS,
) -> Verdict:
    """Runs `image` without network and probes it from inside; raises SmokeTestFailed if it does not serve."""
    started = time.monotonic()
    host_config = client.create_host_config(
        network_mode="none",
        read_only=True,
        tmpfs=TMPFS,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        mem_limit=int(parse_quantity(memory_limit)) if memory_limit else None,
        nano_cpus=int(parse_quantity(cpu_limit) * 10**9) if cpu_limit else None,
    )
    name = f"slipway-smoke-{name}-{secrets.token_hex(3)}"
    try:
        container = client.create_container(
            image, name=name, user=RUN_AS, labels={LABEL: name}, host_config=host_config
        )
    except docker.errors.DockerException as exc:
        raise SmokeTestFailed(f"The smoke test could not create a container of the image: {exc}") from None
    passed = False
    try:
        client.start(container["Id"])
        result = _probe(client, container["Id"], should_stop, timeout)
        if not result.get("ok"):
            _log_runtime_tail(client, container["Id"], log)
            log(f"Smoke test failed after {time.monotonic() - started:.1f} s")
            raise SmokeTestFailed(_explain(client, container["Id"], result, memory_limit))
        passed = True
    except docker.errors.DockerException as exc:
        raise SmokeTestFailed(f"The smoke test could not run the image: {exc}") from None
    finally:
        if passed:  # removing a container can take a second on a busy engine: the push need not wait for it
            threading.Thread(target=_remove, args=(client, container["Id"]), daemon=True).start()
        else:
            _remove(client, container["Id"])
    seconds = time.monotonic() - started
    if result.get("stage") == "infer":
        outputs = ", ".join(result.get("outputs") or []) or "none"
        summary = f"ready, and answered a request made from the signature (outputs: {outputs})"
    else:
        summary = f"ready ({result.get('note', 'no request sent')})"
    return Verdict(seconds=seconds, summary=summary)


def _probe(
    client: docker.APIClient, container: str, should_stop: Callable[[], str | None], timeout: float
) -> dict[str, Any]:
    """The probe's verdict, or {} when it ended without one (the container stopped under it)."""
    command = ["python", "-m", "serving.probe", "--timeout", f"{timeout:g}"]
    try:
        execution = client.exec_create(container, command, user=RUN_AS)
    except docker.errors.APIError:
        return {}  # the container is no longer running: _explain reads why
    pending = ""
    result: dict[str, Any] = {}
    for chunk in client.exec_start(execution["Id"], stream=True):
        pending += chunk.decode("utf-8", "replace")
        *lines, pending = pending.split("\n")
        for line in lines:
            event = _json(line)
            if event.get("event") == "result":
                result = event
        reason = should_stop()  # asked at least every half second: the probe reports while it waits
        if reason:
            raise Cancelled(reason)
    return result


def _explain(client: docker.APIClient, container: str, result: dict[str, Any], memory_limit: str) -> str:
    prefix = "The image failed its smoke test"
    if result.get("stage") == "load":
        return f"{prefix}: {result.get('error')}"
    if result.get("stage") == "infer":
        return f"{prefix}: a request made from the signature was answered {result.get('error')}"
    if result.get("stage") == "ready":
        return f"{prefix}: {result.get('error')}"
    state = client.inspect_container(container)["State"]
    if state.get("Running"):
        return f"{prefix}: its probe ended without a verdict"
    if state.get("OOMKilled"):
        return f"{prefix}: the server was killed for memory (limit {memory_limit or 'none'})"
    error = _last_error(client, container)
    return f"{prefix}: the server exited with code {state.get('ExitCode')}" + (f": {error}" if error else "")


def _last_error(client: docker.APIClient, container: str) -> str:
    lines = client.logs(container, tail=LOG_TAIL_LINES).decode("utf-8", "replace").splitlines()
    for line in reversed(lines):
        error = _json(line).get("error")
        if error:
            return str(error)
    return lines[-1].strip() if lines else ""


def _log_runtime_tail(client: docker.APIClient, container: str, log: Callable[[str], None]) -> None:
    lines = client.logs(container, tail=LOG_READ_LINES).decode("utf-8", "replace").splitlines()
    # The probe's own readiness polls say nothing the reader needs.
    lines = [line for line in lines if _json(line).get("path") != "/v2/health/ready"][-LOG_TAIL_LINES:]
    log(f"The runtime's last {len(lines)} log lines:")
    for line in lines:
        log(f"  | {line}")


def _remove(client: docker.APIClient, container: str) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        client.remove_container(container, force=True)


def _json(line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
