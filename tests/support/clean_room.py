"""Run a platform script in a clean container, the way it would run on a new machine.

The container comes from the locally made base image: Debian with its package sources configured
but no package lists and none of the packages our scripts install. The repository is mounted
read-only at /repo. Several containers can run at once (`start()` returns at once, `result()`
waits), so the slow installs of one test module overlap instead of adding up.
"""

import contextlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parents[2]
EXIT_MARKER = "clean-room-exit="


@dataclass
class Outcome:
    exit_code: int  # the script's own exit status
    output: str  # what the script printed (stdout and stderr), then what the checks printed

    @property
    def script_output(self) -> str:
        return self.output.split(EXIT_MARKER, 1)[0]

    @property
    def checks_output(self) -> str:
        return self.output.split(EXIT_MARKER, 1)[1].split("\n", 1)[1] if EXIT_MARKER in self.output else ""


class CleanContainer:
    """`script` runs under `bash -c` with /repo as working directory; `checks` run after it, whatever
    it returned, so a test can look at what the script left behind (installed packages, files)."""

    def __init__(self, engine: docker.DockerClient, image: str, name: str, script: str, *, checks: str = "", **run):
        self.engine, self.image, self.name = engine, image, name
        # One stream, so that the order of what the script printed and the exit marker is kept.
        self.command = f"exec 2>&1\n{script}\necho '{EXIT_MARKER}'$?\n{checks}\n"
        self.run_options = run
        self.container = None

    def start(self) -> "CleanContainer":
        self.container = self.engine.containers.run(
            self.image,
            ["bash", "-c", self.command],
            name=self.name,
            detach=True,
            init=True,  # a real PID 1 reaps what the scripts start, as on a machine
            working_dir="/repo",
            volumes={str(ROOT): {"bind": "/repo", "mode": "ro"}, **self.run_options.pop("volumes", {})},
            labels={"slipway.test": "clean-room"},
            **self.run_options,
        )
        return self

    def result(self, timeout: float = 600) -> Outcome:
        assert self.container is not None, "start() first"
        deadline = time.monotonic() + timeout
        while True:
            self.container.reload()
            if self.container.status == "exited":
                break
            if time.monotonic() > deadline:
                tail = self.container.logs(tail=40).decode(errors="replace")
                raise AssertionError(f"{self.name} still running after {timeout} s; last output:\n{tail}")
            time.sleep(1)
        output = self.container.logs().decode(errors="replace")
        match = re.search(rf"^{EXIT_MARKER}(\d+)$", output, re.MULTILINE)
        assert match, f"{self.name}: the script did not get to its end (container killed?):\n{output[-3000:]}"
        return Outcome(int(match.group(1)), output)

    def remove(self) -> None:
        if self.container is not None:
            with contextlib.suppress(docker.errors.NotFound):
                self.container.remove(force=True)


def installed_packages(checks_output: str) -> set[str]:
    """Package names from `dpkg-query -W -f='${Package} ${Status}\\n'` lines that are installed."""
    return {
        line.split()[0] for line in checks_output.splitlines() if line.endswith("install ok installed") and line.split()
    }


def dpkg_check(*packages: str) -> str:
    names = " ".join(packages)
    return f"dpkg-query -W -f='${{Package}} ${{Status}}\\n' {names} 2>/dev/null || true"
