"""Services a fault test may stop and start: its own Redis and its own PostgreSQL, on ports of their own.

The suite's shared Redis and PostgreSQL are never touched; these run in a temporary folder, are
started by the test that needs them, and are stopped (and removed) when it ends.
"""

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
import requests
from django.conf import settings

from tests.support.services import ROOT, free_port, wait_until


class RedisServer:
    """A redis-server keeping nothing on disk, like the machine's own."""

    def __init__(self, folder: Path, port: int | None = None):
        self.folder, self.port = folder, port or free_port()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1, socket_timeout=2)

    def start(self) -> "RedisServer":
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            cwd=self.folder,
            stdout=open(self.folder / "redis.log", "ab"),  # noqa: SIM115 (the process owns it)
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(self.answers, timeout=10, message=f"redis on {self.port}")
        return self

    def answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def queued(self, queue: str = "celery") -> int:
        return int(self.client().llen(queue))


def postgres_bin(name: str) -> str:
    """A PostgreSQL server program (initdb, pg_ctl): on PATH, or in Debian's versioned folder."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), "")
    if not found:
        raise RuntimeError(f"{name} not found: install the PostgreSQL server package")
    return found


class PostgresServer:
    """A PostgreSQL cluster of its own in a temporary folder, with trust authentication on loopback.

    initdb refuses to run as root, so as root the cluster belongs to the `postgres` user.
    """

    def __init__(self, port: int | None = None):
        # Not under pytest's temporary folder: pytest keeps that private to root (0700), and the
        # server runs as `postgres`.
        self.folder = Path(tempfile.mkdtemp(prefix="slipway-faults-pg-"))
        self.port = port or free_port()
        self.data = self.folder / "data"
        self.user = "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/slipway"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = list(args)
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120)

    def init(self) -> "PostgresServer":
        if self.user:
            shutil.chown(self.folder, self.user)
        self._run(postgres_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()
        self._run(postgres_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "slipway")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            postgres_bin("pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.folder / "pg.log"),
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(postgres_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def celery_broker(url: str):
    """Point this process's Celery app (what services enqueue with) at another broker for a while."""
    from config.celery import app  # noqa: PLC0415  the app configures itself from Django settings on import

    previous = app.conf.broker_url

    def switch(to: str) -> None:
        app.conf.broker_url = to
        app._pool = None
        app.amqp._producer_pool = None

    switch(url)
    try:
        yield
    finally:
        switch(previous)


def figure(text: str) -> None:
    """A measured figure of a fault scenario (time to a final state, what the user saw): `pytest -s`."""
    print(f"\nFIGURE {text}")


class Platform:
    """Slipway's web server and a Celery worker as processes of their own, on the given database and
    Redis: what a fault test stops things under. Environment overrides shorten the intervals."""

    def __init__(self, folder: Path, *, database_url: str, redis_url: str, env: dict[str, str] | None = None):
        self.root, self.folder = ROOT, folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.test_settings",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": redis_url,
            "SLIPWAY_MEDIA_ROOT": str(folder / "media"),
            "SLIPWAY_BUILD_WORKDIR": str(folder / "builds"),
            "SLIPWAY_BUILD_HEARTBEAT": "1",
            "SLIPWAY_BUILD_RETRY_BACKOFF": "0.2",
            **(env or {}),
        }
        self.processes: dict[str, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def manage(self, *args: str, timeout: float = 180) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
        return done.stdout

    def _start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 (the process owns it)
        self.processes[name] = subprocess.Popen(
            command,
            cwd=self.root,
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_web(self, *, gunicorn: bool = False) -> None:
        """Django's server, or gunicorn as `make run` and the image run it (2 processes, 8 threads each)."""
        if gunicorn:
            metrics = self.folder / "metrics"
            metrics.mkdir(exist_ok=True)
            self.env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
            command = [sys.executable, "-m", "gunicorn", "config.wsgi", "--config", "platform/gunicorn.conf.py"]
            command += ["--bind", f"127.0.0.1:{self.port}", "--workers", "2", "--threads", "8"]
        else:
            command = [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{self.port}"]
        self._start("web", command)
        wait_until(self._web_answers, timeout=60, message="the web server")

    def _web_answers(self) -> bool:
        try:
            return requests.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def start_worker(self, name: str = "worker", *, env: dict[str, str] | None = None, wait: bool = True) -> None:
        self._start(
            name,
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--loglevel",
                "INFO",
                "--concurrency",
                "2",
                "--queues",  # builds and rollouts in one process here; the platform gives rollouts their own
                f"celery,{settings.ROLLOUT_QUEUE}",
                "--hostname",
                f"{name}-{os.getpid()}-{time.monotonic_ns()}@%h",
                "--without-mingle",
                "--without-gossip",
            ],
            env,
        )
        log = self.folder / f"{name}.log"
        if wait:
            wait_until(lambda: b"ready." in log.read_bytes(), timeout=60, message=f"the Celery {name}")

    def kill(self, name: str) -> None:
        """SIGKILL a process and its children: what an OOM kill or a lost node does."""
        process = self.processes.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        self.processes.clear()

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")
