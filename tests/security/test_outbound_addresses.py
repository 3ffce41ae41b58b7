"""Finding 5: webhook, Docker host, registry and cluster addresses reached internal services, followed
redirects, and the environment check showed what the far side said. Each attempt now stops at the
platform's own rule (deployments/outbound.py), and only the platform's own sentences come back."""

from __future__ import annotations

import ipaddress
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from deployments.models import ContainerRegistry, Environment, Webhook, WebhookDelivery
from deployments.outbound import LOOPBACK, OutboundPolicy
from deployments.services import notifications
from tests.support.factories import EnvironmentFactory
from tests.support.sshd import KeyPair

LOOPBACK_ALLOWED = OutboundPolicy(allowed=LOOPBACK)
INTERNAL_SECRET = "root-password-of-the-internal-service"


@pytest.fixture
def strict(settings):
    """A production installation: nothing internal is allowed."""
    settings.OUTBOUND_POLICY = OutboundPolicy()
    return settings


class _Server:
    def __init__(self, status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                outer.hits.append(self.path)
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_HEAD = _answer

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def servers():
    started: list[_Server] = []

    def start(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> _Server:
        started.append(_Server(status, headers, body))
        return started[-1]

    yield start
    for server in started:
        server.close()


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:6379/",
        "http://localhost:5432/",
        "http://10.0.0.5/hook",
        "http://[::1]:8000/",
        "http://[::ffff:169.254.169.254]/",
        "http://0.0.0.0:8000/",
    ],
)
def test_a_team_admin_points_a_webhook_at_an_internal_address(api, owner, team, strict, url):
    response = api.as_user(owner).post("/api/v1/webhooks/", {"team": "vision", "url": url}, format="json")
    assert response.status_code == 400
    assert "internal address" in response.json()["url"][0]
    assert not Webhook.objects.exists()


def test_a_webhook_stored_earlier_is_not_delivered_to_an_internal_address(team, strict, servers):
    internal = servers(200)
    webhook = Webhook.objects.create(team=team, url=internal.url + "/hook", secret="s")
    delivery = WebhookDelivery.objects.create(webhook=webhook, event="promotion.approved", payload={})
    notifications.deliver(delivery.pk)
    delivery.refresh_from_db()
    assert internal.hits == [] and delivery.delivered_at is None
    assert "internal address" in delivery.last_error


def test_a_webhook_receiver_redirects_to_an_internal_service(team, settings, servers):
    settings.OUTBOUND_POLICY = LOOPBACK_ALLOWED  # the receiver is allowed; where it redirects is not followed
    internal = servers(200, body=INTERNAL_SECRET.encode())
    receiver = servers(307, headers={"Location": internal.url + "/admin"})
    webhook = Webhook.objects.create(team=team, url=receiver.url + "/hook", secret="s")
    delivery = WebhookDelivery.objects.create(webhook=webhook, event="promotion.approved", payload={})
    retry_in = notifications.deliver(delivery.pk)
    delivery.refresh_from_db()
    assert receiver.hits == ["/hook"] and internal.hits == []
    assert "redirect, which is not followed" in delivery.last_error
    # a failed attempt like any other: tried again later, and not marked delivered
    assert retry_in is not None and delivery.delivered_at is None and delivery.due_at is not None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"target": "docker", "docker_url": "tcp://10.0.0.5:2375"}, "docker_url"),
        ({"target": "docker", "docker_url": "unix:///var/run/docker.sock"}, "docker_url"),
        # bound to all addresses, and with a key, so that the only thing wrong is where it points
        (
            {
                "target": "docker",
                "docker_url": "ssh://deploy@192.168.1.20",
                "bind_address": "0.0.0.0",  # noqa: S104 - a request body, nothing binds here
                "docker_ssh_key": KeyPair.make().private,
            },
            "docker_url",
        ),
        (
            {"target": "kubernetes", "namespace": "ml", "kube_api_url": "https://169.254.169.254", "kube_token": "t"},
            "kube_api_url",
        ),
        (
            {
                "target": "kubernetes",
                "namespace": "ml",
                "kubeconfig": "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
                "contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n"
                "users: [{name: u, user: {token: t}}]\n",
            },
            "kubeconfig",
        ),
    ],
)
def test_a_team_admin_points_an_environment_at_an_internal_address(api, owner, team, strict, fields, field):
    response = api.as_user(owner).post(
        "/api/v1/environments/", {"name": "dev", "team": "vision", **fields}, format="json"
    )
    assert response.status_code == 400, response.json()
    assert field in response.json(), response.json()
    assert not Environment.objects.exists()


def test_a_team_admin_adds_a_registry_at_an_internal_address(api, owner, team, strict):
    response = api.as_user(owner).post(
        "/api/v1/registries/", {"name": "mine", "team": "vision", "url": "10.1.2.3:5000/ml"}, format="json"
    )
    assert response.status_code == 400, response.json()
    assert "internal address" in str(response.json()["url"])
    assert not ContainerRegistry.objects.exists()


def test_an_environment_saved_before_the_rule_cannot_connect(api, site_admin, strict, servers):
    internal = servers(200)
    environment = EnvironmentFactory(team=None, target="docker", docker_url="tcp://" + internal.url[7:])
    report = api.as_user(site_admin).post(f"/api/v1/environments/{environment.pk}/test-connection/").json()
    assert report["ok"] is False and "internal address" in report["message"]
    assert internal.hits == []


@pytest.mark.parametrize("target", ["docker", "kubernetes"])
def test_the_environment_check_does_not_show_what_an_internal_service_answered(
    api, site_admin, settings, servers, target
):
    settings.OUTBOUND_POLICY = LOOPBACK_ALLOWED
    internal = servers(
        403, headers={"Content-Type": "application/json"}, body=f'{{"message": "{INTERNAL_SECRET}"}}'.encode()
    )
    if target == "docker":
        environment = EnvironmentFactory(team=None, target="docker", docker_url="tcp://" + internal.url[7:])
    else:
        environment = EnvironmentFactory(
            team=None, target="kubernetes", namespace="ml", kube_api_url=internal.url, kube_token="t"
        )
    report = api.as_user(site_admin).post(f"/api/v1/environments/{environment.pk}/test-connection/").json()
    assert internal.hits, "the check did talk to it (loopback is allowed here)"
    assert report["ok"] is False
    assert INTERNAL_SECRET not in str(report)


def test_the_rule_itself():
    policy = OutboundPolicy(
        allowed=(ipaddress.ip_network("10.20.0.0/16"),), denied=(ipaddress.ip_network("8.8.8.0/24"),)
    )
    assert policy.address_allowed(ipaddress.ip_address("10.20.1.1"))
    assert not policy.address_allowed(ipaddress.ip_address("10.21.1.1"))
    assert not policy.address_allowed(ipaddress.ip_address("8.8.8.8"))
    assert policy.address_allowed(ipaddress.ip_address("1.1.1.1"))
    assert not policy.address_allowed(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert not policy.address_allowed(ipaddress.ip_address("fe80::1"))
