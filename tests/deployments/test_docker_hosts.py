"""Remote Docker hosts as environments: TLS credentials are write-only and encrypted, and bad ones are refused
naming the field; the connection test goes through a real TLS proxy in front of the local engine."""

import pytest
from django.db import connection

from deployments.models import Environment
from tests.support.docker_tls import Authority, TlsEngineProxy


@pytest.fixture
def proxy(tmp_path, docker_engine):
    proxy = TlsEngineProxy(tmp_path / "engine-tls").start()
    yield proxy
    proxy.stop()


def docker_host(proxy, **overrides) -> dict:
    return {
        "name": "edge",
        "team": "vision",
        "target": "docker",
        "docker_url": proxy.url,
        "docker_tls_ca": proxy.authority.pem,
        "docker_tls_cert": proxy.client.cert,
        "docker_tls_key": proxy.client.key,
        **overrides,
    }


def test_tls_credentials_are_write_only_encrypted_and_used_for_the_connection_test(api, owner, site_admin, proxy):
    client = api.as_user(owner)
    created = client.post("/api/v1/environments/", docker_host(proxy), format="json")

    assert created.status_code == 201, created.content
    body = created.json()
    assert body["has_docker_tls"] is True and body["docker_url"] == proxy.url
    assert not {"docker_tls_ca", "docker_tls_cert", "docker_tls_key"} & set(body)
    assert "BEGIN" not in client.get(f"/api/v1/environments/{body['id']}/").content.decode()
    with connection.cursor() as cursor:
        cursor.execute("SELECT docker_tls_key FROM deployments_environment WHERE id = %s", [body["id"]])
        (stored,) = cursor.fetchone()
    assert stored and "PRIVATE KEY" not in stored  # ciphertext at rest
    assert Environment.objects.get(pk=body["id"]).docker_tls_key == proxy.client.key

    # A change that does not send them keeps them.
    changed = client.patch(f"/api/v1/environments/{body['id']}/", {"description": "edge site 7"}, format="json")
    assert changed.status_code == 200 and changed.json()["has_docker_tls"] is True

    report = api.as_user(site_admin).post(f"/api/v1/environments/{body['id']}/test-connection/").json()
    assert report["ok"] is True, report
    assert report["message"].startswith("Docker Engine ")


def test_a_wrong_client_certificate_fails_the_connection_test(api, owner, site_admin, proxy):
    stranger = Authority("another CA").issue("slipway", server=False)
    created = api.as_user(owner).post(
        "/api/v1/environments/", docker_host(proxy, docker_tls_cert=stranger.cert, docker_tls_key=stranger.key),
        format="json",
    )  # fmt: skip
    assert created.status_code == 201, created.content

    report = api.as_user(site_admin).post(f"/api/v1/environments/{created.json()['id']}/test-connection/").json()

    assert report["ok"] is False
    assert report["message"] == (
        f"The Docker engine at {proxy.url} refused Slipway's TLS client certificate; check docker_tls_cert and "
        "docker_tls_key against the CA the engine trusts."
    )


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"docker_tls_ca": "not a certificate"}, "docker_tls_ca", "not a PEM certificate"),
        ({"docker_tls_key": ""}, "docker_tls_key", "needs the CA, the certificate and the key"),
        ({"docker_tls_key": "wrong"}, "docker_tls_key", "not an unencrypted PEM private key"),
        ({"docker_url": "ssh://deploy@edge-7.example.net"}, "docker_tls_cert", "for tcp:// engines only"),
        ({"docker_url": "ftp://edge-7.example.net"}, "docker_url", "Use unix:///var/run/docker.sock, tcp://"),
        (
            {"docker_url": "tcp://edge-7.example.net:2375", "docker_tls_ca": "", "docker_tls_cert": "",
             "docker_tls_key": ""},
            "docker_url",
            "A tcp:// engine needs TLS client credentials",
        ),
        ({"docker_url": "tcp://edge-7.example.net:2376"}, "bind_address", "on the loopback of edge-7.example.net"),
    ],
)  # fmt: skip
def test_bad_remote_hosts_are_refused_naming_the_field(api, owner, proxy, overrides, field, reason):
    if overrides.get("docker_tls_key") == "wrong":
        overrides["docker_tls_key"] = Authority("another CA").issue("x", server=False).key[:40]

    response = api.as_user(owner).post("/api/v1/environments/", docker_host(proxy, **overrides), format="json")

    assert response.status_code == 400, response.content
    assert reason in response.json()[field][0]
    assert not Environment.objects.filter(name="edge").exists()


def test_a_remote_host_with_an_outside_bind_address_is_accepted(api, owner, proxy):
    response = api.as_user(owner).post(
        "/api/v1/environments/",
        docker_host(proxy, docker_url="ssh://deploy@edge-7.example.net", bind_address="0.0.0.0",  # noqa: S104
                    docker_tls_ca="", docker_tls_cert="", docker_tls_key=""),
        format="json",
    )  # fmt: skip

    assert response.status_code == 201, response.content
    assert response.json()["has_docker_tls"] is False
