"""The platform image, as production runs it: web, worker and rollouts containers from
platform/Dockerfile, against this machine's PostgreSQL and Redis (README, "Running in production")."""

import json
import os
import subprocess

import psycopg
import pytest
import requests
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from tests.support.services import free_port, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def empty_database():
    """A database of its own, so the containers' migrations start from nothing."""
    db = settings.DATABASES["default"]
    name = f"{db['NAME']}_image_{os.getpid()}"[:63]
    admin = dict(host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], dbname="postgres", autocommit=True)
    with psycopg.connect(**admin) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    yield f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{name}"
    with psycopg.connect(**admin) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def platform(docker_engine, platform_image, empty_database):
    """`web`, `worker` and `rollouts` containers on the host's network (they reach 127.0.0.1's services)."""
    port = free_port()
    worker_name = f"smoke-{os.getpid()}@slipway-test"
    rollouts_name = f"smoke-rollouts-{os.getpid()}@slipway-test"
    environment = {
        "DATABASE_URL": empty_database,
        "REDIS_URL": settings.REDIS_URL,
        "SLIPWAY_SECRET_KEY": "platform-image-test-secret-key-0123456789",
        "SLIPWAY_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SLIPWAY_BIND_ADDRESS": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "WORKER_CONCURRENCY": "1",
        "SLIPWAY_WORKER_NAME": worker_name,
        "SLIPWAY_LOG_FORMAT": "json",
    }
    containers = {}
    try:
        role_environment = {"rollouts": {"SLIPWAY_WORKER_NAME": rollouts_name, "ROLLOUT_CONCURRENCY": "3"}}
        for role in ("web", "worker", "rollouts"):
            containers[role] = docker_engine.containers.run(
                platform_image,
                [role],
                name=f"slipway-test-platform-{role}-{os.getpid()}",
                environment={**environment, **role_environment.get(role, {})},
                network_mode="host",
                detach=True,
                labels={"slipway.test": "platform-image"},
            )
        url = f"http://127.0.0.1:{port}"

        def web_ready():
            containers["web"].reload()
            if containers["web"].status == "exited":
                raise AssertionError(f"web exited:\n{containers['web'].logs().decode()[-3000:]}")
            try:
                return requests.get(f"{url}/readyz", timeout=15).status_code == 200
            except requests.RequestException:  # not listening yet, or slow to answer its first request
                return False

        wait_until(web_ready, timeout=240, message="the web container to answer /readyz")
        yield {"url": url, "worker_name": worker_name, "rollouts_name": rollouts_name, **containers}
    finally:
        for container in containers.values():
            container.remove(force=True)


def run_in(container, *command: str) -> subprocess.CompletedProcess:
    result = container.exec_run(list(command), demux=False)
    return subprocess.CompletedProcess(command, result.exit_code, result.output.decode(errors="replace"), "")


def test_the_web_container_answers_readyz_from_inside_and_outside(platform):
    port = platform["url"].rsplit(":", 1)[1]
    inside = run_in(
        platform["web"],
        "python",
        "-c",
        f"import urllib.request, json; r = urllib.request.urlopen('http://127.0.0.1:{port}/readyz'); "
        "print(r.status, json.load(r))",
    )

    assert inside.returncode == 0, inside.stdout
    assert inside.stdout.strip() == "200 {'status': 'ok', 'database': 'ok', 'migrations': 'ok', 'redis': 'ok'}"
    assert requests.get(f"{platform['url']}/readyz", timeout=30).json()["status"] == "ok"


def test_the_web_container_ran_the_migrations_on_start(platform, empty_database):
    check = run_in(platform["web"], "python", "manage.py", "migrate", "--check")
    assert check.returncode == 0, check.stdout  # nothing left to apply

    with psycopg.connect(empty_database) as connection:
        applied = {app for (app,) in connection.execute("SELECT DISTINCT app FROM django_migrations")}
    assert {"accounts", "audit", "registry", "deployments", "auth", "sessions"} <= applied


def test_the_worker_answers_celery_inspect_ping(platform):
    worker = platform["worker_name"]
    ping = run_in(platform["worker"], "celery", "-A", "config", "inspect", "ping", "-d", worker, "--timeout", "10")

    assert ping.returncode == 0, ping.stdout
    assert f"{platform['worker_name']}: OK" in ping.stdout
    assert "pong" in ping.stdout


def test_the_rollouts_worker_takes_only_rollouts_a_thread_each_with_the_client_loaded(platform):
    name = platform["rollouts_name"]

    def inspect(command: str):
        answer = run_in(platform["rollouts"], "celery", "-A", "config", "inspect", command, "-d", name, "--timeout",
                        "10", "--json")  # fmt: skip
        return json.loads(answer.stdout.strip().splitlines()[-1])[name] if answer.returncode == 0 else None

    stats = wait_until(lambda: inspect("stats"), timeout=60, message="the rollouts worker to answer")
    assert stats["pool"]["implementation"].endswith("thread:TaskPool")
    assert stats["pool"]["max-concurrency"] == 3  # ROLLOUT_CONCURRENCY
    assert [queue["name"] for queue in inspect("active_queues")] == [settings.ROLLOUT_QUEUE]
    assert "the Kubernetes client is loaded" in platform["rollouts"].logs().decode()


@pytest.mark.parametrize("role", ["web", "worker", "rollouts"])
def test_the_containers_run_as_a_user_that_is_not_root(platform, role):
    container = platform[role]
    assert container.attrs["Config"]["User"] == "10001"
    # The server's own process, not only what `docker exec` starts.
    status = run_in(container, "cat", "/proc/1/status").stdout
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == ["10001"] * 4
    assert run_in(container, "id", "-u").stdout.strip() == "10001"


def test_the_web_containers_logs_are_json_lines_with_request_ids(platform):
    response = requests.get(f"{platform['url']}/healthz", headers={"X-Request-ID": "smoke-test-1"}, timeout=30)
    assert response.headers["X-Request-ID"] == "smoke-test-1"

    def request_line():
        for line in platform["web"].logs().decode().splitlines():
            if line.startswith("{") and json.loads(line).get("request_id") == "smoke-test-1":
                return json.loads(line)
        return None

    line = wait_until(request_line, timeout=10, message="the request's log line")
    assert (line["logger"], line["path"], line["status"]) == ("slipway.request", "/healthz", 200)


def test_metrics_add_up_the_requests_of_every_gunicorn_worker(platform):
    def readyz_count():
        text = requests.get(f"{platform['url']}/metrics", timeout=30).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "slipway_http_requests_total" and sample.labels == {
                    "route": "/readyz",
                    "method": "GET",
                    "status": "200",
                }:
                    return sample.value
        return 0.0

    before = readyz_count()
    # New connections each time: gunicorn hands them to both of its workers.
    for _ in range(20):
        assert requests.get(f"{platform['url']}/readyz", timeout=30).status_code == 200

    assert readyz_count() - before == 20
