"""Where the platform may connect on a user's behalf: one rule for webhook, Docker host, registry and
cluster addresses. Standard library only, so the targets and the image library can ask it too.

Users name these addresses, and the platform connects from inside its own network: without a rule, a
webhook pointed at 169.254.169.254 or a "Docker host" at 10.0.0.5:2375 reaches what no team should.
Loopback, link-local, private and other special ranges are denied unless an administrator allows
them (SLIPWAY_OUTBOUND_ALLOWED_NETWORKS); SLIPWAY_OUTBOUND_DENIED_NETWORKS denies more. Every
address a name resolves to is checked. Refusals are the platform's own sentence, never a library's
error text.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["SPECIAL_NETWORKS", "OutboundPolicy", "OutboundRefused"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Denied unless allowed: what is not the public internet (RFC 6890 and friends).
SPECIAL_NETWORKS: tuple[Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "::ffff:0:0/96",
        "64:ff9b::/96",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
)
LOOPBACK: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


class OutboundRefused(ValueError):
    """The address may not be used; the message is the platform's own sentence, safe to show."""


@dataclass(frozen=True)
class OutboundPolicy:
    allowed: tuple[Network, ...] = ()
    denied: tuple[Network, ...] = ()

    @classmethod
    def from_networks(cls, allowed: Iterable[Network], denied: Iterable[Network] = ()) -> OutboundPolicy:
        return cls(allowed=tuple(allowed), denied=tuple(denied))

    def address_allowed(self, address: Address) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self.denied):
            return False
        if any(address in network for network in self.allowed):
            return True
        return not any(address in network for network in SPECIAL_NETWORKS)

    def check_host(self, host: str, port: int | None, what: str, *, unresolved_ok: bool = False) -> None:
        """Resolve `host` and refuse when any of its addresses is not allowed. `unresolved_ok`: when
        saving, a name this process cannot resolve is accepted (it is checked again on every connection,
        where an unresolvable name is refused)."""
        if not host:
            raise OutboundRefused(f"The {what} names no host.")
        try:
            addresses = _resolve(host, port, what)
        except OutboundRefused:
            if unresolved_ok:
                return
            raise
        for address in addresses:
            if not self.address_allowed(address):
                raise OutboundRefused(
                    f"The {what} {host} is an internal address ({address}), which this installation does not "
                    "allow; an administrator can allow its network in SLIPWAY_OUTBOUND_ALLOWED_NETWORKS."
                )

    def check_url(
        self, url: str, what: str, *, schemes: tuple[str, ...] = ("http", "https"), unresolved_ok: bool = False
    ) -> None:
        """An http(s) URL (webhooks, cluster API servers)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise OutboundRefused(f"The {what} is not a valid URL.") from None
        if parts.scheme not in schemes:
            raise OutboundRefused(f"The {what} must start with {' or '.join(s + '://' for s in schemes)}.")
        self.check_host(parts.hostname or "", port, what, unresolved_ok=unresolved_ok)

    def check_docker_url(self, url: str, what: str = "Docker host", *, unresolved_ok: bool = False) -> None:
        """unix:// (this machine: allowed only where loopback is), tcp://, http(s):// or ssh://."""
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme in ("unix", "npipe"):
            if not all(self.address_allowed(network.network_address) for network in LOOPBACK):
                raise OutboundRefused(
                    f"The {what} {url} is this machine's own engine, which this installation does not allow; "
                    "an administrator can allow loopback in SLIPWAY_OUTBOUND_ALLOWED_NETWORKS."
                )
            return
        self.check_url(url, what, schemes=("tcp", "http", "https", "ssh"), unresolved_ok=unresolved_ok)

    def check_registry(self, host: str, what: str = "registry", *, unresolved_ok: bool = False) -> None:
        """host[:port], as a registry is named in image references."""
        self.check_url(f"https://{host}", what, unresolved_ok=unresolved_ok)


def _resolve(host: str, port: int | None, what: str) -> list[Address]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        answers = socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise OutboundRefused(f"The {what} {host} cannot be resolved.") from None
    return [ipaddress.ip_address(str(answer[4][0]).split("%", 1)[0]) for answer in answers]
