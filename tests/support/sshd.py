"""A remote Docker host reached over SSH, for tests: a real OpenSSH server in a container on loopback.

The image is the local base image with Debian's openssh-server, built when missing and kept (labelled
slipway.test=sshd), tagged with a hash of its Dockerfile and the base image's id: a new base image or a
changed Dockerfile makes a new one instead of reusing a stale one. The host's docker CLI is mounted in,
for the `docker system dial-stdio` that the docker SDK runs on the far side, and so is the engine's
socket: what the server runs, runs on the local engine, and published ports are reached on 127.0.0.1 as
they would be on the remote host's address. The server's host key and the one authorized client key are
made here, as Ed25519 keys.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import secrets
import shutil
import socket
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

SSHD_REPOSITORY = "slipway-test/sshd"
ENGINE_SOCKET = "/var/run/docker.sock"
LABEL = "slipway.test"
DOCKERFILE = """\
FROM {base}
RUN apt-get -q update \\
 && DEBIAN_FRONTEND=noninteractive apt-get -q install -y --no-install-recommends openssh-server \\
 && rm -rf /var/lib/apt/lists/* /etc/ssh/ssh_host_*_key* \\
 && mkdir -p /run/sshd
"""
SSHD_CONFIG = """\
Port 22
HostKey /etc/slipway-sshd/host_key
AuthorizedKeysFile /etc/slipway-sshd/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile none
LogLevel VERBOSE
"""


@dataclass(frozen=True)
class KeyPair:
    private: str  # OpenSSH private key format
    public: str  # "ssh-ed25519 AAAA..."

    @classmethod
    def make(cls) -> KeyPair:
        key = ed25519.Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        ).decode()
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        return cls(private=private, public=public.decode())


def sshd_image_tag(engine: docker.DockerClient, base_image: str) -> str:
    dockerfile = DOCKERFILE.format(base=base_image)
    made_of = hashlib.sha256((dockerfile + engine.images.get(base_image).id).encode()).hexdigest()[:12]
    return f"{SSHD_REPOSITORY}:{made_of}"


def ensure_sshd_image(engine: docker.DockerClient, base_image: str, tag: str = "") -> str:
    """The sshd image, built from the base image when this engine does not have it yet."""
    tag = tag or sshd_image_tag(engine, base_image)
    with contextlib.suppress(docker.errors.ImageNotFound):
        engine.images.get(tag)
        return tag
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as archive:
        dockerfile = DOCKERFILE.format(base=base_image).encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        archive.addfile(info, io.BytesIO(dockerfile))
    context.seek(0)
    engine.images.build(fileobj=context, custom_context=True, tag=tag, labels={LABEL: "sshd"}, rm=True)
    return tag


class SshDockerHost:
    """`ssh://root@127.0.0.1:<port>`: sshd in a container, authorizing `client` only."""

    def __init__(
        self,
        engine: docker.DockerClient,
        image: str,
        workdir: Path,
        name: str,
        *,
        cli: bool = True,
        socket: bool = True,
    ) -> None:
        """`cli` and `socket`: mount the docker CLI and the engine's socket (without them, a broken host)."""
        self.engine, self.image, self.name = engine, image, name
        self.cli, self.socket = cli, socket
        self.host_key, self.client = KeyPair.make(), KeyPair.make()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        workdir.chmod(0o700)
        for file, text in (
            ("sshd_config", SSHD_CONFIG),
            ("host_key", self.host_key.private),
            ("authorized_keys", self.client.public + "\n"),
        ):
            (workdir / file).write_text(text)
            (workdir / file).chmod(0o600)
        self.container = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ssh://root@127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> SshDockerHost:
        docker_cli = shutil.which("docker")
        assert docker_cli, "the docker CLI runs `docker system dial-stdio` on the far side: install docker.io"
        self.container = self.engine.containers.run(
            self.image,
            ["/usr/sbin/sshd", "-D", "-e", "-f", "/etc/slipway-sshd/sshd_config"],
            name=self.name,
            detach=True,
            labels={LABEL: "sshd"},
            ports={"22/tcp": ("127.0.0.1", None)},
            volumes={
                str(self.workdir): {"bind": "/etc/slipway-sshd", "mode": "ro"},
                **({docker_cli: {"bind": "/usr/local/bin/docker", "mode": "ro"}} if self.cli else {}),
                **({ENGINE_SOCKET: {"bind": ENGINE_SOCKET, "mode": "rw"}} if self.socket else {}),
            },
        )
        deadline = time.monotonic() + timeout
        while True:
            self.container.reload()
            bindings = (self.container.attrs["NetworkSettings"]["Ports"] or {}).get("22/tcp") or []
            if bindings and self._banner(int(bindings[0]["HostPort"])):
                self.port = int(bindings[0]["HostPort"])
                return self
            if self.container.status == "exited" or time.monotonic() > deadline:
                logs = self.container.logs().decode(errors="replace")
                raise AssertionError(f"sshd did not start ({self.container.status}):\n{logs}")
            time.sleep(0.2)

    @staticmethod
    def _banner(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
                return conn.recv(64).startswith(b"SSH-2.0-")
        except OSError:
            return False

    def log(self) -> str:
        return self.container.logs().decode(errors="replace") if self.container is not None else ""

    def stop(self) -> None:
        if self.container is not None:
            with contextlib.suppress(docker.errors.NotFound):
                self.container.remove(force=True)
            self.container = None


@pytest.fixture(scope="session")
def sshd_image(docker_engine, base_image) -> str:
    return ensure_sshd_image(docker_engine, base_image)


@pytest.fixture
def ssh_docker_host(docker_engine, sshd_image, tmp_path) -> Iterator[SshDockerHost]:
    host = SshDockerHost(docker_engine, sshd_image, tmp_path / "sshd", f"slipway-test-sshd-{secrets.token_hex(4)}")
    yield host.start()
    host.stop()


@pytest.fixture
def broken_ssh_docker_host(docker_engine, sshd_image, tmp_path) -> Iterator[Callable[..., SshDockerHost]]:
    """make(cli=False) or make(socket=False): a host that signs Slipway in but cannot give it an engine."""
    made: list[SshDockerHost] = []

    def make(**mounts: bool) -> SshDockerHost:
        name = f"slipway-test-sshd-{secrets.token_hex(4)}"
        made.append(SshDockerHost(docker_engine, sshd_image, tmp_path / name, name, **mounts))
        return made[-1].start()

    yield make
    for host in made:
        host.stop()
