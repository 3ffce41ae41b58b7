"""Every install helper's "missing" branch, run for real (issue 9).

`make test` on a new machine installs docker.io, Chromium, debootstrap, shellcheck... A machine
that already has them never runs those branches, so a bug there (apt-cache dying of SIGPIPE under
pipefail, exit 141) stays hidden until a newcomer hits it. Here each ensure-*.sh runs in a clean
container made from the local base image (package sources, no packages), as far as it can get
without privileges; and `apt_install` runs on this machine itself for a package removed first.
The containers start together and run side by side; each test waits for its own.
"""

import contextlib
import fcntl
import os
import subprocess

import docker
import pytest

from tests.support.clean_room import ROOT, CleanContainer, dpkg_check, installed_packages

pytestmark = pytest.mark.slow

REGISTRY_PORT = 5123
BASE_PROBE_IMAGE = f"slipway-test/clean-room-base:{os.getpid()}"
# Install `make` the plain way, so that `make shellcheck` itself meets a missing shellcheck.
WITH_MAKE = "apt-get -qq update >/dev/null && apt-get -qq install -y --no-install-recommends make >/dev/null"


def probe_definitions():
    return {
        "docker": dict(
            script="bash platform/scripts/ensure-docker.sh",
            checks=f"{dpkg_check('docker.io', 'containerd', 'runc')}; dockerd --version",
        ),
        "chromium": dict(
            script="bash platform/scripts/ensure-chromium.sh",
            checks=dpkg_check("chromium", "fonts-dejavu-core", "fonts-liberation"),
        ),
        "registry": dict(
            script=f"bash platform/scripts/ensure-registry.sh {REGISTRY_PORT} /tmp/registry ci ci-password",
            checks="; ".join(
                [
                    dpkg_check("docker-registry", "apache2-utils", "curl"),
                    f"curl -s -o /dev/null -w 'anonymous=%{{http_code}}\\n' http://127.0.0.1:{REGISTRY_PORT}/v2/",
                    "curl -s -o /dev/null -w 'authenticated=%{http_code}\\n' -u ci:ci-password "
                    f"http://127.0.0.1:{REGISTRY_PORT}/v2/",
                ]
            ),
        ),
        # The host's engine through its socket: the script then gets past "is there an engine"
        # to the base image's own install path (debootstrap), as far as an unprivileged container can.
        "base-image": dict(
            script=f"bash platform/scripts/ensure-base-image.sh {BASE_PROBE_IMAGE}",
            checks=dpkg_check("debootstrap", "docker.io"),
            volumes={"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"}},
        ),
        "make-shellcheck-tools": dict(
            script=f"{WITH_MAKE} && make --no-print-directory shellcheck tools",
            checks=f"{dpkg_check('shellcheck', 'docker-compose', 'jq')}; docker-compose version --short; jq --version",
        ),
        "services": dict(script="bash platform/scripts/ensure-services.sh"),
    }


@pytest.fixture(scope="module")
def probes(docker_engine, base_image, platform_image_build):
    # platform_image_build: the platform image builds meanwhile (see tests/platform/conftest.py).
    started = {}
    try:
        for name, definition in probe_definitions().items():
            started[name] = CleanContainer(
                docker_engine, base_image, f"slipway-test-clean-room-{name}-{os.getpid()}", **definition
            ).start()
        yield started
    finally:
        for container in started.values():
            container.remove()
        # The normal case is NotFound: the probe never gets as far as making the image.
        with contextlib.suppress(docker.errors.NotFound):
            docker_engine.images.remove(BASE_PROBE_IMAGE, force=True)


def test_the_docker_engine_package_installs_where_dockerd_cannot_start(probes):
    outcome = probes["docker"].result()

    assert "installed docker.io" in outcome.script_output
    assert {"docker.io", "containerd", "runc"} <= installed_packages(outcome.checks_output)
    assert "Docker version 20.10" in outcome.checks_output
    # Then the wall an unprivileged container meets, said plainly, without waiting out the timeout.
    assert outcome.exit_code == 1, outcome.output
    assert "dockerd failed to start" in outcome.script_output
    assert "iptables" in outcome.script_output  # the daemon's own reason is shown


def test_chromium_installs_with_its_fonts_and_renders_a_page_headless(probes):
    outcome = probes["chromium"].result()

    assert outcome.exit_code == 0, outcome.output
    assert {"chromium", "fonts-dejavu-core", "fonts-liberation"} <= installed_packages(outcome.checks_output)
    assert "headless render ok" in outcome.script_output


def test_the_registry_installs_and_answers_only_with_its_credentials(probes):
    outcome = probes["registry"].result()

    assert outcome.exit_code == 0, outcome.output
    assert {"docker-registry", "apache2-utils", "curl"} <= installed_packages(outcome.checks_output)
    assert "anonymous=401" in outcome.checks_output
    assert "authenticated=200" in outcome.checks_output


def test_the_base_image_gets_debootstrap_and_bootstraps_until_it_needs_privileges(probes, docker_engine):
    outcome = probes["base-image"].result()

    assert {"debootstrap", "docker.io"} <= installed_packages(outcome.checks_output)
    assert "installed debootstrap" in outcome.script_output
    assert "debootstrap done" in outcome.script_output  # the root filesystem was made
    assert outcome.exit_code == 1, outcome.output
    assert "needs privileges (CAP_SYS_ADMIN" in outcome.script_output
    assert not docker_engine.images.list(name=BASE_PROBE_IMAGE)


def test_make_shellcheck_installs_shellcheck_then_passes_and_tools_installs_what_tests_drive(probes):
    outcome = probes["make-shellcheck-tools"].result()

    assert outcome.exit_code == 0, outcome.output
    assert "installed shellcheck" in outcome.script_output
    assert {"shellcheck", "docker-compose", "jq"} <= installed_packages(outcome.checks_output)
    assert "1.29" in outcome.checks_output  # Debian's docker-compose
    assert "jq-1.6" in outcome.checks_output


def test_services_that_are_not_installed_are_named_with_the_command_that_installs_them(probes):
    outcome = probes["services"].result()

    assert outcome.exit_code == 1, outcome.output
    assert "apt-get install -y postgresql" in outcome.script_output


@pytest.fixture
def apt_test_lock():
    # Two test runs on one machine must not remove the package under each other's feet.
    with open("/tmp/slipway-apt-install-test.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def package_installed(name: str) -> bool:
    status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True)
    return status.stdout == "install ok installed"


def apt_install(*packages: str) -> subprocess.CompletedProcess:
    """The helper as the scripts call it: sourced, under `set -euo pipefail`."""
    script = f"set -euo pipefail; source platform/scripts/_lib.sh; apt_install {' '.join(packages)}; echo done"
    return subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_apt_install_installs_a_package_that_is_missing_on_this_machine(apt_test_lock):
    if os.geteuid() != 0:
        result = apt_install("hello")
        assert result.returncode == 1
        assert "installing requires root: run 'sudo apt-get install -y hello'" in result.stderr
        return
    subprocess.run(["apt-get", "-q", "-y", "purge", "hello"], check=True, capture_output=True)
    assert not package_installed("hello")
    try:
        result = apt_install("hello")

        assert result.returncode == 0, result.stderr  # 141 was issue 9: SIGPIPE under pipefail
        assert result.stdout == "done\n"
        assert "installed hello" in result.stderr
        assert package_installed("hello")
        assert subprocess.run(["hello"], capture_output=True, text=True).stdout == "Hello, world!\n"
        # Installed already: nothing to do, and quietly.
        again = apt_install("hello")
        assert (again.returncode, again.stderr) == (0, "")
    finally:
        subprocess.run(["apt-get", "-q", "-y", "purge", "hello"], check=False, capture_output=True)
