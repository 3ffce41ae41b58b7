"""The production shapes the README names: docker-compose.yml and platform/k8s, checked with the tools
an operator runs (Debian's docker-compose, kubectl kustomize) and validated object by object."""

import contextlib
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import docker
import kubernetes_validate
import pytest
import yaml

from tests.support.kubectl import MINIMUM, client_version, find_kubectl
from tests.support.services import ROOT

README = (ROOT / "README.md").read_text()


# --- docker-compose.yml ---------------------------------------------------------------------------


def compose(*args: str, env: dict) -> subprocess.CompletedProcess:
    docker_compose = shutil.which("docker-compose")
    if docker_compose is None:
        pytest.fail("docker-compose is missing: `make tools` installs Debian's", pytrace=False)
    clean = {key: value for key, value in os.environ.items() if not key.startswith("SLIPWAY_")}
    return subprocess.run(
        [docker_compose, "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yml"), *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_docker_compose_config_accepts_the_file_and_builds_every_role_from_the_given_base():
    result = compose("config", env={"SLIPWAY_SECRET_KEY": "k", "SLIPWAY_BASE_IMAGE": "registry.local/py:3.11"})
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]

    assert set(services) == {"web", "worker", "rollouts", "drift", "beat", "postgres", "redis"}
    for role in ("web", "worker", "rollouts", "drift", "beat"):
        service = services[role]
        assert service["build"]["dockerfile"] == "platform/Dockerfile"
        assert service["build"]["args"] == {"BASE_IMAGE": "registry.local/py:3.11"}
        assert service["command"] == [role]
        assert service["image"] == "slipway/platform:latest"  # one image, built once, for every role
        assert service["environment"]["SLIPWAY_SECRET_KEY"] == "k"
        assert service["environment"]["DATABASE_URL"].endswith("@postgres:5432/slipway")
    assert "/readyz" in " ".join(services["web"]["healthcheck"]["test"])
    assert "/var/run/docker.sock:/var/run/docker.sock:rw" in services["worker"]["volumes"]
    assert "/var/run/docker.sock:/var/run/docker.sock:rw" in services["rollouts"]["volumes"]  # it deploys to them
    assert "/var/run/docker.sock:/var/run/docker.sock:rw" in services["drift"]["volumes"]  # it inspects Docker hosts


def test_docker_compose_defaults_to_the_official_python_base():
    result = compose("config", env={"SLIPWAY_SECRET_KEY": "k"})
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["services"]["web"]["build"]["args"] == {"BASE_IMAGE": "python:3.11-slim"}


def test_docker_compose_refuses_to_start_without_a_secret_key():
    result = compose("config", env={})
    assert result.returncode != 0
    assert "set SLIPWAY_SECRET_KEY" in result.stderr


@pytest.mark.slow
def test_docker_compose_builds_the_platform_image_from_the_local_base(platform_image, base_image, docker_engine):
    # After the session's own build of the same Dockerfile and base, every layer comes from cache.
    tag = f"slipway-test/platform-compose:{os.getpid()}"
    env = {"SLIPWAY_SECRET_KEY": "k", "SLIPWAY_BASE_IMAGE": base_image, "SLIPWAY_IMAGE": tag}
    try:
        result = compose("build", "web", env=env)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        built = docker_engine.images.get(tag)
        assert built.id == docker_engine.images.get(platform_image).id
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):  # nothing was tagged when the build failed
            docker_engine.images.remove(tag)


# --- platform/k8s ---------------------------------------------------------------------------------


def kubernetes_version_in_readme() -> str:
    match = re.search(r"Kubernetes (1\.\d+) API", README)
    assert match, "the README names the Kubernetes version platform/k8s is validated against"
    return match.group(1)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """What `kubectl apply -k platform/k8s` would send, rendered as the README says: secret.env from the example."""
    folder = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(ROOT / "platform" / "k8s", folder)
    shutil.copy(folder / "secret.env.example", folder / "secret.env")
    kubectl = find_kubectl()
    result = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [obj for obj in yaml.safe_load_all(result.stdout) if obj]


def test_every_rendered_object_is_valid_for_the_kubernetes_version_the_readme_names(rendered):
    version = kubernetes_version_in_readme()
    kinds = sorted(obj["kind"] for obj in rendered)

    assert kinds == [
        "ConfigMap",
        "Deployment",
        "Deployment",
        "Deployment",
        "Deployment",
        "Deployment",
        "Job",
        "Namespace",
        "PersistentVolumeClaim",
        "Secret",
        "Service",
    ]
    for obj in rendered:
        kubernetes_validate.validate(obj, version, strict=True)  # raises, naming the object and field


def test_strict_validation_would_catch_a_mistyped_field(rendered):
    deployment = next(obj for obj in rendered if obj["kind"] == "Deployment")
    deployment["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_version_in_readme(), strict=True)


def test_references_between_the_rendered_objects_hold(rendered):
    # What schema validation does not see: names kustomize suffixed, selectors, images.
    by_kind = {}
    for obj in rendered:
        by_kind.setdefault(obj["kind"], []).append(obj)
    names = {(obj["kind"], obj["metadata"]["name"]) for obj in rendered}
    namespaced = [obj for obj in rendered if obj["kind"] != "Namespace"]
    assert all(obj["metadata"].get("namespace") == "slipway" for obj in namespaced)
    workloads = by_kind["Deployment"] + by_kind["Job"]
    for workload in workloads:
        pod = workload["spec"]["template"]
        if workload["kind"] == "Deployment":
            assert workload["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        for container in pod["spec"]["containers"]:
            assert container["image"] == "registry.example.internal/slipway/platform:latest"
            for source in container["envFrom"]:
                if "configMapRef" in source:
                    assert ("ConfigMap", source["configMapRef"]["name"]) in names
                if "secretRef" in source:
                    assert ("Secret", source["secretRef"]["name"]) in names
        for volume in pod["spec"].get("volumes", []):
            assert ("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]) in names
    web_pods = next(d for d in by_kind["Deployment"] if d["metadata"]["name"] == "slipway-web")["spec"]["template"]
    service = by_kind["Service"][0]
    assert service["spec"]["selector"].items() <= web_pods["metadata"]["labels"].items()
    assert {args for w in workloads for args in w["spec"]["template"]["spec"]["containers"][0]["args"]} == {
        "web",
        "worker",
        "rollouts",
        "drift",
        "beat",
        "migrate",
    }
    config = by_kind["ConfigMap"][0]["data"]
    assert config["SLIPWAY_MIGRATE_ON_START"] == "false"  # the Job migrates; web pods do not race it


def test_this_machines_kubectl_is_used_when_it_is_recent_enough():
    on_path = shutil.which("kubectl")
    if on_path is None or client_version(on_path) < MINIMUM:
        pytest.skip("this machine has no recent kubectl on PATH: the wheel's is used (tested below)")
    assert find_kubectl() == on_path


def test_without_kubectl_on_the_path_the_wheels_kubectl_renders_the_same(tmp_path):
    kubectl = find_kubectl(search_path=str(tmp_path))  # an empty folder: no kubectl anywhere on it

    assert Path(kubectl).name == "kubectl"
    assert Path(kubectl).parent != tmp_path
    assert client_version(kubectl) >= MINIMUM
    folder = tmp_path / "k8s"
    shutil.copytree(ROOT / "platform" / "k8s", folder)
    shutil.copy(folder / "secret.env.example", folder / "secret.env")
    result = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "name: slipway-web" in result.stdout


def test_a_kubectl_too_old_for_the_labels_field_is_passed_over(tmp_path):
    # Debian's kubernetes-client answers like this (1.20): kustomize there rejects `labels:`.
    old = tmp_path / "kubectl"
    old.write_text(
        "#!/bin/sh\n"
        """echo '{"clientVersion": {"major": "1", "minor": "20", "gitVersion": "v1.20.15"}}'\n"""
    )
    old.chmod(old.stat().st_mode | stat.S_IXUSR)

    assert client_version(str(old)) == (1, 20)
    chosen = find_kubectl(search_path=str(tmp_path))
    assert chosen != str(old)
    assert client_version(chosen) >= MINIMUM
