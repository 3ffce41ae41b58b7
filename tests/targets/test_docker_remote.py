"""Remote Docker hosts: tcp:// with TLS client certificates, for real, through a TLS-terminating proxy on
loopback in front of the local engine that demands a client certificate (tests/support/docker_tls.py)."""

from __future__ import annotations

import pytest
import requests

from deployments.targets import DockerHostTarget, DockerSSH, DockerTLS, TargetError, TransientTargetError, validate_tls
from tests.support.docker_tls import Authority, TlsEngineProxy
from tests.support.sshd import KeyPair
from tests.support.targets import containers_of

pytestmark = pytest.mark.slow
WILDCARD = "0.0.0.0"  # noqa: S104 - a bind address as an environment gives it; nothing is bound here


@pytest.fixture
def proxy(tmp_path):
    proxy = TlsEngineProxy(tmp_path / "engine-tls").start()
    yield proxy
    proxy.stop()


def tls_of(proxy: TlsEngineProxy, **overrides: str) -> DockerTLS:
    values = {"ca": proxy.authority.pem, "cert": proxy.client.cert, "key": proxy.client.key, **overrides}
    return DockerTLS(**values)


def test_a_tcp_engine_with_tls_client_certificates_runs_a_model_and_its_endpoint_is_the_hosts_address(
    proxy, docker_engine, model_images, host_spec, host_identity, recorder
):
    spec = host_spec(model_images.v1)
    with DockerHostTarget(
        proxy.url, tls=tls_of(proxy), registry_auth=model_images.registry_auth, ready_timeout=30, poll_seconds=0.1,
        stop_timeout=3,
    ) as target:  # fmt: skip
        assert target.check()["ok"] is True

        endpoint = target.deploy(spec, **recorder.kwargs)

        # The host as its URL names it (here: localhost), not this machine's 127.0.0.1.
        assert endpoint.startswith("http://localhost:")
        session = requests.Session()
        session.trust_env = False
        assert session.get(f"{endpoint}/v2/health/ready", timeout=5).status_code == 200
        assert target.live_state(host_identity).endpoint == endpoint
        target.remove(host_identity)
    assert containers_of(docker_engine, host_identity) == []
    assert proxy.refused == []


@pytest.mark.parametrize("what", ["client certificate of another CA", "no client certificate"])
def test_a_wrong_client_certificate_is_refused_with_a_clear_message(proxy, host_spec, model_images, what):
    stranger = Authority("another CA").issue("slipway", server=False)
    tls = tls_of(proxy, cert=stranger.cert, key=stranger.key) if what.startswith("client") else None

    with DockerHostTarget(proxy.url, tls=tls, request_timeout=10) as target:
        result = target.check()
        with pytest.raises((TargetError, TransientTargetError)) as failure:
            target.deploy(host_spec(model_images.v1), log=lambda _: None, on_progress=lambda _: None,
                          should_stop=lambda: None)  # fmt: skip

    assert result["ok"] is False
    if tls is None:  # plain HTTP to a TLS port: the engine drops it
        assert proxy.url in result["message"]
    else:
        assert result["message"].startswith(
            f"The Docker engine at {proxy.url} refused Slipway's TLS client certificate"
        )
        assert "check docker_tls_cert and docker_tls_key" in result["message"]
        assert failure.type is TargetError  # permanent: a rollout does not retry it
        assert str(failure.value).startswith(f"The Docker engine at {proxy.url} refused Slipway's TLS client")
    assert proxy.refused, "the proxy saw and refused the handshake"


def test_an_engine_certificate_the_ca_does_not_vouch_for_is_not_trusted(proxy):
    with DockerHostTarget(proxy.url, tls=tls_of(proxy, ca=Authority("another CA").pem)) as target:
        result = target.check()

    assert result["ok"] is False
    assert result["message"].startswith(f"The Docker engine at {proxy.url} presented a certificate that docker_tls_ca")


def test_tls_material_is_checked_naming_the_field(proxy):
    other = Authority("another CA").issue("slipway", server=False)
    cases = {
        "docker_tls_ca": tls_of(proxy, ca="not a certificate"),
        "docker_tls_cert": tls_of(proxy, cert=""),
        "docker_tls_key": tls_of(proxy, key=other.key),  # a key, but not the certificate's
    }
    for field, tls in cases.items():
        with pytest.raises(TargetError, match=rf"^{field}: "):
            validate_tls(tls)
    validate_tls(tls_of(proxy))


@pytest.mark.parametrize(
    ("url", "bind", "host"),
    [
        ("unix:///var/run/docker.sock", "127.0.0.1", "127.0.0.1"),
        ("unix:///var/run/docker.sock", WILDCARD, "127.0.0.1"),
        ("tcp://edge-7.example.net:2376", WILDCARD, "edge-7.example.net"),
        ("tcp://10.1.2.3:2376", "10.1.2.3", "10.1.2.3"),
        ("ssh://deploy@edge-7.example.net", WILDCARD, "edge-7.example.net"),
        ("ssh://deploy@edge-7.example.net", "192.168.7.1", "192.168.7.1"),
    ],
)
def test_endpoints_are_on_the_hosts_address(url, bind, host):
    assert DockerHostTarget(url, bind_address=bind).host == host


def test_an_ssh_host_that_does_not_answer_is_named_in_the_check():
    ssh = DockerSSH(key=KeyPair.make().private)
    with DockerHostTarget("ssh://nobody@127.0.0.1:1", request_timeout=5, ssh=ssh) as target:
        result = target.check()

    assert result["ok"] is False
    assert "ssh://nobody@127.0.0.1:1" in result["message"]
