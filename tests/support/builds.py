"""Helpers shared by the build tests."""

import io
import tarfile

from deployments.models import Build
from tests.support.services import wait_until


def custom_context(dockerfile: str) -> bytes:
    """A `custom` artifact: a .tar.gz holding just a Dockerfile."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def containers_running(docker_engine, marker: str) -> list:
    """Containers (build steps included) whose command contains the marker."""
    containers = docker_engine.containers.list(all=True)
    return [c for c in containers if marker in " ".join(c.attrs["Config"]["Cmd"] or [])]


def wait_for_build(version_id: int, timeout: float = 300) -> Build:
    def finished():
        build = Build.objects.filter(version_id=version_id).order_by("-pk").first()
        return build if build and build.is_finished else None

    return wait_until(finished, timeout=timeout, interval=0.3, message=f"the build of version {version_id}")
