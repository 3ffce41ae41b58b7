"""`make run` as a newcomer uses it, and the README's API examples run verbatim against it.

One `platform/scripts/run.sh` (what `make run` runs once the virtualenv exists) serves the module:
SQLite in its own var folder (make run's default), demo data, its own registry, the web server,
a worker and beat. The README's blocks run in bash with a token made through the API, an approver
approves when the CI job waits for it, and the last test presses Ctrl-C and runs `make stop`.
The tests run in file order: the last one stops the server the others use.
"""

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import joblib
import pytest
import requests
from django.conf import settings
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.support import readme
from tests.support.services import ROOT, free_port, wait_until

pytestmark = pytest.mark.slow

API_BLOCK = "Create a token under *API tokens*"
CI_BLOCK = "A CI job that ships a version to prod"


class MakeRun:
    def __init__(self, var: Path, base_image: str):
        self.var, self.port, self.registry_port = var, free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.registry = f"127.0.0.1:{self.registry_port}"
        self.log_path = var.parent / "make-run.log"
        # The environment of a developer's shell: none of the test suite's own settings.
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("SLIPWAY_", "DJANGO_", "DATABASE_URL", "PYTEST", "CELERY_"))
        }
        self.env = {
            **inherited,
            "SLIPWAY_VAR_DIR": str(var),
            "SLIPWAY_PORT": str(self.port),
            "SLIPWAY_DEFAULT_REGISTRY": self.registry,
            "SLIPWAY_BASE_IMAGE": base_image,
            "REDIS_URL": settings.REDIS_URL,
            "PYTHONUNBUFFERED": "1",
        }
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            ["bash", "platform/scripts/run.sh"],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: what a terminal's Ctrl-C reaches
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self):
        def ready():
            if self.process.poll() is not None:
                raise AssertionError(f"make run exited ({self.process.returncode}):\n{self.output()[-4000:]}")
            if "Slipway is running" not in self.output():
                return False
            try:
                return requests.get(f"{self.url}/readyz", timeout=15).status_code == 200
            except requests.RequestException:  # not listening yet, or slow to answer its first request
                return False

        wait_until(ready, timeout=240, interval=0.5, message="make run to serve")

    def group_processes(self) -> list[int]:
        """Processes still in make run's process group."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == self.process.pid and fields[0] != "Z":
                found.append(int(entry.name))
        return found

    def close(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        subprocess.run(["bash", "platform/scripts/stop.sh"], cwd=ROOT, env=self.env, capture_output=True, check=False)
        self.log.close()


@pytest.fixture(scope="module")
def make_run(tmp_path_factory, base_image, docker_engine):
    server = MakeRun(tmp_path_factory.mktemp("make-run") / "var", base_image)
    try:
        server.wait_ready()
        yield server
    finally:
        server.close()


def api_token(server: MakeRun, username: str, password: str, scopes: list[str]) -> str:
    """A token made the way the README says: signed in, under API tokens (here through the API)."""
    session = requests.Session()
    session.get(f"{server.url}/login/", timeout=30)
    signed_in = session.post(
        f"{server.url}/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{server.url}/login/"},
        timeout=30,
    )
    assert signed_in.status_code == 200 and "sessionid" in session.cookies, signed_in.text[:500]
    created = session.post(
        f"{server.url}/api/v1/tokens/",
        json={"name": f"{username}-readme", "scopes": scopes},
        headers={"X-CSRFToken": session.cookies["csrftoken"], "Referer": f"{server.url}/"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    return created.json()["token"]


@pytest.fixture(scope="module")
def tokens(make_run):
    return {
        "alice": api_token(make_run, "alice", "alice-slipway", ["read", "deploy"]),
        "bob": api_token(make_run, "bob", "bob-slipway", ["read", "approve"]),
    }


def run_block(block: readme.CodeBlock, *, cwd: Path, env: dict, on_line=None, timeout: float = 600):
    """The block in bash, exactly as written; `on_line` sees each line of its output as it comes."""
    process = subprocess.Popen(
        ["bash", "-c", block.text],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []

    def read():
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if on_line:
                on_line(lines[-1])

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"{block} still running after {timeout} s; output:\n" + "\n".join(lines[-60:])) from None
    reader.join(timeout=30)
    return process.returncode, lines


def script_env(server: MakeRun, token: str) -> dict:
    # `python` in the CI job is the one the model was trained with (this venv's).
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    return {"PATH": path, "HOME": os.environ.get("HOME", "/root"), "SLIPWAY_URL": server.url, "TOKEN": token}


def test_make_run_serves_the_platform_with_the_demo_logins(make_run):
    assert requests.get(f"{make_run.url}/readyz", timeout=30).json()["status"] == "ok"
    assert "alice / alice-slipway" in make_run.output()
    page = requests.get(f"{make_run.url}/", timeout=30)
    assert page.url.startswith(f"{make_run.url}/login/")
    assert (make_run.var / "slipway.sqlite3").exists()  # make run's embedded default
    assert requests.get(f"http://{make_run.registry}/v2/", timeout=30).status_code == 200


def test_every_api_example_in_the_readme_is_one_this_module_runs():
    api_blocks = [b for b in readme.blocks() if "$API" in b.text or "curl " in b.text]
    run_here = {readme.block(intro_starts_with=API_BLOCK).line, readme.block(intro_starts_with=CI_BLOCK).line}
    assert {b.line for b in api_blocks} == run_here, [str(b) for b in api_blocks]


def test_the_readmes_api_example_runs_as_written(make_run, tokens, tmp_path):
    block = readme.block(intro_starts_with=API_BLOCK)

    code, lines = run_block(block, cwd=tmp_path, env=script_env(make_run, tokens["alice"]))

    output = "\n".join(lines)
    assert code == 0, output
    assert re.search(r"^\d+  sensor-score  latest: v1$", output, re.MULTILINE), output
    assert '"name": "churn"' in output
    assert re.search(r"^\d+  prod  protected: true$", output, re.MULTILINE), output


@pytest.fixture
def iris_model(tmp_path):
    features, labels = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(features, labels), tmp_path / "model.joblib")
    return tmp_path


def ensure_model(server: MakeRun, token: str, name: str) -> None:
    """The model the CI job ships (the README's first example creates it; made here if run alone)."""
    auth = {"Authorization": f"Bearer {token}"}
    found = requests.get(f"{server.url}/api/v1/models/?team=vision&name={name}", headers=auth, timeout=30).json()
    if not found["results"]:
        made = requests.post(
            f"{server.url}/api/v1/models/", json={"team": "vision", "name": name}, headers=auth, timeout=10
        )
        assert made.status_code == 201, made.text


def test_the_readmes_ci_job_ships_a_version_to_prod_with_an_approval(make_run, tokens, iris_model):
    ensure_model(make_run, tokens["alice"], "churn")
    block = readme.block(intro_starts_with=CI_BLOCK)
    bob = {"Authorization": f"Bearer {tokens['bob']}"}
    approvals = []

    def approve_when_asked(line):
        waiting = re.match(r"ci: waiting for an approver to approve promotion (\d+)$", line)
        if waiting:
            promotion = waiting.group(1)
            seen = requests.get(f"{make_run.url}/api/v1/promotions/{promotion}/", headers=bob, timeout=30).json()
            answer = requests.post(
                f"{make_run.url}/api/v1/promotions/{promotion}/approve/",
                json={"comment": "looks good", "digest": seen["image"]},
                headers=bob,
                timeout=30,
            )
            approvals.append((promotion, answer.status_code, answer.json()))

    env = {**script_env(make_run, tokens["alice"]), "CI_PIPELINE_ID": "812"}
    code, lines = run_block(block, cwd=iris_model, env=env, on_line=approve_when_asked)

    output = "\n".join(lines)
    assert code == 0, output
    assert len(approvals) == 1, output
    promotion, status, body = approvals[0]
    assert status == 200 and body["state"] in ("approved", "deployed"), body
    # The build's whole log, to its last line, and only then the deploys.
    alice = {"Authorization": f"Bearer {tokens['alice']}"}
    build = requests.get(f"{make_run.url}/api/v1/builds/{body['build']}/", headers=alice, timeout=30).json()
    assert build["state"] == "succeeded"
    log = requests.get(f"{make_run.url}/api/v1/builds/{build['id']}/log/?after=0", headers=alice, timeout=30).json()
    texts = [line["text"] for line in log["lines"]]
    assert texts[-1] == "==> Build succeeded"
    first = lines.index(texts[0])
    assert lines[first : first + len(texts)] == texts  # every line once, in order
    ran = [line for line in lines if re.match(r"ci: (dev|staging|prod) runs \S+@sha256:", line)]
    assert [line.split()[1] for line in ran] == ["dev", "staging", "prod"]
    images = {line.split()[-1] for line in ran}
    assert images == {build["image_reference"].rsplit(":", 1)[0] + "@" + build["image_digest"]}  # one digest
    assert re.search(r"^ci: may this token approve\? false: ", output, re.MULTILINE), output
    assert lines[-1] == f"ci: prod runs churn v{build['version_number']}, approved by bob"
    promoted = requests.get(f"{make_run.url}/api/v1/promotions/{promotion}/", headers=alice, timeout=30).json()
    assert promoted["reason"] == "pipeline 812"
    assert [a["approver"] for a in promoted["approvals"]] == ["bob"]


def demo_containers(docker_engine, server: MakeRun) -> list[str]:
    """The demo's containers, by the installation id make run recorded (stop.sh finds them the same way)."""
    installation = (server.var / "installation-id").read_text().strip()
    labels = ["app.kubernetes.io/managed-by=slipway", f"slipway.io/installation={installation}"]
    managed = docker_engine.containers.list(all=True, filters={"label": labels})
    assert all(c.attrs["Config"]["Image"].startswith(f"{server.registry}/") for c in managed)
    return sorted(c.name for c in managed)


def test_ctrl_c_stops_what_make_run_started_names_what_it_leaves_and_make_stop_ends_that(make_run, docker_engine):
    started = make_run.group_processes()
    assert len(started) >= 5, started  # run.sh, gunicorn and its workers, the worker and its pool, beat
    registry_pid = int((make_run.var / "registry" / "registry.pid").read_text())
    containers = demo_containers(docker_engine, make_run)
    before = len(make_run.output())

    os.killpg(make_run.process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    make_run.process.wait(timeout=90)
    wait_until(lambda: not make_run.group_processes(), timeout=30, message="every process make run started to end")

    said = make_run.output()[before:]
    assert "stopped the web server, the worker and beat" in said
    assert "left running on purpose ('make stop' ends them):" in said
    assert f"registry {make_run.registry} (pid {registry_pid}" in said
    for name in containers:
        assert f"container {name}" in said
    assert "machine services left as they are" in said
    # Left running indeed: the registry answers, the model containers still serve.
    assert requests.get(f"http://{make_run.registry}/v2/", timeout=30).status_code == 200
    assert all(docker_engine.containers.get(name).status == "running" for name in containers)

    stopped = subprocess.run(
        ["make", "--no-print-directory", "stop"],
        cwd=ROOT,
        env=make_run.env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert stopped.returncode == 0, stopped.stderr
    if containers:
        assert f"removed {len(containers)} model container(s) of the demo" in stopped.stderr
    assert demo_containers(docker_engine, make_run) == []
    assert f"stopped registry (pid {registry_pid})" in stopped.stderr
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://{make_run.registry}/v2/", timeout=30)
