"""The serving runtime run as a subprocess, exactly as an image runs it (`python -m serving`).

No Django here: the runtime's tests and the build-context tests both start servers with it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]


class ServerProcess:
    """`python -m serving` on 127.0.0.1 with a port the OS picked (PORT=0).

    `runtime_root` is the folder that holds the `serving` package: the repository, or a build
    context's `runtime/` folder. The process runs there, so that copy is the one imported.
    """

    def __init__(self, model_dir: Path, runtime_root: Path = REPO_ROOT, **env: str) -> None:
        self.started_at = time.monotonic()
        self.lines: list[str] = []
        self._listening = threading.Event()
        self.port = 0
        environment = {**os.environ, "SLIPWAY_MODEL_DIR": str(model_dir), "PORT": "0", "SLIPWAY_HOST": "127.0.0.1"}
        environment.pop("PYTHONPATH", None)
        environment.update(env)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "serving"],
            cwd=runtime_root,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        threading.Thread(target=self._read_output, daemon=True).start()
        self.http = requests.Session()
        self.http.trust_env = False  # never send loopback traffic through a proxy

    def _read_output(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            event = parse_json(line)
            if event and event.get("event") == "listening":
                self.port = int(event["port"])
                self._listening.set()
        self._listening.set()

    def wait_listening(self, timeout: float = 10.0) -> None:
        if not self._listening.wait(timeout) or not self.port:
            raise AssertionError(f"runtime did not start listening; output:\n{self.output()}")

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        parsed = [parse_json(line) for line in list(self.lines)]
        return [e for e in parsed if e is not None and (name is None or e.get("event") == name)]

    def wait_for_event(self, name: str, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(name)
            if found:
                return found[0]
            time.sleep(0.02)
        raise AssertionError(f"no {name!r} event within {timeout} s; output:\n{self.output()}")

    def wait_ready(self, timeout: float = 15.0) -> float:
        """Seconds from process start until /v2/health/ready answered 200."""
        self.wait_listening()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.get("/v2/health/ready").status_code == 200:
                return time.monotonic() - self.started_at
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"runtime not ready within {timeout} s; output:\n{self.output()}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> requests.Response:
        return self.http.get(self.url(path), timeout=10)

    def post(self, path: str, payload: Any = None, *, data: bytes | str | None = None) -> requests.Response:
        if data is None:
            data = json.dumps(payload)
        return self.http.post(self.url(path), data=data, headers={"Content-Type": "application/json"}, timeout=30)

    def metrics(self) -> dict[str, float]:
        """The /metrics samples, by name and labels."""
        answer = self.get("/metrics")
        assert answer.status_code == 200
        assert answer.headers["Content-Type"].startswith("text/plain")
        samples = {}
        for line in answer.text.splitlines():
            if line and not line.startswith("#"):
                key, value = line.rsplit(" ", 1)
                samples[key] = float(value)
        return samples

    def worker_pids(self) -> set[int]:
        """The worker processes the server forked (its children), from /proc."""
        children = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                children.add(int(entry.name))
        return children

    def output(self) -> str:
        return "\n".join(self.lines[-60:])

    def stop(self, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.http.close()
        return self.process.returncode


def parse_json(line: str) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def write_config(
    model_dir: Path,
    *,
    name: str,
    framework: str,
    artifact: str,
    signature: dict[str, Any] | None = None,
    version: str = "1",
) -> None:
    """Writes the slipway.json the image builder would write."""
    config = {
        "name": name,
        "version": version,
        "framework": framework,
        "artifact": artifact,
        "signature": signature or {"inputs": [], "outputs": []},
    }
    (model_dir / "slipway.json").write_text(json.dumps(config), encoding="utf-8")


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerProcess]]:
    """start_server(model_dir, runtime_root=..., **env): a server stopped when the test ends."""
    servers: list[ServerProcess] = []

    def start(model_dir: Path, runtime_root: Path = REPO_ROOT, **env: str) -> ServerProcess:
        server = ServerProcess(model_dir, runtime_root, **env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
