"""Is an error from the Docker engine or a registry worth retrying? One rule for image builds
(deployments.imaging) and Docker-host rollouts (deployments.targets).

Standard library only. A message is transient when the other side could not be reached or failed on
its side (refused or reset connections, timeouts, unknown hosts, 5xx); refused credentials never are,
whatever else the message says, because retrying them only locks the account.
"""

import re

# Status codes as whole words only: a digest such as sha256:…503… is not a server error.
_TRANSIENT = re.compile(
    r"connection refused|no such host|timeout|connection reset|\bEOF\b|\b50[234]\b|500 Internal|"
    r"temporar(il)?y (failure|unavailable)|TLS handshake|broken pipe|server misbehaving",
    re.IGNORECASE,
)
_REFUSED_CREDENTIALS = re.compile(
    r"unauthorized|authentication required|denied|incorrect username or password|\b401\b", re.IGNORECASE
)


def refused_credentials(message: str) -> bool:
    return bool(_REFUSED_CREDENTIALS.search(message))


def is_transient(message: str) -> bool:
    return not refused_credentials(message) and bool(_TRANSIENT.search(message))
