"""What an image holds beyond its wheels: its Debian packages, read from the image's dpkg status, and
for a prebuilt image (whose wheels we did not install) the Python distributions its interpreter sees.

For the Debian packages the image is not run: a container is created (never started), the two files
are copied out of it with the engine's archive API, and the container is removed. The Python listing
runs the image's own `python3`, without network, as the build's smoke test runs images.
"""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import tarfile

import docker
import docker.errors

from deployments.imaging.errors import ImageError
from deployments.osv.dpkg import DebianPackage, debian_ecosystem, parse_status

__all__ = ["DPKG_STATUS", "debian_packages", "python_packages"]

DPKG_STATUS = "/var/lib/dpkg/status"
OS_RELEASE = ("/usr/lib/os-release", "/etc/os-release")  # the second is usually a link to the first
MAX_FILE_BYTES = 64 * 1024**2
PYTHON_LISTING = (
    "import importlib.metadata as m, json; "
    "print(json.dumps(sorted({(d.metadata['Name'] or '', d.version) for d in m.distributions()})))"
)
PYTHON_LISTING_SECONDS = 60


def debian_packages(client: docker.APIClient, image: str) -> tuple[str, list[DebianPackage]]:
    """(`Debian:12`, the installed packages), or ("", []) for an image without dpkg (not Debian-based)."""
    name = f"slipway-packages-{secrets.token_hex(4)}"
    try:
        container = client.create_container(image, name=name, command=["true"], network_disabled=True)
    except docker.errors.DockerException as exc:
        raise ImageError(f"Could not read the image's packages: {exc}") from None
    try:
        status = _read(client, container["Id"], DPKG_STATUS)
        if status is None:
            return "", []
        os_release = next((text for path in OS_RELEASE if (text := _read(client, container["Id"], path))), "")
        return debian_ecosystem(os_release), parse_status(status)
    finally:
        with contextlib.suppress(docker.errors.DockerException):
            client.remove_container(container["Id"], force=True)


def python_packages(client: docker.APIClient, image: str) -> list[dict[str, str]] | None:
    """The Python distributions (`{"name", "version"}`) the image's `python3` sees, or None when the image
    has no `python3` on its PATH (or it cannot list them)."""
    name = f"slipway-python-{secrets.token_hex(4)}"
    try:
        container = client.create_container(
            image,
            name=name,
            entrypoint=["python3", "-c", PYTHON_LISTING],
            command=[],
            network_disabled=True,
            host_config=client.create_host_config(mem_limit="512m"),
        )
    except docker.errors.DockerException as exc:
        raise ImageError(f"Could not read the image's Python packages: {exc}") from None
    try:
        try:
            client.start(container["Id"])
            ended = client.wait(container["Id"], timeout=PYTHON_LISTING_SECONDS)
        except docker.errors.APIError:  # no python3 to start
            return None
        if ended.get("StatusCode") != 0:
            return None
        listed = json.loads(client.logs(container["Id"], stdout=True, stderr=False) or b"[]")
        return [{"name": str(n), "version": str(v)} for n, v in listed if n]
    except (ValueError, TypeError):
        return None
    finally:
        with contextlib.suppress(docker.errors.DockerException):
            client.remove_container(container["Id"], force=True)


def _read(client: docker.APIClient, container: str, path: str) -> str | None:
    try:
        stream, stat = client.get_archive(container, path)
    except docker.errors.NotFound:
        return None
    if int(stat.get("size", 0)) > MAX_FILE_BYTES:
        raise ImageError(f"{path} in the image is larger than {MAX_FILE_BYTES} bytes")
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
        member = archive.next()
        if member is None or not member.isfile():
            return None  # a link (os-release usually is one): the caller tries the file it points to
        handle = archive.extractfile(member)
        return handle.read().decode("utf-8", "replace") if handle else None
