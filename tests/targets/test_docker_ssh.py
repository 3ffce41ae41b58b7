"""Remote Docker hosts over ssh://, for real: an OpenSSH server in a container on loopback in front of the
local engine (tests/support/sshd.py). Slipway's key is the one given, never the worker's ~/.ssh; the host's
key is recorded on first use, or pinned, and a host that shows another key is refused."""

from __future__ import annotations

import contextlib
import secrets

import docker
import docker.errors
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from deployments.targets import DockerHostTarget, DockerSSH, TargetError, parse_host_key, validate_ssh
from tests.support.sshd import KeyPair, ensure_sshd_image, sshd_image_tag
from tests.support.targets import containers_of

pytestmark = pytest.mark.slow


def quick_target(host, ssh: DockerSSH, **options) -> DockerHostTarget:
    return DockerHostTarget(host.url, ssh=ssh, request_timeout=10, **options)


def test_an_ssh_host_runs_a_model_with_slipways_key_and_records_the_host_key_on_first_use(
    ssh_docker_host, docker_engine, model_images, host_spec, host_identity, recorder
):
    recorded: list[str] = []

    def record(seen: str) -> str:
        recorded.append(seen)
        return seen

    ssh = DockerSSH(key=ssh_docker_host.client.private, record_host_key=record)
    with quick_target(
        ssh_docker_host, ssh, registry_auth=model_images.registry_auth, ready_timeout=30, poll_seconds=0.1,
        stop_timeout=3,
    ) as target:  # fmt: skip
        assert target.check()["ok"] is True
        assert recorded == [parse_host_key(ssh_docker_host.host_key.public)]

        endpoint = target.deploy(host_spec(model_images.v1), **recorder.kwargs)

        assert endpoint.startswith("http://127.0.0.1:")  # the host as its ssh:// URL names it
        session = requests.Session()
        session.trust_env = False
        assert session.get(f"{endpoint}/v2/health/ready", timeout=5).status_code == 200
        assert target.live_state(host_identity).endpoint == endpoint
        target.remove(host_identity)
    assert containers_of(docker_engine, host_identity) == []
    assert "Accepted publickey for root" in ssh_docker_host.log()

    # Pinned now: the same host is trusted again without recording anything.
    pinned = DockerSSH(key=ssh_docker_host.client.private, host_key=recorded[0])
    with quick_target(ssh_docker_host, pinned) as target:
        assert target.check()["ok"] is True


def test_a_key_the_host_does_not_authorize_is_refused_naming_the_field(ssh_docker_host, host_spec, model_images):
    ssh = DockerSSH(key=KeyPair.make().private, host_key=ssh_docker_host.host_key.public)

    with quick_target(ssh_docker_host, ssh) as target:
        result = target.check()
        with pytest.raises(TargetError) as failure:  # permanent: a rollout does not retry it
            target.deploy(host_spec(model_images.v1), log=lambda _: None, on_progress=lambda _: None,
                          should_stop=lambda: None)  # fmt: skip

    assert result["ok"] is False
    assert result["message"].startswith(
        f"The Docker host at {ssh_docker_host.url} refused Slipway's SSH key; check docker_ssh_key"
    )
    assert str(failure.value).startswith(f"The Docker host at {ssh_docker_host.url} refused Slipway's SSH key")
    assert "Failed publickey for root" in ssh_docker_host.log()


def test_a_host_that_shows_another_key_than_the_pinned_one_is_not_trusted(ssh_docker_host):
    impostor_key = KeyPair.make().public  # what an admin pinned; the host (an impostor, say) shows another
    recorded: list[str] = []

    def record(seen: str) -> str:
        recorded.append(seen)
        return seen

    ssh = DockerSSH(key=ssh_docker_host.client.private, host_key=impostor_key, record_host_key=record)

    with quick_target(ssh_docker_host, ssh) as target:
        result = target.check()

    assert result["ok"] is False
    assert result["message"].startswith(
        f"The Docker host at {ssh_docker_host.url} presented a host key other than docker_ssh_host_key"
    )
    assert recorded == []  # a pinned key is never replaced by what a host shows
    assert "Accepted publickey" not in ssh_docker_host.log()  # refused before Slipway's key was offered


def test_the_workers_own_ssh_keys_and_config_are_never_used(ssh_docker_host, tmp_path, monkeypatch):
    # The worker's ~/.ssh holds the key the host authorizes, and a config that would send the connection
    # elsewhere; the environment's key is another one. Only the environment's key may be tried.
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text(ssh_docker_host.client.private)
    (home / ".ssh" / "id_ed25519").chmod(0o600)
    (home / ".ssh" / "config").write_text("Host 127.0.0.1\n  Port 1\n  IdentityFile ~/.ssh/id_ed25519\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    ssh = DockerSSH(key=KeyPair.make().private, host_key=ssh_docker_host.host_key.public)

    with quick_target(ssh_docker_host, ssh) as target:
        result = target.check()

    assert result["ok"] is False
    assert "refused Slipway's SSH key" in result["message"]
    assert "Accepted publickey" not in ssh_docker_host.log()


def test_an_ssh_host_without_a_key_is_refused_before_connecting():
    with DockerHostTarget("ssh://deploy@127.0.0.1:1") as target:
        result = target.check()

    assert result == {"ok": False, "server_version": "", "message": result["message"]}
    assert result["message"].startswith("docker_ssh_key: an ssh:// host needs Slipway's private key")


@pytest.mark.parametrize(
    ("ssh", "field", "reason"),
    [
        (DockerSSH(key=""), "docker_ssh_key", "needs Slipway's private key"),
        (DockerSSH(key="-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n"), "docker_ssh_key", "not a private key"),
        (DockerSSH(key=KeyPair.make().public), "docker_ssh_key", "not a private key"),
        (DockerSSH(key=KeyPair.make().private, host_key="ssh-ed25519"), "docker_ssh_host_key", "as one line"),
        (DockerSSH(key=KeyPair.make().private, host_key="ssh-ed25519 bm90IGEga2V5"), "docker_ssh_host_key",
         "not an SSH public key"),
    ],
)  # fmt: skip
def test_ssh_material_is_checked_naming_the_field(ssh, field, reason):
    with pytest.raises(TargetError, match=rf"^{field}: .*{reason}"):
        validate_ssh(ssh)


def test_a_passphrase_protected_key_is_refused_naming_the_field():
    protected = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.BestAvailableEncryption(b"passphrase"),
    ).decode()  # fmt: skip

    with pytest.raises(TargetError, match=r"^docker_ssh_key: the key is protected by a passphrase"):
        validate_ssh(DockerSSH(key=protected))


def test_a_host_key_is_taken_from_a_pub_file_line_or_a_known_hosts_line():
    key = KeyPair.make().public
    assert parse_host_key(key) == key
    assert parse_host_key(f"{key} root@edge-7\n") == key
    assert parse_host_key(f"edge-7.example.net,[10.1.2.3]:2222 {key}") == key


@pytest.mark.parametrize(
    ("mounts", "reason"),
    [
        ({"cli": False}, "has no docker command for root; install the Docker CLI there"),
        ({"socket": False}, "cannot run docker for root (does its engine run, and may root use it?): Cannot connect"),
    ],
)
def test_a_host_that_signs_slipway_in_but_gives_it_no_engine_says_why(broken_ssh_docker_host, mounts, reason):
    host = broken_ssh_docker_host(**mounts)
    ssh = DockerSSH(key=host.client.private, host_key=host.host_key.public)

    with quick_target(host, ssh) as target:
        result = target.check()

    assert result["ok"] is False
    assert result["message"].startswith(f"The Docker host at {host.url} {reason}"), result["message"]
    assert "Accepted publickey for root" in host.log()


def test_the_sshd_image_is_built_where_the_engine_does_not_have_it(docker_engine, base_image):
    # The branch a new machine takes: no sshd image yet. Built here under a tag of its own (Docker's
    # layer cache may serve the steps; the image is still made, tagged and labelled by this call).
    missing = f"slipway-test/sshd-probe:{secrets.token_hex(4)}"
    try:
        assert ensure_sshd_image(docker_engine, base_image, tag=missing) == missing
        image = docker_engine.images.get(missing)
        assert image.labels.get("slipway.test") == "sshd"
        ran = docker_engine.containers.run(missing, ["/usr/sbin/sshd", "-V"], remove=True, stderr=True)
        assert b"OpenSSH" in ran
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_engine.images.remove(missing, noprune=True)
    # The shared tag names what the image is made of: another base image or Dockerfile, another tag.
    assert sshd_image_tag(docker_engine, base_image).startswith("slipway-test/sshd:")
