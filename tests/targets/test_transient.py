"""One rule for "is this Docker engine or registry error worth retrying", for builds and Docker-host rollouts."""

import io
import socket
import tarfile

import pytest
from django.conf import settings

from deployments.imaging.engine import DockerEngine
from deployments.imaging.errors import TransientError
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


@pytest.mark.parametrize(
    "message",
    [
        'Get "http://127.0.0.1:401/v2/": dial tcp 127.0.0.1:401: connect: connection refused',
        'Get "http://127.0.0.1:5401/v2/": dial tcp 127.0.0.1:5401: connect: connection refused',
        "dial tcp: lookup registry-401.corp: no such host",
        'Head "https://registry-401.corp/v2/vision/iris/manifests/v1": net/http: TLS handshake timeout',
    ],
)
def test_a_port_or_host_that_looks_like_a_status_code_is_not_a_refusal(message):
    assert not refused_credentials(message)
    assert is_transient(message)


@pytest.mark.parametrize(
    "message",
    [
        "manifest for 127.0.0.1:5000/vision/timeout-detector:v1-b503 not found: manifest unknown",
        "repository registry.local/vision/connection-refused-model not found",
    ],
)
def test_a_model_named_like_a_reason_is_not_that_reason(message):
    assert not is_transient(message)


def test_refusals_are_still_recognised_beside_an_address():
    assert refused_credentials("Head http://127.0.0.1:5000/v2/vision/iris/manifests/v1: unauthorized")
    assert refused_credentials("denied: requested access to the resource is denied")
    assert not refused_credentials("dial unix docker.sock: connect: permission denied")


@pytest.mark.parametrize("port", [401, 5401])
def test_a_push_to_a_registry_port_that_looks_like_401_is_retried_as_unreachable(docker_engine, port):
    """A real push through the engine to 127.0.0.1:<port>, where nothing listens."""
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, f"something listens on {port}"
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        tar.addfile(tarfile.TarInfo("empty"), io.BytesIO(b""))
    repository = f"127.0.0.1:{port}/faults/empty"
    docker_engine.api.import_image_from_data(layer.getvalue(), repository=repository, tag="v1")
    try:
        engine = DockerEngine(settings.DOCKER_HOST)
        with pytest.raises(TransientError, match="connection refused"):
            engine.push_image(repository=repository, tag="v1", auth=None, log=lambda _: None)
    finally:
        docker_engine.images.remove(f"{repository}:v1", force=True)
