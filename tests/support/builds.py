"""Helpers shared by the build tests."""

import contextlib
import io
import tarfile
from collections.abc import Iterator

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


@contextlib.contextmanager
def pushed_copy(docker_engine, oci_registry, source: str, repository: str) -> Iterator[str]:
    """`source` pushed to the test registry as `repository:1.0`, as a team would push a prebuilt image.
    The tag is removed afterwards: the source is the shared base image, and a digest of another
    repository left on it is seen by every later test of this engine."""
    reference = f"{oci_registry.host}/{repository}:1.0"
    docker_engine.images.get(source).tag(reference)
    try:
        auth = {"username": oci_registry.username, "password": oci_registry.password}
        for line in docker_engine.images.push(reference, auth_config=auth, stream=True, decode=True):
            assert "error" not in line, line
        yield reference
    finally:
        docker_engine.images.remove(reference, noprune=True)
