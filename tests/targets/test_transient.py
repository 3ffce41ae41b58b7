"""One rule for "is this Docker engine or registry error worth retrying", for builds and Docker-host rollouts."""

import pytest

from deployments.transient import is_transient, refused_credentials


@pytest.mark.parametrize(
    "message",
    [
        "dial tcp 127.0.0.1:5000: connect: connection refused",
        "read tcp: connection reset by peer",
        "net/http: TLS handshake timeout",
        "dial tcp: lookup registry.local: no such host",
        "dial tcp: lookup registry.local: temporary failure in name resolution",
        "received unexpected HTTP status: 503 Service Unavailable",
        "received unexpected HTTP status: 500 Internal Server Error",
        "unexpected EOF",
    ],
)
def test_unreachable_or_failing_servers_are_transient(message):
    assert is_transient(message)


@pytest.mark.parametrize(
    "message",
    [
        "manifest for registry.local/vision/iris@sha256:ab503fe0 not found: manifest unknown",
        "pull access denied for iris, repository does not exist",
        "unauthorized: authentication required (after a timeout)",
        "invalid reference format",
    ],
)
def test_refusals_and_digests_that_contain_a_status_code_are_not(message):
    assert not is_transient(message)


def test_refused_credentials_are_recognised():
    assert refused_credentials("denied: requested access to the resource is denied")
    assert refused_credentials("received 401 from the registry")
    assert not refused_credentials("sha256:0401ab")
