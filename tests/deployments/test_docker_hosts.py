"""Remote Docker hosts as environments: TLS credentials are write-only and encrypted, and bad ones are refused
naming the field; the connection test goes through a real TLS proxy in front of the local engine."""

import base64
from types import SimpleNamespace

import paramiko
import pytest
from django.conf import settings
from django.db import connection

from audit.models import AuditEvent
from deployments.models import Environment, RolloutState
from tests.deployments.test_rollouts_docker import GOOD_MODEL, deploy, predict, upload
from tests.support.docker_tls import Authority, TlsEngineProxy
from tests.support.sshd import KeyPair
from tests.support.targets import remove_containers


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
                    docker_tls_ca="", docker_tls_cert="", docker_tls_key="", docker_ssh_key=KeyPair.make().private),
        format="json",
    )  # fmt: skip

    assert response.status_code == 201, response.content
    assert response.json()["has_docker_tls"] is False


# --- ssh:// hosts: a real OpenSSH server in front of the local engine (tests/support/sshd.py) ----------


def ssh_host(host, **overrides) -> dict:
    return {
        "name": "edge-ssh",
        "team": "vision",
        "target": "docker",
        "docker_url": host.url,
        "bind_address": "127.0.0.1",
        "docker_ssh_key": host.client.private,
        **overrides,
    }


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_model_deploys_through_an_ssh_host_with_slipways_key_and_a_wrong_key_is_refused_naming_the_field(
    api, owner, teammate, model, ssh_docker_host, registry_row, build_settings, celery_worker, docker_engine
):
    admin = api.as_user(owner)
    created = admin.post("/api/v1/environments/", ssh_host(ssh_docker_host), format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["has_docker_ssh_key"] is True and body["docker_ssh_host_key"] == ""
    assert (
        "docker_ssh_key" not in body
        and "PRIVATE KEY" not in admin.get(f"/api/v1/environments/{body['id']}/").content.decode()
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT docker_ssh_key FROM deployments_environment WHERE id = %s", [body["id"]])
        (stored,) = cursor.fetchone()
    assert stored and "PRIVATE KEY" not in stored  # ciphertext at rest
    environment = Environment.objects.get(pk=body["id"])

    try:
        # The connection test trusts the host on first use and records its key.
        report = admin.post(f"/api/v1/environments/{environment.pk}/test-connection/").json()
        assert report["ok"] is True, report
        shown = admin.get(f"/api/v1/environments/{environment.pk}/").json()
        assert shown["docker_ssh_host_key"] == " ".join(ssh_docker_host.host_key.public.split()[:2])
        assert (
            AuditEvent.objects.filter(action="environment.ssh_host_key_recorded", environment="edge-ssh").count() == 1
        )

        # A real worker builds the model and rolls it out through the SSH host.
        client = api.as_user(teammate)
        version = upload(client, model, GOOD_MODEL % 2)
        rollout = deploy(client, version, environment)
        assert rollout.state == RolloutState.SUCCEEDED, rollout.failure_reason
        assert rollout.endpoint.startswith("http://127.0.0.1:")  # the host as the ssh:// URL names it
        assert predict(rollout.endpoint, 5) == 10
        assert "Accepted publickey for root" in ssh_docker_host.log()

        # Another key, which the host does not authorize: refused, naming the field; the release keeps serving.
        admin = api.as_user(owner)  # one client, signed in as one user at a time
        stranger = KeyPair.make().private
        changed = admin.patch(f"/api/v1/environments/{environment.pk}/", {"docker_ssh_key": stranger}, format="json")
        assert changed.status_code == 200, changed.content
        report = admin.post(f"/api/v1/environments/{environment.pk}/test-connection/").json()
        assert report == {
            "ok": False,
            "server_version": "",
            "message": f"The Docker host at {ssh_docker_host.url} refused Slipway's SSH key; check docker_ssh_key.",
        }
        refused = deploy(api.as_user(teammate), version, environment)
        assert refused.state == RolloutState.FAILED
        assert f"The Docker host at {ssh_docker_host.url} refused Slipway's SSH key; check docker_ssh_key" in (
            refused.failure_reason
        )
        assert predict(rollout.endpoint, 5) == 10
    finally:
        remove_containers(docker_engine, settings.INSTALLATION_ID, model="iris")


def unstarted_host() -> SimpleNamespace:
    """What ssh_host() needs of a host, for requests that are refused or saved without connecting."""
    return SimpleNamespace(url="ssh://root@127.0.0.1:2222", client=KeyPair.make())


def test_a_host_key_given_for_one_address_is_forgotten_when_the_environment_moves(api, owner):
    admin = api.as_user(owner)
    pinned = KeyPair.make().public
    created = admin.post(
        "/api/v1/environments/", ssh_host(unstarted_host(), docker_ssh_host_key=pinned + " root@edge"), format="json"
    )
    assert created.status_code == 201, created.content
    assert created.json()["docker_ssh_host_key"] == pinned  # the comment is dropped
    url = f"/api/v1/environments/{created.json()['id']}/"

    page = f"/environments/{created.json()['id']}/"
    fingerprint = paramiko.PKey.from_type_string("ssh-ed25519", base64.b64decode(pinned.split()[1])).fingerprint
    assert f">{fingerprint}</code>" in admin.get(page).content.decode()  # as ssh-keygen -lf shows it on the host

    assert admin.patch(url, {"description": "edge 7"}, format="json").json()["docker_ssh_host_key"] == pinned
    moved = admin.patch(url, {"docker_url": "ssh://root@127.0.0.1:2"}, format="json")
    assert moved.status_code == 200, moved.content
    assert moved.json()["docker_ssh_host_key"] == ""
    assert 'host key <span class="muted">not recorded yet' in admin.get(page).content.decode()


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"docker_ssh_key": ""}, "docker_ssh_key", "needs Slipway's private key"),
        ({"docker_ssh_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nnope\n"}, "docker_ssh_key", "not a private key"),
        ({"docker_ssh_host_key": "ssh-ed25519 bm90IGEga2V5"}, "docker_ssh_host_key", "not an SSH public key"),
        ({"docker_url": "ssh://127.0.0.1:22"}, "docker_url", "Name the user and the host"),
        ({"docker_url": "unix:///var/run/docker.sock"}, "docker_ssh_key", "for ssh:// hosts only"),
    ],
)
def test_bad_ssh_hosts_are_refused_naming_the_field(api, owner, overrides, field, reason):
    response = api.as_user(owner).post("/api/v1/environments/", ssh_host(unstarted_host(), **overrides), format="json")

    assert response.status_code == 400, response.content
    assert reason in response.json()[field][0]
    assert not Environment.objects.filter(name="edge-ssh").exists()


def test_the_environment_form_takes_an_ssh_key_and_names_it_when_missing(api, owner, team):
    client = api.as_user(owner)
    form = {
        "name": "edge-ssh", "team": team.pk, "position": 10, "required_approvals": 1, "approval_expiry_hours": 72,
        "four_eyes": "requester", "target": "docker", "docker_url": "ssh://deploy@127.0.0.1:2222",
        "bind_address": "127.0.0.1", "deployment_settings": "{}",
    }  # fmt: skip

    refused = client.post("/environments/new/", form)

    assert refused.status_code == 400
    assert "docker_ssh_key" in refused.context["form"].errors
    assert "needs Slipway&#x27;s private key" in refused.content.decode()
    assert not Environment.objects.filter(name="edge-ssh").exists()

    key = KeyPair.make().private
    saved = client.post("/environments/new/", {**form, "docker_ssh_key": key})

    assert saved.status_code == 302, saved.context["form"].errors if saved.context else saved
    environment = Environment.objects.get(name="edge-ssh")
    assert environment.docker_ssh_key == key.strip()  # as pasted, less the trailing newline
    assert "PRIVATE KEY" not in client.get(f"/environments/{environment.pk}/edit/").content.decode()


# --- this machine's engine is for site administrators; a team's environment uses a remote host ----------


@pytest.mark.parametrize(
    "docker_url",
    [
        "unix:///var/run/docker.sock",
        "unix:///var/run/../run/docker.sock",
        "unix:///etc/passwd",
        "UNIX:///var/run/docker.sock",
        "tcp://127.0.0.1:2375",
        "tcp://localhost:2375",
    ],
)
def test_a_team_admin_cannot_give_an_environment_this_machines_engine(api, owner, docker_url):
    body = {"name": "mine", "team": "vision", "target": "docker", "docker_url": docker_url}

    response = api.as_user(owner).post("/api/v1/environments/", body, format="json")

    assert response.status_code == 400, response.content
    assert "only site administrators" in response.json()["docker_url"][0]
    assert not Environment.objects.filter(name="mine").exists()


def test_a_team_admin_cannot_move_an_environment_onto_the_engine_the_platform_builds_on(api, owner, monkeypatch):
    monkeypatch.setattr(settings, "DOCKER_HOST", "tcp://127.0.0.1:2376")
    created = api.as_user(owner).post("/api/v1/environments/", ssh_host(unstarted_host(), name="mine"), format="json")
    assert created.status_code == 201, created.content
    authority = Authority("a CA")
    client = authority.issue("slipway", server=False)
    tls = {"docker_tls_ca": authority.pem, "docker_tls_cert": client.cert, "docker_tls_key": client.key}

    for spelling in ("tcp://127.0.0.1:2376/", "TCP://127.0.0.1:2376"):
        refused = api.as_user(owner).patch(
            f"/api/v1/environments/{created.json()['id']}/", {"docker_url": spelling, **tls}, format="json"
        )
        assert refused.status_code == 400, refused.content
        assert "only site administrators" in refused.json()["docker_url"][0]
    assert Environment.objects.get(name="mine").docker_url == unstarted_host().url


def test_a_team_admin_cannot_turn_a_cluster_environment_into_one_on_this_machines_engine(api, owner):
    # A Kubernetes environment keeps the model's default Docker address, this machine's socket.
    created = api.as_user(owner).post(
        "/api/v1/environments/",
        {"name": "k8s", "team": "vision", "target": "kubernetes", "namespace": "vision",
         "kube_api_url": "https://k8s.example.net:6443", "kube_token": "t0ken"},
        format="json",
    )  # fmt: skip
    assert created.status_code == 201, created.content

    turned = api.as_user(owner).patch(
        f"/api/v1/environments/{created.json()['id']}/", {"target": "docker"}, format="json"
    )

    assert turned.status_code == 400, turned.content
    assert "only site administrators" in turned.json()["docker_url"][0]
    assert Environment.objects.get(name="k8s").target == "kubernetes"


def test_the_new_environment_form_offers_a_team_admin_no_local_engine(client, owner, site_admin):
    client.force_login(owner)
    assert 'value="unix:///var/run/docker.sock"' not in client.get("/environments/new/").content.decode()
    client.force_login(site_admin)
    assert 'value="unix:///var/run/docker.sock"' in client.get("/environments/new/").content.decode()


def test_a_site_admin_gives_an_environment_this_machines_engine_and_its_team_keeps_it(api, owner, site_admin):
    created = api.as_user(site_admin).post(
        "/api/v1/environments/",
        {"name": "local", "team": "vision", "target": "docker", "docker_url": "unix:///var/run/docker.sock"},
        format="json",
    )
    assert created.status_code == 201, created.content

    changed = api.as_user(owner).patch(
        f"/api/v1/environments/{created.json()['id']}/", {"description": "the site's engine"}, format="json"
    )

    assert changed.status_code == 200, changed.content
    assert changed.json()["docker_url"] == "unix:///var/run/docker.sock"


# --- ssh:// addresses: the user and host reach an ssh command line ------------------------------------


@pytest.mark.parametrize(
    ("docker_url", "reason"),
    [
        ("ssh://root@host;id", "'host;id' is not a host name"),
        ("ssh://root@x$(touch${IFS}/tmp/p)", "'x$(touch${IFS}' is not a host name"),
        ("ssh://root@-oProxyCommand=id", "is not a host name"),
        ("ssh://ro;ot@edge-7.example.net", "'ro;ot' is not a user name"),
        ("ssh://-oProxyCommand=id@edge-7.example.net", "is not a user name"),
        ("ssh://root@edge-7.example.net:70000", "from 1 to 65535"),
        ("ssh://root@edge-7.example.net:0", "from 1 to 65535"),
        ("ssh://root:hunter2@edge-7.example.net", "Give no password"),
        ("ssh://root@edge-7.example.net/x?y", "nothing after the host"),
    ],
)
def test_ssh_addresses_with_other_than_a_user_a_host_and_a_port_are_refused(api, owner, docker_url, reason):
    response = api.as_user(owner).post(
        "/api/v1/environments/", ssh_host(unstarted_host(), docker_url=docker_url), format="json"
    )

    assert response.status_code == 400, response.content
    assert reason in response.json()["docker_url"][0]
    assert not Environment.objects.filter(name="edge-ssh").exists()


@pytest.mark.parametrize(
    "docker_url",
    ["ssh://deploy@edge-7.example.net", "ssh://deploy.bot@203.0.113.7:2222", "ssh://deploy@[2001:db8::7]:22"],
)
def test_ssh_addresses_of_a_user_a_host_and_a_port_are_accepted(api, owner, docker_url):
    body = ssh_host(unstarted_host(), docker_url=docker_url, bind_address="0.0.0.0")  # noqa: S104

    response = api.as_user(owner).post("/api/v1/environments/", body, format="json")

    assert response.status_code == 201, response.content


# --- leaving an ssh:// host or a tcp:// engine forgets what signed in there ---------------------------


def test_moving_away_from_an_ssh_host_forgets_its_key_and_host_key(api, owner, proxy):
    client = api.as_user(owner)
    created = client.post(
        "/api/v1/environments/",
        ssh_host(unstarted_host(), docker_ssh_host_key=KeyPair.make().public), format="json",
    )  # fmt: skip
    assert created.status_code == 201, created.content
    url = f"/api/v1/environments/{created.json()['id']}/"
    tls = {
        "docker_tls_ca": proxy.authority.pem,
        "docker_tls_cert": proxy.client.cert,
        "docker_tls_key": proxy.client.key,
    }

    moved = client.patch(url, {"docker_url": proxy.url, **tls}, format="json")

    assert moved.status_code == 200, moved.content
    assert moved.json()["has_docker_ssh_key"] is False and moved.json()["docker_ssh_host_key"] == ""
    assert moved.json()["has_docker_tls"] is True
    stored = Environment.objects.get(pk=created.json()["id"])
    assert (stored.docker_ssh_key, stored.docker_ssh_host_key) == ("", "")
    event = AuditEvent.objects.filter(action="environment.update").latest("pk")
    assert event.after["credentials_changed"] is True

    back = client.patch(url, {"docker_url": "ssh://deploy@127.0.0.1:2222"}, format="json")
    assert back.status_code == 400  # a key is needed anew
    assert "needs Slipway's private key" in back.json()["docker_ssh_key"][0]
    again = client.patch(
        url, {"docker_url": "ssh://deploy@127.0.0.1:2222", "docker_ssh_key": KeyPair.make().private}, format="json"
    )
    assert again.status_code == 200, again.content
    assert again.json()["has_docker_tls"] is False and again.json()["has_docker_ssh_key"] is True
    stored.refresh_from_db()
    assert (stored.docker_tls_ca, stored.docker_tls_cert, stored.docker_tls_key) == ("", "", "")


def test_the_environment_form_moving_away_from_an_ssh_host_forgets_its_key(api, owner, team, proxy):
    client = api.as_user(owner)
    created = client.post("/api/v1/environments/", ssh_host(unstarted_host()), format="json")
    environment = Environment.objects.get(pk=created.json()["id"])
    form = {
        "name": "edge-ssh", "position": 10, "required_approvals": 1, "approval_expiry_hours": 72,
        "four_eyes": "requester", "target": "docker", "docker_url": proxy.url, "bind_address": "127.0.0.1",
        "deployment_settings": "{}", "docker_tls_ca": proxy.authority.pem, "docker_tls_cert": proxy.client.cert,
        "docker_tls_key": proxy.client.key, "docker_ssh_key": "", "docker_ssh_host_key": "",
    }  # fmt: skip

    saved = client.post(f"/environments/{environment.pk}/edit/", form)

    assert saved.status_code == 302, saved.context["form"].errors if saved.context else saved
    environment.refresh_from_db()
    assert environment.docker_url == proxy.url and environment.docker_ssh_key == ""
    assert environment.has_docker_tls
