"""Remote Docker hosts over SSH: Slipway's own key, and the host's key pinned or recorded on first use.

The docker SDK's ssh:// support reads the worker's ~/.ssh (config, known_hosts, default keys and agent)
or shells out to the system's ssh, which does the same. Neither is used: the key is the environment's
encrypted secret, held in memory only, and the host is trusted by the key stored with the environment
(given by its admin, or recorded on the first connection and refused if it ever changes).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import paramiko
from cryptography.hazmat.primitives import serialization
from docker.transport.sshconn import SSHConnectionPool, SSHHTTPAdapter

from .base import TargetError

__all__ = [
    "DockerSSH",
    "HostKeyRefused",
    "SshEngineAdapter",
    "host_key_line",
    "parse_host_key",
    "ssh_refusal",
    "validate_ssh",
]

DEFAULT_PORT = 22
POOL_KEY = "http+docker://ssh"
_KEY_TYPE_PREFIXES = ("ssh-", "ecdsa-", "sk-")
COMMAND_NOT_FOUND = 127
_KEY_CLASSES: tuple[type[paramiko.PKey], ...] = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)


@dataclass(frozen=True)
class DockerSSH:
    """`key`: Slipway's private key (OpenSSH or PEM, unencrypted). `host_key`: the host's public key as an
    OpenSSH line ("ssh-ed25519 AAAA..."), or "" to record it on first use through `record_host_key`, which
    stores the key it is given unless one is stored already, and returns the one stored."""

    key: str
    host_key: str = ""
    record_host_key: Callable[[str], str] | None = None


class HostKeyRefused(paramiko.SSHException):
    """The host presented a key other than the pinned one (or none can be pinned)."""


def load_private_key(text: str) -> paramiko.PKey:
    """TargetError naming docker_ssh_key when the text is not an unencrypted private key."""
    if not text.strip():
        raise TargetError("docker_ssh_key: an ssh:// host needs Slipway's private key")
    for key_class in _KEY_CLASSES:
        try:
            return key_class.from_private_key(io.StringIO(text))
        except paramiko.PasswordRequiredException:
            raise TargetError("docker_ssh_key: the key is protected by a passphrase; give it unencrypted") from None
        except (paramiko.SSHException, ValueError, TypeError, IndexError):
            continue
    raise TargetError(
        "docker_ssh_key: not a private key (-----BEGIN OPENSSH PRIVATE KEY----- or a PEM key; Ed25519, ECDSA or RSA)"
    )


def parse_host_key(text: str) -> str:
    """The host key as "type base64", from a .pub file's line or a known_hosts line (the host names before it
    and a comment after it are dropped); TargetError naming docker_ssh_host_key."""
    words = text.split()
    if len(words) >= 3 and not words[0].startswith(_KEY_TYPE_PREFIXES) and words[1].startswith(_KEY_TYPE_PREFIXES):
        words = words[1:]  # known_hosts: "host1,[host2]:2222 ssh-ed25519 AAAA..."
    if len(words) < 2:
        raise TargetError("docker_ssh_host_key: give the host's public key as one line, e.g. 'ssh-ed25519 AAAA…'")
    line = f"{words[0]} {words[1]}"
    try:
        serialization.load_ssh_public_key(line.encode())
    except (ValueError, TypeError, UnicodeError):
        raise TargetError(
            "docker_ssh_host_key: not an SSH public key (its /etc/ssh/ssh_host_*_key.pub, e.g. 'ssh-ed25519 AAAA…')"
        ) from None
    return line


def host_key_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


def validate_ssh(ssh: DockerSSH) -> None:
    load_private_key(ssh.key)
    if ssh.host_key:
        parse_host_key(ssh.host_key)


def _same_key(first: str, second: str) -> bool:
    return first.split()[:2] == second.split()[:2]


class _PinnedHostKey(paramiko.MissingHostKeyPolicy):
    """No known_hosts file is loaded, so paramiko asks this policy about every host key it is shown."""

    def __init__(self, ssh: DockerSSH, where: str) -> None:
        self.ssh, self.where = ssh, where

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        seen = host_key_line(key)
        pinned = self.ssh.host_key
        if not pinned and self.ssh.record_host_key is not None:
            pinned = self.ssh.record_host_key(seen)  # first use; another connection may have recorded first
        if not pinned:
            raise HostKeyRefused(
                f"The Docker host at {self.where} is not trusted yet: docker_ssh_host_key is empty. It presented {seen}"
            )
        if not _same_key(pinned, seen):
            raise HostKeyRefused(
                f"The Docker host at {self.where} presented a host key other than docker_ssh_host_key, so Slipway "
                f"does not trust it (another machine, or the host was reinstalled): it presented {seen}"
            )


class SshEngineAdapter(SSHHTTPAdapter):
    """The SDK's SSH transport (one SSH connection, `docker system dial-stdio` per HTTP connection), with
    the key and host key trust above instead of the worker's ~/.ssh."""

    def __init__(self, base_url: str, ssh: DockerSSH, *, timeout: int, max_pool_size: int = 10) -> None:
        self.ssh, self.where, self.connect_timeout = ssh, base_url, float(timeout)
        super().__init__(base_url, timeout, max_pool_size=max_pool_size, shell_out=False)

    def get_connection(self, url: str | bytes, proxies: Any = None) -> SSHConnectionPool:
        # The SDK keeps a pool per request URL, each with its own SSH session ("channel"); a rollout asks
        # for dozens of URLs, and sshd allows 10 sessions per connection (MaxSessions) while the ones just
        # closed are still winding down: "ChannelException(2, 'Connect failed')". One pool for all.
        return super().get_connection(POOL_KEY, proxies)

    def _create_paramiko_client(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.ssh_client = paramiko.SSHClient()
        self.ssh_client.set_missing_host_key_policy(_PinnedHostKey(self.ssh, self.where))
        timeout = self.connect_timeout
        self.ssh_params: dict[str, Any] = {
            "hostname": parts.hostname,
            "port": parts.port or DEFAULT_PORT,
            "username": parts.username,
            "pkey": load_private_key(self.ssh.key),
            "look_for_keys": False,  # never ~/.ssh/id_*
            "allow_agent": False,  # nor the worker's agent
            "timeout": timeout,
            "banner_timeout": timeout,
            "auth_timeout": timeout,
        }


def engine_unusable(client: paramiko.SSHClient | None, base_url: str, timeout: float = 10) -> str | None:
    """Why the host's engine cannot be reached through the SSH connection, asked once by running the docker
    CLI there (what the SDK's `docker system dial-stdio` needs), or None when it runs or cannot be asked."""
    transport = client.get_transport() if client is not None else None
    if transport is None or not transport.is_active():
        return None
    try:
        channel = transport.open_session(timeout=timeout)
        channel.settimeout(timeout)
        channel.exec_command("docker version --format '{{.Server.Version}}'")
        if not channel.status_event.wait(timeout):
            return None
        status = channel.recv_exit_status()
        said = channel.makefile_stderr("rb").read().decode(errors="replace").strip().splitlines()
        channel.close()
    except (paramiko.SSHException, OSError):
        return None
    if status == 0:
        return None
    user = urlsplit(base_url).username or "?"
    where = f"The Docker host at {base_url}"
    if status == COMMAND_NOT_FOUND:
        return f"{where} has no docker command for {user}; install the Docker CLI there (Slipway runs it over SSH)"
    detail = said[-1] if said else f"exit code {status}"
    return f"{where} cannot run docker for {user} (does its engine run, and may {user} use it?): {detail}"


def ssh_refusal(base_url: str, error: BaseException) -> str | None:
    """A sentence for an SSH refusal that will not pass on retry (wrong key, untrusted host), or None."""
    where = f"The Docker host at {base_url}"
    if isinstance(error, HostKeyRefused):
        return str(error)
    if isinstance(error, paramiko.AuthenticationException):
        user = urlsplit(base_url).username or "?"
        return (
            f"{where} refused Slipway's SSH key; check docker_ssh_key: its public half must be in the "
            f"authorized_keys of {user} there: {error}"
        )
    return None
