"""`make stop` (platform/scripts/stop.sh) removes this installation's model containers and no other's.

Two installations share one engine here: the one whose installation id `make run` recorded in its var
folder, and another (a second checkout, or a test run). Both have containers managed by Slipway whose
images come from the same registry; only the first one's may go.
"""

import contextlib
import secrets
import subprocess

import docker.errors
import pytest

from tests.support.services import ROOT

pytestmark = pytest.mark.slow

MANAGED = {"app.kubernetes.io/managed-by": "slipway", "slipway.io/model": "iris"}


def model_container(engine, image: str, installation: str):
    return engine.containers.run(
        image,
        ["sleep", "300"],
        name=f"slipway-test-stop-{installation}",
        detach=True,
        labels={**MANAGED, "slipway.io/installation": installation, "slipway.test": "stop"},
    )


def stop(var, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "platform/scripts/stop.sh", *args],
        cwd=ROOT,
        env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SLIPWAY_VAR_DIR": str(var)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def exists(engine, name: str) -> bool:
    try:
        engine.containers.get(name)
    except docker.errors.NotFound:
        return False
    return True


@pytest.fixture
def installations(docker_engine, base_image):
    ours, theirs = f"stop-ours-{secrets.token_hex(3)}", f"stop-theirs-{secrets.token_hex(3)}"
    containers = [model_container(docker_engine, base_image, ours), model_container(docker_engine, base_image, theirs)]
    yield ours, [c.name for c in containers]
    for container in containers:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


def test_make_stop_removes_this_installations_containers_and_another_installations_survive(
    tmp_path, docker_engine, installations
):
    ours, (our_container, their_container) = installations
    var = tmp_path / "var"
    var.mkdir()
    (var / "installation-id").write_text(ours + "\n")  # as make run records it

    listed = stop(var, "--list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [f"container {our_container}"]

    stopped = stop(var)

    assert stopped.returncode == 0, stopped.stderr
    assert f"removed 1 model container(s) of the demo (installation {ours}): {our_container}" in stopped.stderr
    assert not exists(docker_engine, our_container)
    assert docker_engine.containers.get(their_container).status == "running"


def test_make_stop_without_a_recorded_installation_removes_nothing(tmp_path, docker_engine, installations):
    _, names = installations

    stopped = stop(tmp_path / "never-ran")

    assert stopped.returncode == 0, stopped.stderr
    assert "no installation id in" in stopped.stderr
    assert all(docker_engine.containers.get(name).status == "running" for name in names)


def test_a_damaged_installation_id_file_is_refused(tmp_path, docker_engine, installations):
    _, names = installations
    var = tmp_path / "var"
    var.mkdir()
    (var / "installation-id").write_text("--filter=label=x\n")

    stopped = stop(var)

    assert stopped.returncode == 1
    assert "holds no installation id" in stopped.stderr
    assert all(docker_engine.containers.get(name).status == "running" for name in names)
