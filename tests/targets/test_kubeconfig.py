"""Kubeconfig text -> a private client: TLS with the CA from the kubeconfig, client certificates kept private."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import ssl
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client

from deployments.targets import KubernetesTarget, TargetError, kubeconfig_from_token
from deployments.targets.kubeconfig import load_api_client

VERSION = {"major": "1", "minor": "31", "gitVersion": "v1.31.4"}


@dataclass
class Pki:
    ca_pem: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()  # fmt: skip


def _certificate(name: str, key, issuer_name: str, issuer_key, *, ca: bool = False, ip: str | None = None) -> str:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), False)
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca_key, server_key, client_key = _key(), _key(), _key()
    return Pki(
        ca_pem=_certificate("test-ca", ca_key, "test-ca", ca_key, ca=True),
        server_cert=_certificate("apiserver", server_key, "test-ca", ca_key, ip="127.0.0.1"),
        server_key=_pem_key(server_key),
        client_cert=_certificate("slipway", client_key, "test-ca", ca_key),
        client_key=_pem_key(client_key),
    )


class _VersionHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
        body = json.dumps({**VERSION, "client": bool(peer), "auth": self.headers.get("Authorization", "")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def tls_server(pki, tmp_path) -> Iterator[tuple[str, HTTPServer]]:
    """An HTTPS server on 127.0.0.1 answering /version, requiring a client certificate signed by the CA."""
    (tmp_path / "server.pem").write_text(pki.server_cert + pki.server_key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem")
    context.load_verify_locations(cadata=pki.ca_pem)
    context.verify_mode = ssl.CERT_OPTIONAL
    server = HTTPServer(("127.0.0.1", 0), _VersionHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", server
    server.shutdown()
    server.server_close()


def test_a_token_kubeconfig_names_server_ca_token_and_namespace(pki):
    document = yaml.safe_load(kubeconfig_from_token("https://k8s.example.com:6443/", pki.ca_pem, "sa-token", "models"))

    (cluster,) = document["clusters"]
    assert cluster["cluster"]["server"] == "https://k8s.example.com:6443"
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]).decode().strip() == pki.ca_pem.strip()
    assert document["users"][0]["user"] == {"token": "sa-token"}
    assert document["contexts"][0]["context"]["namespace"] == "models"
    assert document["current-context"] == document["contexts"][0]["name"]


def test_the_ca_from_the_kubeconfig_is_trusted_in_memory(pki, tls_server):
    url, _ = tls_server
    target = KubernetesTarget(kubeconfig_from_token(url, pki.ca_pem, "sa-token", "models"), "models")
    try:
        assert target.kubernetes_version() == "1.31"
        configuration = target.api.api_client.configuration
        assert configuration.ssl_ca_cert is None, "no CA file written anywhere"
        assert target.api.version()["auth"] == "Bearer sa-token"
    finally:
        target.close()


def test_a_server_outside_the_ca_is_refused(pki, tls_server):
    url, _ = tls_server
    other_ca_key = _key()
    other_ca = _certificate("other-ca", other_ca_key, "other-ca", other_ca_key, ca=True)

    with KubernetesTarget(kubeconfig_from_token(url, other_ca, "t", "models"), "models") as target:
        with pytest.raises(
            TargetError, match=r"^Cannot talk to the Kubernetes API at https://127\.0\.0\.1:\d+ .*CERTIFICATE"
        ):
            target.kubernetes_version()
        assert target.check()["ok"] is False


def test_client_certificates_live_in_a_private_folder_until_the_client_closes(pki, tls_server):
    url, _ = tls_server
    document = yaml.safe_load(kubeconfig_from_token(url, pki.ca_pem, "unused", "models"))
    document["users"][0]["user"] = {
        "client-certificate-data": base64.b64encode(pki.client_cert.encode()).decode(),
        "client-key-data": base64.b64encode(pki.client_key.encode()).decode(),
    }

    api = load_api_client(yaml.safe_dump(document))
    key_file = Path(api.configuration.key_file)
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text() == pki.client_key
    answer = json.loads(client.VersionApi(api).get_code(_preload_content=False).data)
    assert answer["client"] is True, "the server saw our client certificate"
    api.close()
    assert not key_file.parent.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("clusters: [", "not valid YAML"),
        ("kind: Config\nclusters: []\n", "has no clusters"),
        (
            "clusters: [{name: c, cluster: {server: 'https://x', certificate-authority-data: '%%%'}}]\n"
            "contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\nusers: [{name: u, user: {}}]\n",
            "certificate-authority-data is not valid base64",
        ),
    ],
)
def test_unusable_kubeconfigs_are_target_errors(text, message):
    with pytest.raises(TargetError, match=message):
        load_api_client(text)


def test_several_targets_in_one_process_keep_their_own_settings(pki, tls_server):
    url, _ = tls_server
    default_host = client.Configuration.get_default_copy().host
    first = KubernetesTarget(kubeconfig_from_token(url, pki.ca_pem, "first-token", "a"), "a")
    second = KubernetesTarget(kubeconfig_from_token("http://127.0.0.1:1", "", "second-token", "b"), "b")
    try:
        assert first.api.version()["auth"] == "Bearer first-token"
        assert second.api.api_client.configuration.api_key["BearerToken"] == "Bearer second-token"
        assert second.api.server == "http://127.0.0.1:1"
        assert client.Configuration.get_default_copy().host == default_host, "the global default is untouched"
    finally:
        first.close()
        second.close()
