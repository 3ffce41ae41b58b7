"""Finding 1: a kubeconfig ran commands and read files as the platform. It is now data only.

Each attack uploads a kubeconfig through the API a team admin uses, then asks for "Test connection"
on a kubeconfig stored before the fix; no command runs and no file is read either way."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import pytest
import yaml

from deployments.models import Environment
from deployments.targets import KubeconfigError, parse_kubeconfig
from deployments.targets.kubeconfig import load_api_client
from tests.support.factories import EnvironmentFactory


def _kubeconfig(*, user: dict | None = None, cluster: dict | None = None) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443", **(cluster or {})}}],
            "users": [{"name": "u", "user": user if user is not None else {"token": "t"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": "ml"}}],
            "current-context": "c",
        }
    )


def _marker_command(marker: Path) -> list[str]:
    return [sys.executable, "-c", f"open({str(marker)!r}, 'w').write('ran'); print('{{}}')"]


def _attacks(tmp_path: Path) -> dict[str, tuple[str, str, Path]]:
    """name -> (kubeconfig, the field path the refusal must name, the file it must not read or write)."""
    marker = tmp_path / "command-ran"
    secret = tmp_path / "platform-secret"
    secret.write_text("SLIPWAY_SECRET_KEY=do-not-leak")
    command = _marker_command(marker)
    exec_plugin = {"apiVersion": "client.authentication.k8s.io/v1", "command": command[0], "args": command[1:]}
    auth_provider = {"name": "gcp", "config": {"cmd-path": " ".join(command), "cmd-args": ""}}
    return {
        "exec": (_kubeconfig(user={"exec": exec_plugin}), "users[0].user.exec", marker),
        "auth-provider": (_kubeconfig(user={"auth-provider": auth_provider}), "users[0].user.auth-provider", marker),
        "tokenFile": (_kubeconfig(user={"tokenFile": str(secret)}), "users[0].user.tokenFile", secret),
        "client-certificate": (
            _kubeconfig(user={"client-certificate": str(secret), "client-key-data": "eA=="}),
            "users[0].user.client-certificate",
            secret,
        ),
        "client-key": (
            _kubeconfig(user={"client-key": str(secret), "client-certificate-data": "eA=="}),
            "users[0].user.client-key",
            secret,
        ),
        "certificate-authority": (
            _kubeconfig(cluster={"certificate-authority": str(secret)}),
            "clusters[0].cluster.certificate-authority",
            secret,
        ),
    }


ATTACKS = ["exec", "auth-provider", "tokenFile", "client-certificate", "client-key", "certificate-authority"]


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_team_admin_uploads_a_kubeconfig_that_runs_a_command_or_reads_a_file(
    api, owner, team, tmp_path, opened_files, attack
):
    kubeconfig, field, target_file = _attacks(tmp_path)[attack]
    opened_files.watch(target_file)

    response = api.as_user(owner).post(
        "/api/v1/environments/",
        {"name": "dev", "team": "vision", "target": "kubernetes", "namespace": "ml", "kubeconfig": kubeconfig},
        format="json",
    )

    assert response.status_code == 400, response.json()
    assert field in response.json()["kubeconfig"][0]
    assert not Environment.objects.exists(), "nothing was stored"
    assert not (tmp_path / "command-ran").exists(), "no command ran"
    assert opened_files.opened == [], "no file of the platform was read"


@pytest.mark.parametrize("attack", ATTACKS)
def test_a_kubeconfig_stored_before_the_fix_runs_nothing_on_test_connection(
    api, site_admin, tmp_path, opened_files, attack
):
    kubeconfig, field, target_file = _attacks(tmp_path)[attack]
    opened_files.watch(target_file)
    environment = EnvironmentFactory(
        team=None, name="shared", target="kubernetes", namespace="ml", kubeconfig=kubeconfig
    )

    report = api.as_user(site_admin).post(f"/api/v1/environments/{environment.pk}/test-connection/").json()

    assert report["ok"] is False
    assert field in report["message"]
    assert not (tmp_path / "command-ran").exists(), "no command ran"
    assert opened_files.opened == [], "no file of the platform was read"


def test_the_workers_refuse_the_same_kubeconfig_before_any_connection(tmp_path, opened_files):
    for kubeconfig, field, target_file in _attacks(tmp_path).values():
        opened_files.watch(target_file)
        with pytest.raises(KubeconfigError) as refused:
            load_api_client(kubeconfig)
        assert refused.value.field == field
    assert not (tmp_path / "command-ran").exists()
    assert opened_files.opened == []


def test_inline_credentials_are_still_accepted():
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    data = base64.b64encode(pem.encode()).decode()
    credentials = parse_kubeconfig(
        _kubeconfig(
            user={"client-certificate-data": data, "client-key-data": data},
            cluster={"certificate-authority-data": data, "tls-server-name": "kube.internal"},
        )
    )
    assert credentials.server == "https://127.0.0.1:6443"
    assert credentials.ca_pem == credentials.client_certificate == credentials.client_key == pem
    assert credentials.tls_server_name == "kube.internal" and credentials.namespace == "ml"
