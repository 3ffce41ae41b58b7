"""Fixtures for the rollout target tests: an emulated (or real) cluster, and real model images on a real engine.

The Docker-host tests need images that speak the runtime's health endpoints. They are built once per session
by the platform's own code (deployments.imaging: the context of a `python` model, numpy wheels downloaded on
the host and installed with --no-index, built and pushed by its DockerEngine) to the session's registry,
and deployed by digest:
  ready   - model.py loads at once (v1 and v2 differ, so their digests differ)
  broken  - model.py raises in load(): readiness reports the load failure (503, state "failed"), then the
            runtime exits with code 3
  crash   - the runtime exits at start (its model folder does not exist)
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import pytest
from django.conf import settings

from deployments.imaging.context import BuildSpec, prepare_context
from deployments.imaging.engine import DockerEngine
from deployments.targets import DeploySpec, DockerHostTarget, Identity, KubernetesTarget, Progress
from tests.support.kube.fixtures import kube_backend, kube_cluster  # noqa: F401
from tests.support.targets import DOCKER_INSTALLATION, KUBE_IDENTITY, docker_identity, remove_containers

TEST_LABEL = "slipway.test/targets"

KEPT_REPOSITORY = "slipway-test/targets-iris"
REAL_IMAGE_ENV = "SLIPWAY_TEST_KUBE_IMAGE"
READY_MODEL = """
class Model:
    def load(self, folder):
        self.answer = {answer}

    def predict(self, inputs):
        return {{"answer": [self.answer]}}
"""
BROKEN_MODEL = """
class Model:
    def load(self, folder):
        raise RuntimeError("the weights file is corrupt")

    def predict(self, inputs):
        return {}
"""


@dataclass
class Recorder:
    """log / on_progress / should_stop for a deploy, remembering everything (thread-safe enough for tests)."""

    lines: list[str] = field(default_factory=list)
    progress: list[Progress] = field(default_factory=list)
    stop_reason: str | None = None
    on_line: Callable[[str], None] | None = None
    on_progress_hook: Callable[[Progress], None] | None = None

    def log(self, line: str) -> None:
        self.lines.append(line)
        if self.on_line is not None:
            self.on_line(line)

    def on_progress(self, progress: Progress) -> None:
        self.progress.append(progress)
        if self.on_progress_hook is not None:
            self.on_progress_hook(progress)

    def should_stop(self) -> str | None:
        return self.stop_reason

    @property
    def kwargs(self) -> dict:
        return {"log": self.log, "on_progress": self.on_progress, "should_stop": self.should_stop}

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def fake_digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


# --- Kubernetes --------------------------------------------------------------------------------------


@pytest.fixture
def kube_target(kube_cluster) -> Iterator[KubernetesTarget]:  # noqa: F811 - the imported fixture
    target = KubernetesTarget(
        kube_cluster.kubeconfig.read_text(),
        kube_cluster.namespace,
        request_timeout=5,
        retries=3,
        backoff=0.05,
        poll_seconds=0.05,
        unschedulable_grace=0.5,
        image_pull_grace=2.0,
    )
    yield target
    target.close()


@pytest.fixture
def image_ref(kube_cluster) -> Callable[[str], str]:  # noqa: F811 - the imported fixture
    """A reference by digest; the emulated kubelet decides the outcome from the repository name.

    On a real cluster (SLIPWAY_TEST_KUBECONFIG) "registry.local" images fail to pull as they should, but a
    rollout meant to succeed needs a real model image: SLIPWAY_TEST_KUBE_IMAGE (by digest), or the test skips;
    outcomes only the emulator can stage ("crashloop") skip there too.
    """

    def make(repository: str) -> str:
        if not kube_cluster.is_emulated and repository != "bad-image":
            if repository == "crashloop" or not os.environ.get(REAL_IMAGE_ENV):
                pytest.skip(f"needs the emulated cluster or {REAL_IMAGE_ENV} on a real one")
            return os.environ[REAL_IMAGE_ENV]
        return f"registry.local/vision/{repository}@{fake_digest(repository + secrets.token_hex(4))}"

    return make


@pytest.fixture
def spec_for(image_ref) -> Callable[..., DeploySpec]:
    counter = iter(range(1, 10_000))

    def make(repository: str = "iris", **overrides) -> DeploySpec:
        deployment_id = next(counter)
        values = {
            "identity": KUBE_IDENTITY,
            "image": image_ref(repository),
            "version": deployment_id,
            "deployment_id": deployment_id,
            **overrides,
        }
        return DeploySpec(**values)

    return make


# --- Docker host -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelImages:
    v1: str
    v2: str
    broken: str
    crash: str
    registry_auth: dict
    registry_host: str


def _engine() -> DockerEngine:
    return DockerEngine(settings.DOCKER_HOST, timeout=settings.DOCKER_TIMEOUT)


def _build(context: Path, dockerfile: str, tag: str, labels: dict[str, str]) -> None:
    _engine().build_image(
        context=context, dockerfile=dockerfile, tag=tag, labels=labels, log=lambda _: None, should_stop=lambda: None
    )


def _push(repository: str, tag: str, auth: dict) -> str:
    digest, _ = _engine().push_image(repository=repository, tag=tag, auth=auth, log=lambda _: None)
    return f"{repository}@{digest}"


def _python_model_image(base_image, workdir: Path, wheels: Path, source: str, version: int, tag: str) -> None:
    artifact = workdir / f"model-{version}.py"
    artifact.write_text(source)
    spec = BuildSpec(
        team="vision",
        model="iris",
        version=version,
        framework="python",
        artifact_path=artifact,
        artifact_name="model.py",
        artifact_sha256=hashlib.sha256(source.encode()).hexdigest(),
        requirements=(),
        signature={},
        source_commit="tests",
        build_id=version,
        base_image=base_image,
    )
    context = prepare_context(spec, workdir / f"build-{version}", wheel_cache=wheels, log=lambda _: None)
    _build(context.path, context.dockerfile, tag, {**context.labels, TEST_LABEL: "image"})


@pytest.fixture(scope="session")
def model_images(docker_engine, base_image, oci_registry, tmp_path_factory) -> Iterator[ModelImages]:
    workdir = tmp_path_factory.mktemp("target-images")
    wheels = tmp_path_factory.mktemp("target-wheels")
    repository = f"{oci_registry.host}/targets/iris"
    auth = {"username": oci_registry.username, "password": oci_registry.password}
    sources = {"v1": READY_MODEL.format(answer=1), "v2": READY_MODEL.format(answer=2), "broken": BROKEN_MODEL}
    refs: dict[str, str] = {}
    try:
        for version, (tag, source) in enumerate(sources.items(), start=1):
            _python_model_image(base_image, workdir, wheels, source, version, f"{repository}:{tag}")
            refs[tag] = _push(repository, tag, auth)
        crash = workdir / "crash"
        crash.mkdir()
        (crash / "Dockerfile").write_text(f"FROM {repository}:v1\nENV SLIPWAY_MODEL_DIR=/nonexistent\n")
        _build(crash, "Dockerfile", f"{repository}:crash", {TEST_LABEL: "image"})
        refs["crash"] = _push(repository, "crash", auth)
        yield ModelImages(**refs, registry_auth=auth, registry_host=oci_registry.host)
    finally:
        _keep_for_the_build_cache(docker_engine, repository, [*sources, "crash"])


def _keep_for_the_build_cache(engine: docker.DockerClient, repository: str, tags: list[str]) -> None:
    """Drop this session's registry-specific tags (its port changes every session) but keep the images
    under one stable local name, so the next session's builds hit the layer cache."""
    for tag in tags:
        try:
            engine.images.get(f"{repository}:{tag}").tag(KEPT_REPOSITORY, tag)
            engine.images.remove(f"{repository}:{tag}", force=True)
        except docker.errors.ImageNotFound:
            pass


@pytest.fixture
def host_identity() -> Identity:
    """A fresh model per test, so tests never touch each other's (or anyone else's) containers."""
    return docker_identity()


@pytest.fixture
def docker_target(docker_engine, model_images, host_identity) -> Iterator[DockerHostTarget]:
    target = DockerHostTarget(
        ready_timeout=30, registry_auth=model_images.registry_auth, poll_seconds=0.1, stop_timeout=3
    )
    yield target
    target.close()
    remove_containers(docker_engine, DOCKER_INSTALLATION, model=host_identity.model)


@pytest.fixture
def host_spec(model_images, host_identity) -> Callable[..., DeploySpec]:
    counter = iter(range(1, 10_000))

    def make(image: str, **overrides) -> DeploySpec:
        deployment_id = next(counter)
        values = {
            "identity": host_identity,
            "image": image,
            "version": deployment_id,
            "deployment_id": deployment_id,
            **overrides,
        }
        return DeploySpec(**values)

    return make
