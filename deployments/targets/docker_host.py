"""Rolling a model image out to a plain Docker host: one container per deployment, replaced without downtime.

A new container is started next to the old one and must answer /v2/health/ready through its published
port before the old one is stopped; if it never does, it is removed and the old one keeps serving.
Readiness is probed through 127.0.0.1 and the published port, never through the container's bridge IP.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import tempfile
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import docker
import docker.tls
import paramiko
import requests
from docker.constants import MINIMUM_DOCKER_API_VERSION
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.containers import Container

from deployments.transient import is_transient
from serving.contract import EXIT_LOAD_FAILED, LOAD_FAILED_STATE, READY_PATH

from .base import (
    MANAGED_BY,
    DeploySpec,
    Identity,
    LiveState,
    LogFn,
    Progress,
    ProgressFn,
    RolloutStopped,
    StopFn,
    TargetError,
    TransientTargetError,
    common_labels,
    log_tail,
    parse_quantity,
    runtime_record_error,
    validate_identity,
    validate_spec,
)
from .containers import (
    already_gone,
    container_port,
    deployment_id_of,
    error_text,
    host_port,
    is_running,
    loopback_session,
    readable,
    readiness_state,
    run_kwargs,
    running_count,
    stop_if,
)
from .docker_ssh import DockerSSH, SshEngineAdapter, engine_unusable, ssh_refusal
from .docker_tls import DockerTLS, engine_host, tls_refusal, validate_tls

__all__ = ["DockerHostTarget", "container_name"]

LOG_TAIL_LINES = 30
# After the runtime reports a load failure, how long its record of it may take to reach the engine's log
# (the engine copies a container's output to the log a moment after it is written).
LOG_SETTLE_SECONDS = 5.0
LOG_READ_LINES = 500  # read more than shown: health-probe records are dropped before the tail is taken
RUN_AS = "10001:10001"
WILDCARD_ADDRESSES = ("", "0.0.0.0", "::")  # noqa: S104 - recognised, not bound


def container_name(name: str, deployment_id: int) -> str:
    return f"slipway-{name}-d{deployment_id}"


class _EngineApi(docker.APIClient):
    """An engine is reached directly: never through an HTTP proxy, and never with the machine's CA bundle
    (requests lets REQUESTS_CA_BUNDLE replace the engine's own CA). The version is asked in __init__."""

    def __init__(self, *, ssh: DockerSSH | None = None, **options: Any) -> None:
        if ssh is None:
            super().__init__(**options)
            return
        # The SDK's own SSH transport would read the worker's ~/.ssh and connect as soon as it is made. Made
        # in its shell-out form it does nothing yet; ours is mounted in its place before the first request.
        super().__init__(**{**options, "use_ssh_client": True, "version": MINIMUM_DOCKER_API_VERSION})
        self._custom_adapter = SshEngineAdapter(options["base_url"], ssh, timeout=options["timeout"])
        self.mount("http+docker://ssh", self._custom_adapter)
        try:
            self._version = self._retrieve_server_version()
        except DockerException:
            # Signed in, but no answer: often the user there has no docker CLI, or no access to the engine.
            reason = engine_unusable(self._custom_adapter.ssh_client, options["base_url"])
            if reason is not None:
                raise TargetError(reason) from None
            raise

    def _retrieve_server_version(self) -> str:
        self.trust_env = False
        return str(super()._retrieve_server_version())  # type: ignore[misc]


class _Engine(docker.DockerClient):
    def __init__(self, **options: Any) -> None:
        self.api = _EngineApi(**options)
        self.api.trust_env = False


class _ContainerFailed(Exception):
    """The new container exited or never became ready; the message is the user-facing reason."""


class DockerHostTarget:
    def __init__(
        self,
        base_url: str = "unix:///var/run/docker.sock",
        *,
        bind_address: str = "127.0.0.1",
        ready_timeout: float = 120,
        registry_auth: dict[str, str] | None = None,
        poll_seconds: float = 0.5,
        stop_timeout: int = 10,
        request_timeout: float = 60,
        tls: DockerTLS | None = None,
        ssh: DockerSSH | None = None,
    ) -> None:
        """`base_url`: unix:// (this machine), tcp:// (with `tls`: the engine's CA and Slipway's client
        certificate and key) or ssh://user@host[:port] (with `ssh`: Slipway's key and the host's key)."""
        self.base_url, self.bind_address = base_url, bind_address
        self.ready_timeout, self.poll_seconds, self.stop_timeout = ready_timeout, poll_seconds, stop_timeout
        self.registry_auth = registry_auth
        self.request_timeout = request_timeout
        self.tls, self.ssh = tls, ssh
        self._client: docker.DockerClient | None = None
        self._tls_dir: str | None = None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._tls_dir is not None:
            shutil.rmtree(self._tls_dir, ignore_errors=True)
            self._tls_dir = None

    def __enter__(self) -> DockerHostTarget:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def engine(self) -> docker.DockerClient:
        # Connecting is deferred: the client asks the engine for its API version when it is created.
        if self._client is None:
            try:
                with self._errors("connecting to the Docker engine"):
                    options: dict[str, Any] = {"base_url": self.base_url, "timeout": int(self.request_timeout)}
                    if self.base_url.startswith("ssh://"):
                        if self.ssh is None:
                            raise TargetError("docker_ssh_key: an ssh:// host needs Slipway's private key")
                        options["ssh"] = self.ssh
                    elif self.tls is not None:
                        options["tls"] = self._tls_config(self.tls)
                    self._client = _Engine(**options)
            except TransientTargetError:
                refusal = self._tls_diagnosis()
                if refusal is not None:
                    raise TargetError(refusal) from None
                raise
        return self._client

    def _tls_diagnosis(self) -> str | None:
        """Why a TLS engine dropped the connection, asked with one handshake of our own.

        An engine that refuses a client certificate under TLS 1.3 does so after the client's side of the
        handshake is done: the client often sees only a reset, its alert lost. A reset right after a
        completed handshake is that refusal."""
        if self.tls is None or self._tls_dir is None:
            return None
        parts = urlsplit(self.base_url)
        host, port = parts.hostname or "", parts.port or 2376
        context = ssl.create_default_context(cafile=os.path.join(self._tls_dir, "ca.pem"))
        context.load_cert_chain(os.path.join(self._tls_dir, "cert.pem"), os.path.join(self._tls_dir, "key.pem"))
        try:
            with (
                socket.create_connection((host, port), timeout=self.request_timeout) as raw,
                context.wrap_socket(raw, server_hostname=host) as conn,
            ):
                conn.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
                conn.recv(1)
        except ssl.SSLError as error:
            if not isinstance(error, ssl.SSLEOFError):
                return tls_refusal(self.base_url, error)
            return tls_refusal(self.base_url, ssl.SSLError("alert certificate unknown (connection closed)"))
        except (ConnectionResetError, BrokenPipeError):
            return tls_refusal(self.base_url, ssl.SSLError("alert certificate unknown (connection reset)"))
        except OSError:
            return None
        return None

    def _tls_config(self, tls: DockerTLS) -> docker.tls.TLSConfig:
        """The docker SDK reads credentials from files: written for this target only, removed on close()."""
        validate_tls(tls)
        self._tls_dir = tempfile.mkdtemp(prefix="slipway-docker-tls-")
        paths = {}
        for name, text in (("ca.pem", tls.ca), ("cert.pem", tls.cert), ("key.pem", tls.key)):
            path = os.path.join(self._tls_dir, name)
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
                file.write(text)
            paths[name] = path
        return docker.tls.TLSConfig(
            client_cert=(paths["cert.pem"], paths["key.pem"]), ca_cert=paths["ca.pem"], verify=True
        )

    @property
    def host(self) -> str:
        """Where published ports are reached: on a remote host its address, never this machine's loopback."""
        return engine_host(self.base_url, self.bind_address, WILDCARD_ADDRESSES)

    # --- the Target protocol ----------------------------------------------------------------------

    def check(self) -> dict[str, Any]:
        try:
            with self._errors("asking the Docker engine for its version"):
                version = self.engine.version()
        except (TargetError, TransientTargetError) as error:
            return {"ok": False, "server_version": "", "message": str(error)}
        return {
            "ok": True,
            "server_version": version.get("Version", ""),
            "api_version": version.get("ApiVersion", ""),
            "message": f"Docker Engine {version.get('Version', '?')} answers at {self.base_url}.",
        }

    def render(self, spec: DeploySpec) -> list[dict[str, Any]]:
        validate_spec(spec)
        if spec.secret_refs:
            raise TargetError(
                "secret_refs: a Docker host has no Kubernetes Secrets to read "
                f"({', '.join(spec.secret_refs)}); pass the values through env instead"
            )
        config: dict[str, Any] = {
            "kind": "DockerContainer",
            "name": container_name(spec.name, spec.deployment_id),
            "image": spec.image,
            "labels": common_labels(spec),
            "restart_policy": "unless-stopped",
            "ports": {f"{spec.port}/tcp": [self.bind_address, None]},
            "environment": {"PORT": str(spec.port), **spec.env},
            "user": RUN_AS,
            "read_only": spec.read_only_root_filesystem,
            "tmpfs": {"/tmp": "rw,nosuid,nodev,size=1g"},  # noqa: S108 - the container's own tmpfs
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
        }
        resources = spec.resources
        if resources.cpu_limit:
            config["nano_cpus"] = int(parse_quantity(resources.cpu_limit) * 10**9)
        if resources.memory_limit:
            config["mem_limit"] = int(parse_quantity(resources.memory_limit))
        if resources.gpus:
            config["gpus"] = resources.gpus
        return [config]

    def deploy(
        self,
        spec: DeploySpec,
        *,
        log: LogFn,
        on_progress: ProgressFn,
        should_stop: StopFn,
        manifests: list[dict[str, Any]] | None = None,
    ) -> str:
        """`manifests`: what render(spec) returned, when the caller has them already (rendered once)."""
        (config,) = manifests if manifests is not None else self.render(spec)
        if spec.replicas != 1 or spec.autoscaling is not None:
            log("Note: a Docker host runs one container per model; replicas and autoscaling are ignored here")
        legacy = self._legacy(spec.identity, spec.adopt)
        for container in legacy:
            log(
                f"Adopting {container.name}: an older Slipway made it for rollout "
                f"#{deployment_id_of(container)} here, without identity labels; it is replaced like this "
                "environment's own"
            )
        previous = self._containers(spec.identity, running_only=False) + legacy
        on_progress(Progress(desired=1, updated=0, ready=0, available=running_count(previous), message="starting"))
        self._ensure_image(spec.image, log)
        stop_if(should_stop, log)
        container = self._start(config, log)
        others = [c for c in previous if c.id != container.id]
        try:
            endpoint = self._wait_ready(container, log, on_progress, should_stop, others)
        except _ContainerFailed as failure:
            self._discard(container, log)
            serving = [str(c.name) for c in others if is_running(c)]
            log(f"Still serving: {', '.join(serving)}" if serving else "No previous container was serving")
            raise TargetError(str(failure)) from None
        except BaseException:  # stopped, the engine went away, the worker is shutting down: leave nothing behind
            with contextlib.suppress(TargetError, TransientTargetError):
                self._discard(container, log)
            raise
        self._set_restart_policy(container)
        for old in others:
            self._retire(old, log)
        on_progress(Progress(desired=1, updated=1, ready=1, available=1, message="ready"))
        log(f"Serving at {endpoint}")
        return endpoint

    def live_state(self, identity: Identity, *, adopt: tuple[tuple[int, str], ...] = ()) -> LiveState:
        """The newest of the identity's containers that runs, and whether it answers ready on its port. With
        none, a container an older Slipway made for one of the rollouts in `adopt` (see DeploySpec.adopt)."""
        validate_identity(identity)
        containers = self._containers(identity, running_only=False)
        running = [c for c in containers if c.status in ("running", "paused")]
        if not running and adopt:
            legacy = self._legacy(identity, adopt)
            running = [c for c in legacy if c.status in ("running", "paused")]
            containers = containers or legacy
        if not running:
            return LiveState(exists=False, detail=self._why_not_running(identity, containers))
        current = max(running, key=deployment_id_of)
        session = loopback_session()
        answers = {c.id: self._probe(session, port) if (port := host_port(c)) else (0, "no published port", "")
                   for c in running}  # fmt: skip
        port = host_port(current)
        status, _, _ = answers[current.id]
        return LiveState(
            exists=True,
            image=self._image_as_run(current),
            replicas=len(running),
            ready=sum(1 for code, _, _ in answers.values() if code == 200),
            endpoint=f"http://{self.host}:{port}" if port else "",
            detail=""
            if status == 200
            else (
                f"{current.name} ({current.status}) answers {READY_PATH} with {status}"
                if status
                else f"{current.name} ({current.status}) does not answer {READY_PATH} on port {port}"
            ),
        )

    @staticmethod
    def _why_not_running(identity: Identity, containers: list[Container]) -> str:
        if not containers:
            return f"No container of {identity.team}/{identity.model} exists in {identity.environment}."
        newest = max(containers, key=deployment_id_of)
        state = newest.attrs.get("State") or {}
        if state.get("Restarting"):
            return f"{newest.name} keeps restarting (last exit code {state.get('ExitCode')})."
        return f"{newest.name} is {newest.status} (exit code {state.get('ExitCode')})."

    def remove(self, identity: Identity) -> None:
        validate_identity(identity)
        for container in self._containers(identity, running_only=False):
            self._retire(container, lambda _: None)

    # --- steps of a deploy ------------------------------------------------------------------------

    def _ensure_image(self, image: str, log: LogFn) -> None:
        with self._errors(f"looking up the image {image}"):
            try:
                self.engine.images.get(image)
                log(f"The Docker host already has {image}")
                return
            except ImageNotFound:
                pass
        repository, digest = image.split("@", 1)
        log(f"Pulling {image}")
        with self._errors(f"pulling {image}"):
            try:
                stream = self.engine.api.pull(
                    repository, tag=digest, stream=True, decode=True, auth_config=self.registry_auth
                )
                for line in stream:
                    if "error" in line:
                        self._raise_pull_error(image, str(line["error"]))
                    status = str(line.get("status", ""))
                    if status.startswith(("Digest:", "Status:")) or status in ("Pull complete", "Already exists"):
                        log(f"  {line.get('id', '')} {status}".strip())
            except APIError as error:  # the engine answers a refused or unknown reference before streaming
                self._raise_pull_error(image, str(error.explanation or error))

    def _raise_pull_error(self, image: str, message: str) -> None:
        error_class = TransientTargetError if is_transient(message) else TargetError
        raise error_class(f"The Docker host cannot pull {image}: {message}")

    def _start(self, config: dict[str, Any], log: LogFn) -> Container:
        name = config["name"]
        existing = self._container(name)
        if existing is not None:
            if existing.status == "running" and existing.attrs["Config"]["Image"] == config["image"]:
                log(f"Container {name} already runs this image (a retried rollout): waiting for it to be ready")
                return existing
            log(f"Removing the leftover container {name} ({existing.status}) of an earlier attempt")
            self._discard(existing, log)
        try:
            with self._errors(f"starting the container {name}"):
                container: Container = self.engine.containers.run(**run_kwargs(config))
        except (TargetError, TransientTargetError):
            leftover = self._container(name)  # run() creates before it starts: a failed start leaves one
            if leftover is not None:
                self._discard(leftover, log)
            raise
        log(f"Started container {name} ({container.short_id}) from {config['image']}")
        return container

    def _wait_ready(
        self, container: Container, log: LogFn, on_progress: ProgressFn, should_stop: StopFn, others: list[Container]
    ) -> str:
        """Poll the published port until /v2/health/ready answers 200; the endpoint URL."""
        started = time.monotonic()
        session, last_answer, announced = loopback_session(), "", False
        while True:
            stop_if(should_stop, log)
            with self._errors(f"inspecting the container {container.name}"):
                container.reload()
            self._fail_if_exited(container, log)
            port = host_port(container)
            if port and not announced:
                announced = True
                log(f"Container {container.name} publishes port {container_port(container)} on {self.host}:{port}")
                on_progress(Progress(1, 1, 0, running_count(others), "waiting for the model to load"))
            status, detail, state = self._probe(session, port) if port else (0, "the port is not published yet", "")
            answer = f"answered {status}: {detail}" if status else detail
            if state == LOAD_FAILED_STATE:
                # The runtime says its model cannot load (it exits shortly): waiting longer changes nothing.
                self._log_output(container, log, until_explained=True)
                raise _ContainerFailed(
                    f"The model server reported a load failure after {time.monotonic() - started:.1f} s: {detail}"
                )
            if status == 200:
                elapsed = time.monotonic() - started
                still = ", ".join(str(c.name) for c in others if is_running(c)) or "none"
                log(
                    f"Ready: {container.name} answers {READY_PATH} with 200 after {elapsed:.1f} s "
                    f"(previous containers still serving: {still})"
                )
                return f"http://{self.host}:{port}"
            if answer != last_answer:
                log(f"Waiting for {container.name}: {answer}")
                last_answer = answer
            if time.monotonic() - started > self.ready_timeout:
                self._log_output(container, log)
                raise _ContainerFailed(
                    f"The container was not ready after {self.ready_timeout:.0f} s: {READY_PATH} {last_answer}"
                )
            time.sleep(self.poll_seconds)

    def _fail_if_exited(self, container: Container, log: LogFn) -> None:
        state = container.attrs.get("State") or {}
        if state.get("Status") in ("exited", "dead") or state.get("Restarting"):
            last_line = self._log_output(container, log)
            reason = f"The container exited with code {state.get('ExitCode')}"
            if state.get("ExitCode") == EXIT_LOAD_FAILED:
                reason = f"The model server reported a load failure (exit code {EXIT_LOAD_FAILED})"
            if state.get("OOMKilled"):
                reason += " (killed for using more memory than its limit)"
            if state.get("Error"):
                reason += f" ({state['Error']})"
            raise _ContainerFailed(f"{reason}: {last_line}" if last_line else reason)

    def _probe(self, session: requests.Session, port: int) -> tuple[int, str, str]:
        """(status or 0, the runtime's reason or why there was no answer, its readiness state when not ready)."""
        try:
            answer = session.get(f"http://{self.host}:{port}{READY_PATH}", timeout=2)
        except requests.RequestException as error:
            return 0, f"no answer yet ({type(error).__name__})", ""
        return answer.status_code, error_text(answer), readiness_state(answer)

    def _log_output(self, container: Container, log: LogFn, *, until_explained: bool = False) -> str:
        """Log the container's last lines; return the last one, made readable. `until_explained`: the
        runtime has reported a failure, so wait (LOG_SETTLE_SECONDS at most) for its record of it."""
        settle_by = time.monotonic() + LOG_SETTLE_SECONDS
        while True:
            try:
                raw = container.logs(tail=LOG_READ_LINES, stdout=True, stderr=True)
            except (APIError, requests.RequestException) as error:
                log(f"(the log of {container.name} cannot be read: {error})")
                return ""
            lines = log_tail(raw.decode("utf-8", errors="replace"), LOG_TAIL_LINES)
            if not until_explained or runtime_record_error(lines) or time.monotonic() > settle_by:
                break
            time.sleep(0.1)
        log(f"Last {len(lines)} log lines of {container.name} (health checks left out):")
        for line in lines:
            log(f"  | {line}")
        return readable(lines[-1]) if lines else ""

    def _set_restart_policy(self, container: Container) -> None:
        # Only now: during the readiness wait a crash must stay visible instead of being restarted away.
        with self._errors(f"setting the restart policy of {container.name}"):
            container.update(restart_policy={"Name": "unless-stopped", "MaximumRetryCount": 0})  # type: ignore[arg-type]

    def _retire(self, container: Container, log: LogFn) -> None:
        with self._errors(f"removing the container {container.name}"), already_gone():
            container.stop(timeout=self.stop_timeout)
            container.remove(force=True)
        log(f"Stopped and removed the previous container {container.name}")

    def _discard(self, container: Container, log: LogFn) -> None:
        with self._errors(f"removing the container {container.name}"), already_gone():
            container.remove(force=True)
        log(f"Removed the new container {container.name}")

    # --- lookups ----------------------------------------------------------------------------------

    def _containers(self, identity: Identity, *, running_only: bool) -> list[Container]:
        """This identity's containers, by its labels: never another environment's, team's or installation's."""
        labels = [f"{key}={value}" for key, value in identity.selector().items()]
        with self._errors(f"listing the containers of {identity.name}"):
            return self.engine.containers.list(all=not running_only, filters={"label": labels}, ignore_removed=True)

    def _legacy(self, identity: Identity, adopt: tuple[tuple[int, str], ...]) -> list[Container]:
        """Containers an older Slipway made for this environment: no installation label, so found by team and
        model, and kept only when their deployment id and image are one of `adopt` (rollouts here)."""
        if not adopt:
            return []
        wanted = {(str(deployment_id), image) for deployment_id, image in adopt}
        labels = [f"app.kubernetes.io/managed-by={MANAGED_BY}", f"slipway.io/team={identity.team}",
                  f"slipway.io/model={identity.model}"]  # fmt: skip
        with self._errors(f"listing the containers an older Slipway made for {identity.team}/{identity.model}"):
            found = self.engine.containers.list(all=True, filters={"label": labels}, ignore_removed=True)
        return [
            c
            for c in found
            if "slipway.io/installation" not in c.labels
            and (c.labels.get("slipway.io/deployment-id", ""), c.attrs["Config"].get("Image", "")) in wanted
        ]

    def _container(self, name: str) -> Container | None:
        with self._errors(f"looking up the container {name}"):
            try:
                return self.engine.containers.get(name)
            except NotFound:
                return None

    def _image_as_run(self, container: Container) -> str:
        """The image reference by digest: as given to `run`, or the digest of the repository it was run from.
        A digest of another repository the same image was pushed to is not what runs here: an image
        tagged and pushed elsewhere would otherwise read as drifted (or as in sync with another release)."""
        configured: str = container.attrs["Config"].get("Image", "")
        if "@sha256:" in configured:
            return configured
        name, _, tag = configured.rpartition(":")
        repository = name if tag and "/" not in tag else configured
        with self._errors("inspecting an image"), contextlib.suppress(ImageNotFound):
            digests: list[str] = self.engine.images.get(container.attrs["Image"]).attrs.get("RepoDigests") or []
            for digest in digests:
                if digest.partition("@")[0] == repository:
                    return digest
        return configured

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except (TargetError, TransientTargetError, RolloutStopped, _ContainerFailed):
            raise
        except APIError as error:
            message = str(error.explanation or error)
            if (error.status_code or 0) >= 500 and is_transient(message):
                raise TransientTargetError(f"The Docker engine failed while {what}: {message}") from None
            raise TargetError(f"The Docker engine refused {what}: {message}") from None
        except paramiko.SSHException as error:
            refusal = ssh_refusal(self.base_url, error)
            if refusal is not None:  # a refused key or an untrusted host is refused again: no retry
                raise TargetError(refusal) from None
            raise TransientTargetError(
                f"The Docker host at {self.base_url} did not answer over SSH while {what}: {error}"
            ) from None
        except (requests.RequestException, DockerException, OSError) as error:
            refusal = tls_refusal(self.base_url, error)
            if refusal is not None:  # a TLS handshake that failed fails again: no retry
                raise TargetError(refusal) from None
            raise TransientTargetError(
                f"The Docker engine at {self.base_url} did not answer while {what}: {error}"
            ) from None
