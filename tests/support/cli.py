"""The `slipway` CLI as a CI job has it: installed with `pip install ./cli` into a virtualenv of its own
(no Django, nothing of the platform), run as a subprocess with nothing but its environment variables.
And a proxy that fails the way networks do, to test its retries."""

import http.client
import json
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
CLI_SOURCE = ROOT / "cli"


def install_cli(folder: Path) -> Path:
    """A new virtualenv with the CLI installed from the repository; the folder of its `slipway`.

    A copy is installed, so the build leaves nothing in the source tree (parallel runs share it)."""
    source = folder / "source"
    shutil.copytree(CLI_SOURCE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(source)],
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, f"pip install ./cli failed:\n{installed.stdout}\n{installed.stderr}"
    return venv / "bin"


@dataclass
class Result:
    args: tuple
    code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return f"slipway {' '.join(self.args)} -> {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


@dataclass
class Slipway:
    """Runs the installed CLI with exactly the environment given (and a PATH to find it)."""

    bin_dir: Path
    env: dict[str, str]
    cwd: Path
    transcript: list[Result] = field(default_factory=list)

    def environment(self, **extra: str) -> dict[str, str]:
        return {
            "PATH": f"{self.bin_dir}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            **self.env,
            **extra,
        }

    def __call__(self, *args: str, stdin: str | None = None, timeout: float = 300, **extra: str) -> Result:
        done = subprocess.run(
            ["slipway", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.environment(**extra),
            cwd=self.cwd,
        )
        result = Result(args, done.returncode, done.stdout, done.stderr)
        self.transcript.append(result)
        return result

    def start(self, *args: str, **extra: str) -> subprocess.Popen:
        """In the background, e.g. a `promote --wait` that someone else's approval will end."""
        return subprocess.Popen(
            ["slipway", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.environment(**extra),
            cwd=self.cwd,
        )

    def finish(self, process: subprocess.Popen, *args: str, timeout: float = 300) -> Result:
        stdout, stderr = process.communicate(timeout=timeout)
        result = Result(args, process.returncode, stdout, stderr)
        self.transcript.append(result)
        return result

    def with_env(self, **extra: str) -> "Slipway":
        return Slipway(self.bin_dir, {**self.env, **extra}, self.cwd, self.transcript)


class FlakyProxy:
    """Forwards to `target`, but answers `failures` requests (after the first `passing` ones) with
    `status`, or, with status None, reads them and hangs up. Records every request it saw."""

    def __init__(
        self, target: str, *, failures: int, status: int | None = 503, methods=("GET", "POST"), passing: int = 0
    ):
        self.target = urlsplit(target)
        self.failures = failures
        self.passing = passing
        self.status = status
        self.methods = methods
        self.seen: list[tuple[str, str, int | None]] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def handle_any(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy.lock:
                    failing = self.command in proxy.methods and proxy.failures > 0 and proxy.passing <= 0
                    if failing:
                        proxy.failures -= 1
                    elif self.command in proxy.methods:
                        proxy.passing -= 1
                if failing and proxy.status is None:
                    proxy.seen.append((self.command, self.path, None))
                    self.close_connection = True
                    self.connection.close()
                    return
                if failing:
                    payload = json.dumps({"detail": "Service temporarily unavailable."}).encode()
                    proxy.seen.append((self.command, self.path, proxy.status))
                    self.send_response(proxy.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                upstream = http.client.HTTPConnection(proxy.target.hostname, proxy.target.port, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                payload = answer.read()
                proxy.seen.append((self.command, self.path, answer.status))
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                upstream.close()

            do_GET = do_POST = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
