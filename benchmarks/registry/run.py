"""The registry API against MLflow 3.17.2's model registry: same machine, same run, one worker each.

    .venv/bin/python benchmarks/registry/run.py [--requests 200] [--rounds 3]

Protocol (issue 17): one web worker per side, SQLite for both, one sequential keep-alive client,
a fresh 1 MiB random artifact per version, Slipway's automatic build on (every upload queues a
build, as deployed; no Celery worker consumes it here, so only the enqueue is measured). Each server
runs with its own defaults otherwise: both write one log line per request (MLflow's uvicorn access
log, Slipway's request log at INFO), both with debugging off.

For each round, four operations are timed request by request, each in batches of 20 requests that
alternate between the two sides (so that load from other work on the machine falls on both alike):

- create a model;
- create a version with its upload (Slipway: one multipart request; MLflow: create a run, upload
  the artifact through its artifact proxy, create the model version, finish the run);
- list a model's versions (a model with 20 versions; both answer all of them);
- get one version.

Prints a Markdown table: the median over rounds of each side's p50 and throughput (operations/s),
their ratio, and the CPU time each server (all processes of its session) spent per operation, which
a busy machine disturbs less than wall-clock time. MLflow is installed on first use into a
virtualenv of its own under var/bench/, never into the project's. All traffic stays on 127.0.0.1;
both servers stop when the script ends.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import requests

ROOT = Path(__file__).resolve().parents[2]
MLFLOW_VENV = ROOT / "var" / "bench" / "mlflow-venv"
MLFLOW_VERSION = "3.17.2"
ARTIFACT_BYTES = 1024 * 1024
LISTED_VERSIONS = 20
BATCH = 20  # requests in a row to one side before the other side's turn
OPERATIONS = ("create a model", "create a version with its upload", "list a model's versions", "get a version")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server for {url} exited with {process.returncode}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {seconds} s")


@contextlib.contextmanager
def running(command: list[str], env: dict[str, str], url: str, log: Path) -> Iterator[subprocess.Popen]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_up(url, process)
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# --- MLflow ---------------------------------------------------------------------------------------


def ensure_mlflow() -> Path:
    marker = MLFLOW_VENV / "installed.txt"
    if marker.is_file() and marker.read_text() == MLFLOW_VERSION:
        return MLFLOW_VENV / "bin" / "mlflow"
    print(f"Installing mlflow=={MLFLOW_VERSION} into {MLFLOW_VENV.relative_to(ROOT)} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(MLFLOW_VENV)], check=True)
    pip = [str(MLFLOW_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, f"mlflow=={MLFLOW_VERSION}"], check=True)
    marker.write_text(MLFLOW_VERSION)
    return MLFLOW_VENV / "bin" / "mlflow"


class MLflowSide:
    name = f"MLflow {MLFLOW_VERSION}"

    def __init__(self, base: str, pid: int) -> None:
        self.pid = pid
        self.api = f"{base}/api/2.0/mlflow"
        self.artifacts = f"{base}/api/2.0/mlflow-artifacts/artifacts"
        self.http = requests.Session()

    def _post(self, path: str, body: dict) -> dict:
        answer = self.http.post(f"{self.api}/{path}", json=body, timeout=30)
        answer.raise_for_status()
        return answer.json()

    def create_model(self, name: str) -> str:
        self._post("registered-models/create", {"name": name})
        return name

    def create_version(self, model: str, artifact: bytes) -> str:
        run = self._post("runs/create", {"experiment_id": "0", "start_time": int(time.time() * 1000)})["run"]
        run_id = run["info"]["run_id"]
        upload = self.http.put(f"{self.artifacts}/0/{run_id}/artifacts/model/model.joblib", data=artifact, timeout=30)
        upload.raise_for_status()
        source = f"mlflow-artifacts:/0/{run_id}/artifacts/model"
        version = self._post("model-versions/create", {"name": model, "source": source, "run_id": run_id})
        self._post("runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": int(time.time() * 1000)})
        return str(version["model_version"]["version"])

    def list_versions(self, model: str) -> int:
        answer = self.http.get(
            f"{self.api}/model-versions/search",
            params={"filter": f"name='{model}'", "max_results": 100},
            timeout=30,
        )
        answer.raise_for_status()
        return len(answer.json()["model_versions"])

    def get_version(self, model: str, version: str) -> None:
        answer = self.http.get(f"{self.api}/model-versions/get", params={"name": model, "version": version}, timeout=30)
        answer.raise_for_status()


@contextlib.contextmanager
def mlflow_server(work: Path) -> Iterator[tuple[str, int]]:
    mlflow = ensure_mlflow()
    port = free_port()
    command = [
        str(mlflow),
        "server",
        "--backend-store-uri",
        f"sqlite:///{work / 'mlflow.sqlite3'}",
        "--artifacts-destination",
        str(work / "mlflow-artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    env = {**os.environ, "MLFLOW_ENABLE_TELEMETRY": "false", "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    base = f"http://127.0.0.1:{port}"
    with running(command, env, f"{base}/health", work / "mlflow.log") as process:
        yield base, process.pid


# --- Slipway --------------------------------------------------------------------------------------

FIXTURE = """
from accounts import services
from accounts.models import Membership, Role, Team
from deployments.models import ContainerRegistry
from django.contrib.auth import get_user_model
user = get_user_model().objects.create_user("bench")
team = Team.objects.create(slug="bench", name="Bench")
# A registry, so that every upload queues its automatic build, as deployed.
ContainerRegistry.objects.create(name="local", url="127.0.0.1:5000")
Membership.objects.create(team=team, user=user, role=Role.ADMIN)
_, secret = services.token_create(user=user, name="bench", scopes=["read", "deploy"], expires_in_days=1)
print(secret)
"""


class SlipwaySide:
    name = "Slipway"

    def __init__(self, base: str, token: str, pid: int) -> None:
        self.pid = pid
        self.api = f"{base}/api/v1"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def create_model(self, name: str) -> str:
        answer = self.http.post(f"{self.api}/models/", json={"team": "bench", "name": name}, timeout=30)
        answer.raise_for_status()
        return str(answer.json()["id"])

    def create_version(self, model: str, artifact: bytes) -> str:
        answer = self.http.post(
            f"{self.api}/models/{model}/versions/",
            data={"framework": "sklearn"},
            files={"artifact": ("model.joblib", artifact)},
            timeout=30,
        )
        if answer.status_code != 201:
            raise SystemExit(f"Slipway refused the upload: {answer.status_code} {answer.text[:500]}")
        return str(answer.json()["id"])

    def list_versions(self, model: str) -> int:
        answer = self.http.get(f"{self.api}/models/{model}/versions/", params={"page_size": 100}, timeout=30)
        answer.raise_for_status()
        return len(answer.json()["results"])

    def get_version(self, model: str, version: str) -> None:
        answer = self.http.get(f"{self.api}/versions/{version}/", timeout=30)
        answer.raise_for_status()


@contextlib.contextmanager
def slipway_server(work: Path) -> Iterator[tuple[str, str, int]]:
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"sqlite:///{work / 'slipway.sqlite3'}",
        "REDIS_URL": os.environ.get("SLIPWAY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
        "SLIPWAY_SECRET_KEY": secrets.token_urlsafe(50),
        "SLIPWAY_VAR_DIR": str(work / "var"),
        "SLIPWAY_MEDIA_ROOT": str(work / "media"),
        "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics"),
    }
    (work / "metrics").mkdir()
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "--verbosity", "0"], env=env, cwd=ROOT, check=True)
    token = subprocess.run(
        [python, "manage.py", "shell", "-c", FIXTURE], env=env, cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split()[-1]
    command = [
        str(Path(python).with_name("gunicorn")),
        "config.wsgi",
        "--config",
        "platform/gunicorn.conf.py",
        "--workers",
        "1",
        "--threads",
        "8",
        "--bind",
        f"127.0.0.1:{port}",
    ]
    base = f"http://127.0.0.1:{port}"
    with running(command, {**env, "PWD": str(ROOT)}, f"{base}/healthz", work / "slipway.log") as process:
        yield base, token, process.pid
    redis.Redis.from_url(env["REDIS_URL"]).flushdb()


# --- measuring ------------------------------------------------------------------------------------


@dataclass
class Figures:
    p50_ms: float
    per_second: float
    server_cpu_ms: float  # CPU time of the server's processes per operation


TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def session_cpu_seconds(session: int) -> float:
    """User + system CPU time of the live processes of a session (the server and its workers)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        if int(fields[3]) == session:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / TICKS_PER_SECOND


@dataclass
class Tally:
    durations: list[float] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    def figures(self) -> Figures:
        return Figures(
            p50_ms=statistics.median(self.durations) * 1000,
            per_second=len(self.durations) / self.seconds,
            server_cpu_ms=self.cpu_seconds / len(self.durations) * 1000,
        )


def measure(sides: list, requests_per_op: int, tag: str) -> dict[str, dict[str, Figures]]:
    """One round: each operation on both sides, in batches that alternate between them, so that a burst
    of load from other work on the machine falls on both alike."""
    made = {}
    for side in sides:
        upload_to = side.create_model(f"listed-{tag}")
        listed = side.create_model(f"twenty-{tag}")
        versions = [side.create_version(listed, os.urandom(ARTIFACT_BYTES)) for _ in range(LISTED_VERSIONS)]
        count = side.list_versions(listed)
        assert count == LISTED_VERSIONS, f"{side.name} listed {count} versions, not {LISTED_VERSIONS}"
        made[side.name] = (upload_to, listed, versions[5])
    calls: dict[str, Callable[[Any, int], object]] = {
        OPERATIONS[0]: lambda side, i: side.create_model(f"m-{tag}-{i}"),
        OPERATIONS[1]: lambda side, i: side.create_version(made[side.name][0], os.urandom(ARTIFACT_BYTES)),
        OPERATIONS[2]: lambda side, i: side.list_versions(made[side.name][1]),
        OPERATIONS[3]: lambda side, i: side.get_version(made[side.name][1], made[side.name][2]),
    }
    figures: dict[str, dict[str, Figures]] = {side.name: {} for side in sides}
    for op, call in calls.items():
        tallies = {side.name: Tally() for side in sides}
        for batch, first in enumerate(range(0, requests_per_op, BATCH)):
            for side in sides if batch % 2 == 0 else sides[::-1]:
                tally = tallies[side.name]
                cpu_before = session_cpu_seconds(side.pid)
                began = time.perf_counter()
                for i in range(first, min(first + BATCH, requests_per_op)):
                    start = time.perf_counter()
                    call(side, i)
                    tally.durations.append(time.perf_counter() - start)
                tally.seconds += time.perf_counter() - began
                tally.cpu_seconds += session_cpu_seconds(side.pid) - cpu_before
        for side in sides:
            figures[side.name][op] = tallies[side.name].figures()
    return figures


def report(results: dict[str, list[dict[str, Figures]]], args) -> str:
    slipway, mlflow = results["Slipway"], results[MLflowSide.name]
    lines = [
        f"Registry API, {args.requests} requests per operation, {args.rounds} rounds, medians of rounds "
        f"({platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"load average {args.load_before:.1f} before, {os.getloadavg()[0]:.1f} after)",
        "",
        "| operation | Slipway p50 | MLflow p50 | Slipway ops/s | MLflow ops/s | throughput ratio "
        "| server CPU per op, Slipway / MLflow |",
        "|---|---|---|---|---|---|---|",
    ]
    for op in OPERATIONS:
        s_p50 = statistics.median(r[op].p50_ms for r in slipway)
        m_p50 = statistics.median(r[op].p50_ms for r in mlflow)
        s_ops = statistics.median(r[op].per_second for r in slipway)
        m_ops = statistics.median(r[op].per_second for r in mlflow)
        s_cpu = statistics.median(r[op].server_cpu_ms for r in slipway)
        m_cpu = statistics.median(r[op].server_cpu_ms for r in mlflow)
        lines.append(
            f"| {op} | {s_p50:.1f} ms | {m_p50:.1f} ms | {s_ops:.0f} | {m_ops:.0f} | **{s_ops / m_ops:.2f}x** "
            f"| {s_cpu:.1f} ms / {m_cpu:.1f} ms |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per operation and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    args.load_before = os.getloadavg()[0]
    results: dict[str, list[dict[str, Figures]]] = {"Slipway": [], MLflowSide.name: []}
    with tempfile.TemporaryDirectory(prefix="slipway-bench-registry-") as tmp:
        work = Path(tmp)
        (work / "slipway").mkdir()
        (work / "mlflow").mkdir()
        with (
            slipway_server(work / "slipway") as (s_base, token, s_pid),
            mlflow_server(work / "mlflow") as (m_base, m_pid),
        ):
            sides = [SlipwaySide(s_base, token, s_pid), MLflowSide(m_base, m_pid)]
            measure(sides, 5, "warmup")  # first requests load code and fill caches
            for round_ in range(args.rounds):
                for name, figures in measure(sides, args.requests, f"r{round_}").items():
                    results[name].append(figures)
                print(f"round {round_ + 1} done", file=sys.stderr)
    print(report(results, args))


if __name__ == "__main__":
    main()
