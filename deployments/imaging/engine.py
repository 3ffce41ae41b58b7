"""Talking to the Docker Engine and to OCI registries: build, push, inspect.

Everything here is a network call, so none of it may run inside a database transaction.
Errors come out as one of three exceptions (deployments.imaging.errors), so the build runner can
decide what to do: `TransientError` (retry with backoff), `ImageError` (fail with this one-sentence
reason), `Cancelled` (the user asked to stop).
"""

from __future__ import annotations

import queue
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import docker
import requests

from deployments.imaging.errors import Cancelled, ImageError, TransientError
from deployments.transient import is_transient, refused_credentials, status_is_refused_credentials


class RegistryLogin(Protocol):
    """What check_registry_login needs to know of a registry (deployments.models.ContainerRegistry)."""

    insecure: bool
    username: str
    password: str

    @property
    def host(self) -> str: ...


class _ResponseCapturingClient(docker.APIClient):
    """Keeps hold of the streaming build response, so a cancel can close its socket.

    Closing the connection is how `docker build` is interrupted: the engine cancels the build
    and, with forcerm, removes the intermediate container.
    """

    current_response: Any = None

    def _stream_helper(self, response: Any, decode: bool = False) -> Any:
        self.current_response = response
        return super()._stream_helper(response, decode)  # type: ignore[misc]


def _close_stream(client: _ResponseCapturingClient) -> None:
    response = client.current_response
    if response is None:
        return
    try:
        raw = response.raw._fp.fp.raw
        sock = getattr(raw, "_sock", raw)
        sock.shutdown(socket.SHUT_RDWR)
    except (AttributeError, OSError):
        pass
    response.close()


class DockerEngine:
    """The Docker Engine at `base_url` (DOCKER_HOST), and the registries it pushes to and pulls from."""

    def __init__(self, base_url: str, *, timeout: int = 60) -> None:
        self.base_url, self.timeout = base_url, timeout

    def client(self) -> _ResponseCapturingClient:
        try:
            return _ResponseCapturingClient(base_url=self.base_url, timeout=self.timeout, version="auto")
        except docker.errors.DockerException as exc:
            raise TransientError(f"the Docker engine at {self.base_url} does not answer: {exc}") from None

    def build_image(
        self,
        *,
        context: Path,
        dockerfile: str,
        tag: str,
        labels: dict[str, str],
        log: Callable[[str], None],
        should_stop: Callable[[], str | None],
        poll_seconds: float = 0.5,
        network_mode: str | None = "none",
    ) -> str:
        """Build with the classic builder, streaming its output to `log`; returns the image id.

        `should_stop` is asked about every half second, even while a step prints nothing; when it
        returns a reason the build is interrupted and `Cancelled(reason)` raised. RUN steps have no
        network unless `network_mode` says otherwise (wheels are resolved on the host beforehand).
        """
        client = self.client()
        chunks: queue.Queue[Any] = queue.Queue(maxsize=1000)
        done = object()

        def read() -> None:
            try:
                stream = client.build(
                    path=str(context),
                    dockerfile=dockerfile,
                    tag=tag,
                    labels=labels,
                    rm=True,
                    forcerm=True,
                    pull=False,
                    network_mode=network_mode,
                    decode=True,
                )
                for chunk in stream:
                    chunks.put(chunk)
            except Exception as exc:  # handed to the waiting thread, which decides what it means
                chunks.put(exc)
            finally:
                chunks.put(done)

        reader = threading.Thread(target=read, name=f"build-{tag}", daemon=True)
        reader.start()
        image_id = None
        pending = ""
        try:
            while True:
                reason = should_stop()
                if reason:
                    _close_stream(client)
                    raise Cancelled(reason)
                try:
                    chunk = chunks.get(timeout=poll_seconds)
                except queue.Empty:
                    continue
                if chunk is done:
                    break
                if isinstance(chunk, Exception):
                    raise _engine_error(chunk, "building the image")
                if "stream" in chunk:
                    pending += chunk["stream"]
                    *complete, pending = pending.split("\n")
                    for line in complete:
                        log(line)
                if "error" in chunk:
                    if pending:
                        log(pending)
                        pending = ""
                    message = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                    log(message)
                    raise ImageError(f"The image build failed: {message.strip().splitlines()[-1]}")
                if "aux" in chunk and "ID" in chunk["aux"]:
                    image_id = chunk["aux"]["ID"]
            if pending:
                log(pending)
        finally:
            reader.join(timeout=10)
            client.close()
        if not image_id:
            # Engines that do not send aux report the result on the last "Successfully built" line.
            image_id = str(client.inspect_image(tag)["Id"])  # type: ignore[no-untyped-call]  # docker-py's low-level client has no type hints
        return image_id

    def image_size(self, image: str) -> int:
        client = self.client()
        try:
            return int(client.inspect_image(image)["Size"])  # type: ignore[no-untyped-call]  # docker-py's low-level client has no type hints
        finally:
            client.close()

    @staticmethod
    def check_registry_login(registry: RegistryLogin) -> None:
        """Fail early, before an image is built, if the registry is down or refuses the credentials."""
        url = f"{'http' if registry.insecure else 'https'}://{registry.host}/v2/"
        try:
            response = requests.get(
                url,
                timeout=10,
                auth=(registry.username, registry.password) if registry.username else None,
                allow_redirects=False,  # the host was checked; where a redirect leads was not
            )
        except requests.RequestException as exc:
            raise TransientError(f"The registry {registry.host} is unreachable: {_short(exc)}.") from None
        if response.status_code == 401:
            who = registry.username or "anonymous"
            raise ImageError(f"The registry {registry.host} refused the credentials of '{who}'.")
        if response.status_code >= 500:
            raise TransientError(f"The registry {registry.host} answered {response.status_code}.")
        if response.status_code != 200:
            raise ImageError(f"The registry {registry.host} answered {response.status_code} at /v2/.")

    def tag_exists(self, reference: str, auth: dict[str, str] | None) -> bool:
        client = self.client()
        try:
            client.inspect_distribution(reference, auth_config=auth)  # type: ignore[no-untyped-call]  # docker-py's low-level client has no type hints
            return True
        except docker.errors.NotFound:
            return False
        except docker.errors.APIError as exc:
            text = str(exc)
            if "manifest unknown" in text or "not found" in text.lower():
                return False
            raise _engine_error(exc, f"checking {reference}") from None
        finally:
            client.close()

    def push_image(
        self, *, repository: str, tag: str, auth: dict[str, str] | None, log: Callable[[str], None]
    ) -> tuple[str, int]:
        """Push one tag; returns (digest, size of the manifest). Layer progress is summarised, not streamed."""
        client = self.client()
        digest, size = None, 0
        seen: set[tuple[str, str]] = set()
        try:
            for chunk in client.push(repository, tag=tag, auth_config=auth, stream=True, decode=True):
                if "error" in chunk:
                    message = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                    log(f"push error: {message}")
                    if refused_credentials(message):
                        raise ImageError(f"The registry refused the push: {message}.")
                    if is_transient(message):
                        raise TransientError(f"Pushing to the registry failed: {message}.")
                    raise ImageError(f"Pushing to the registry failed: {message}.")
                status, layer = chunk.get("status", ""), chunk.get("id", "")
                if status and status not in ("Pushing", "Waiting", "Preparing") and (layer, status) not in seen:
                    seen.add((layer, status))
                    log(f"{layer}: {status}" if layer else status)
                aux = chunk.get("aux") or {}
                if aux.get("Digest"):
                    digest = aux["Digest"]
                    size = aux.get("Size", 0)
        except docker.errors.APIError as exc:
            raise _engine_error(exc, "pushing the image") from None
        finally:
            client.close()
        if not digest:
            raise ImageError("The registry accepted the push but reported no digest.")
        return digest, size

    def pull_image(self, reference: str, auth: dict[str, str] | None) -> None:
        """Pull an image (a prebuilt one, by digest, to read what it holds)."""
        client = self.client()
        try:
            for chunk in client.pull(reference, auth_config=auth, stream=True, decode=True):
                if "error" in chunk:
                    message = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                    if is_transient(message):
                        raise TransientError(f"Pulling {reference} failed: {message}.")
                    raise ImageError(f"Pulling {reference} failed: {message}.")
        except docker.errors.APIError as exc:
            raise _engine_error(exc, f"pulling {reference}") from None
        finally:
            client.close()

    def remote_digest(self, reference: str, auth: dict[str, str] | None) -> str:
        """The digest a registry holds for a reference, without pulling it (for prebuilt images)."""
        client = self.client()
        try:
            found = client.inspect_distribution(reference, auth_config=auth)  # type: ignore[no-untyped-call]  # docker-py's low-level client has no type hints
            return str(found["Descriptor"]["digest"])
        except docker.errors.NotFound:
            raise ImageError(f"The image {reference} does not exist in its registry.") from None
        except docker.errors.APIError as exc:
            text = str(exc)
            if "manifest unknown" in text or "not found" in text.lower():
                raise ImageError(f"The image {reference} does not exist in its registry.") from None
            raise _engine_error(exc, f"looking up {reference}") from None
        finally:
            client.close()


def _short(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out"):
        if marker in text:
            return marker.lower()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _engine_error(exc: Exception, doing: str) -> Exception:
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return TransientError(f"The Docker engine stopped answering while {doing}: {_short(exc)}.")
    if isinstance(exc, docker.errors.APIError):
        explanation = exc.explanation if isinstance(exc.explanation, str) else str(exc)
        if status_is_refused_credentials(exc.status_code) or refused_credentials(explanation):
            return ImageError(f"The registry refused the credentials while {doing}: {explanation}.")
        if exc.is_server_error() or is_transient(explanation):
            return TransientError(f"The Docker engine failed while {doing}: {explanation}.")
        return ImageError(f"The Docker engine refused {doing}: {explanation}.")
    if isinstance(exc, ImageError | TransientError | Cancelled):
        return exc
    return TransientError(f"Unexpected error while {doing}: {_short(exc)}.")
