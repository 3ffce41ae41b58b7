"""Remote Docker hosts: the TLS client credentials of a tcp:// engine, and where a host's endpoints are reached."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .base import TargetError

__all__ = ["DockerTLS", "engine_host", "engine_hostname", "is_loopback", "is_remote", "tls_refusal", "validate_tls"]

REMOTE_SCHEMES = ("tcp", "ssh", "http", "https")


@dataclass(frozen=True)
class DockerTLS:
    """PEM text: the CA that signed the engine's certificate, and Slipway's client certificate and key."""

    ca: str
    cert: str
    key: str


def validate_tls(tls: DockerTLS) -> None:
    """TargetError naming the field (docker_tls_ca, docker_tls_cert, docker_tls_key) that is missing or unreadable."""
    for field, text in (("docker_tls_ca", tls.ca), ("docker_tls_cert", tls.cert)):
        if not text.strip():
            raise TargetError(f"{field}: a tcp:// engine with TLS needs the CA, the certificate and the key")
        try:
            x509.load_pem_x509_certificate(text.encode())
        except ValueError:
            raise TargetError(f"{field}: not a PEM certificate (-----BEGIN CERTIFICATE-----)") from None
    if not tls.key.strip():
        raise TargetError("docker_tls_key: a tcp:// engine with TLS needs the CA, the certificate and the key")
    try:
        key = serialization.load_pem_private_key(tls.key.encode(), password=None)
    except (ValueError, TypeError):
        raise TargetError("docker_tls_key: not an unencrypted PEM private key (-----BEGIN PRIVATE KEY-----)") from None
    certificate = x509.load_pem_x509_certificate(tls.cert.encode())
    if certificate.public_key().public_numbers() != key.public_key().public_numbers():  # type: ignore[union-attr]
        raise TargetError("docker_tls_key: the key does not belong to the certificate in docker_tls_cert")


def engine_hostname(base_url: str) -> str:
    return urlsplit(base_url).hostname or ""


def is_remote(base_url: str) -> bool:
    return base_url.split("://", 1)[0].lower() in REMOTE_SCHEMES


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def engine_host(base_url: str, bind_address: str, wildcards: tuple[str, ...]) -> str:
    """Where the host's published ports are reached (endpoints, readiness probes).

    A local engine: its bind address (loopback for a wildcard bind). A remote one: the host's address as
    its URL names it, unless the ports are bound to one specific outside address of that host.
    """
    if is_remote(base_url):
        if bind_address in wildcards or is_loopback(bind_address):
            return engine_hostname(base_url)
        return bind_address
    return "127.0.0.1" if bind_address in wildcards else bind_address


def tls_refusal(base_url: str, error: BaseException) -> str | None:
    """A sentence for a TLS handshake that failed (it will not succeed on retry), or None for other errors."""
    text = str(error)
    where = f"The Docker engine at {base_url}"
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return (
            f"{where} presented a certificate that docker_tls_ca does not vouch for (or not for this host name), "
            "so Slipway does not trust it"
        )
    for alert in ("unknown ca", "bad certificate", "certificate required", "certificate unknown", "handshake failure"):
        if f"alert {alert}" in text.lower():
            return (
                f"{where} refused Slipway's TLS client certificate; check docker_tls_cert and docker_tls_key "
                f"against the CA the engine trusts: TLS alert {alert}"
            )
    if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
        return f"{where} does not speak TLS on that port; check the address, or leave out the TLS credentials"
    return None
