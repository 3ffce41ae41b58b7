"""Real services for integration tests: the Docker engine, an OCI registry, a Celery worker.

Nothing is mocked here. `make test` installs and starts the engine; when it does not answer the
tests fail (not skip), because a skipped build test would hide exactly the breakage it exists for.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
import redis
import requests
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "platform" / "scripts"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition, *, timeout: float, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


@pytest.fixture(scope="session")
def docker_engine():
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(
            f"The Docker engine does not answer ({exc}); `make test` starts it with platform/scripts/ensure-docker.sh",
            pytrace=False,
        )
    yield client
    client.close()


@pytest.fixture(scope="session")
def base_image(docker_engine):
    name = os.environ.get("SLIPWAY_BASE_IMAGE", "")
    if not name:
        name = subprocess.run(
            ["bash", str(SCRIPTS / "base-image.sh")], check=True, capture_output=True, text=True
        ).stdout.strip()
    docker_engine.images.get(name)
    return name


@dataclass
class OciRegistry:
    port: int
    username: str
    password: str
    data_dir: Path

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def api(self, path: str, **kwargs) -> requests.Response:
        return requests.get(f"http://{self.host}/v2/{path}", auth=(self.username, self.password), timeout=10, **kwargs)

    def manifest(self, repository: str, reference: str) -> requests.Response:
        accept = ", ".join(
            [
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.oci.image.manifest.v1+json",
            ]
        )
        return self.api(f"{repository}/manifests/{reference}", headers={"Accept": accept})


@pytest.fixture(scope="session")
def oci_registry(tmp_path_factory, docker_engine):
    """A CNCF Distribution registry on loopback with htpasswd authentication."""
    registry = OciRegistry(free_port(), "ci", "ci-registry-password", tmp_path_factory.mktemp("registry"))
    subprocess.run(
        [
            "bash",
            str(SCRIPTS / "ensure-registry.sh"),
            str(registry.port),
            str(registry.data_dir),
            registry.username,
            registry.password,
        ],
        check=True,
    )
    yield registry
    subprocess.run(["bash", str(SCRIPTS / "stop-registry.sh"), str(registry.data_dir)], check=False)


class CeleryWorker:
    """A real `celery worker` process on the test database and the test Redis."""

    def __init__(
        self,
        database_name: str,
        log_path: Path,
        *,
        concurrency: int = 2,
        queues: str | None = None,
        pool: str = "prefork",
        extra_env: dict | None = None,
    ):
        """`queues`: all by default, so tests see rollouts and drift checks run; the platform gives each its
        own process (`pool`: "threads" as its rollouts worker runs)."""

        self.log_path = log_path
        db = settings.DATABASES["default"]
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.test_settings",
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{database_name}",
            "REDIS_URL": settings.REDIS_URL,
            "SLIPWAY_BASE_IMAGE": settings.BASE_IMAGE,
            "SLIPWAY_BUILD_WORKDIR": str(settings.BUILD_WORKDIR),
            "SLIPWAY_WHEEL_CACHE": str(settings.WHEEL_CACHE),
            "SLIPWAY_MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "SLIPWAY_BUILD_RETRY_BACKOFF": str(settings.BUILD_RETRY_BACKOFF),
            "SLIPWAY_BUILD_HEARTBEAT": str(settings.BUILD_HEARTBEAT_SECONDS),
            **(extra_env or {}),
        }
        self.log = open(log_path, "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--loglevel",
                "INFO",
                "--pool",
                pool,
                "--concurrency",
                str(concurrency),
                "--queues",
                queues or f"celery,{settings.ROLLOUT_QUEUE},{settings.DRIFT_QUEUE}",
                "--hostname",
                f"test-{os.getpid()}-{time.monotonic_ns()}@%h",
                "--without-mingle",
                "--without-gossip",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(
            lambda: b"ready." in log_path.read_bytes() or self.process.poll() is not None,
            timeout=60,
            message="the Celery worker to be ready",
        )
        if self.process.poll() is not None:
            raise RuntimeError(f"the Celery worker exited at start:\n{log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the worker and its pool children: what an OOM kill or a lost node does."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log.close()


def purge_queue(redis_url: str) -> None:

    redis.Redis.from_url(redis_url).flushdb()
