"""Is an error from the Docker engine or a registry worth retrying? One rule for image builds
(deployments.imaging) and Docker-host rollouts (deployments.targets).

Standard library only. A message is transient when the other side could not be reached or failed on
its side (refused or reset connections, timeouts, unknown hosts, 5xx); refused credentials never are,
whatever else the message says, because retrying them only locks the account.

Messages name addresses, references and digests ("dial tcp 127.0.0.1:5401: connect: connection
refused", "registry-401.corp/vision/timeout-model@sha256:…503…"): those are removed before anything is
looked for, so a port, a host or a model name is never taken for a status code or a reason.
"""

import re

# URLs, image references and paths (anything with a slash), host:port, digests, dotted host names.
_ADDRESSES = re.compile(
    r"""[^\s"'()]*/[^\s"'()]*"""  # URLs, references, paths
    r"|\b[\w.-]+:\d{1,5}\b"  # host:port
    r"|\bsha\d+:[0-9a-f]+"  # digests
    r"|\b[\w-]+(?:\.[\w-]+)+\b",  # host names and addresses
    re.IGNORECASE,
)
_SERVER_STATUS = r"\b50[0234]\b"
_TRANSIENT = re.compile(
    rf"connection refused|no such host|timeout|timed out|connection reset|\bEOF\b|{_SERVER_STATUS}|"
    r"internal server error|service unavailable|bad gateway|"
    r"temporar(il)?y (failure|unavailable)|TLS handshake|broken pipe|server misbehaving",
    re.IGNORECASE,
)
_REFUSED_CREDENTIALS = re.compile(
    r"unauthorized|authentication required|no basic auth credentials|(?<!permission )denied|"
    r"incorrect username or password|\b401\b",
    re.IGNORECASE,
)


def reason_text(message: str) -> str:
    """The message without the addresses, references and digests it names."""
    return _ADDRESSES.sub(" ", message)


def refused_credentials(message: str) -> bool:
    return bool(_REFUSED_CREDENTIALS.search(reason_text(message)))


def is_transient(message: str) -> bool:
    text = reason_text(message)
    return not _REFUSED_CREDENTIALS.search(text) and bool(_TRANSIENT.search(text))


def status_is_refused_credentials(status_code: int | None) -> bool:
    return status_code == 401
