"""DockerHostTarget with the real engine, real model images (built as the platform builds them), a real registry."""

from __future__ import annotations

import secrets
import time

import pytest
import requests
from docker.errors import ImageNotFound

from deployments.targets import DockerHostTarget, Resources, RolloutStopped, TargetError
from tests.support.targets import containers_of

pytestmark = pytest.mark.slow


def http() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def ready_status(endpoint: str) -> int:
    try:
        return http().get(f"{endpoint}/v2/health/ready", timeout=2).status_code
    except requests.ConnectionError:
        return 0


def test_a_deploy_runs_the_image_by_digest_and_answers_ready_on_loopback(
    docker_engine, docker_target, host_spec, model_images, host_identity, recorder
):
    spec = host_spec(model_images.v1)

    endpoint = docker_target.deploy(spec, **recorder.kwargs)

    assert endpoint.startswith("http://127.0.0.1:")
    assert ready_status(endpoint) == 200
    (container,) = containers_of(docker_engine, host_identity)
    assert container.name == f"slipway-{host_identity.name}-d{spec.deployment_id}"
    assert container.attrs["Config"]["Image"] == model_images.v1
    assert container.labels["slipway.io/deployment-id"] == str(spec.deployment_id)
    assert container.labels["app.kubernetes.io/managed-by"] == "slipway"
    host_config = container.attrs["HostConfig"]
    assert host_config["RestartPolicy"]["Name"] == "unless-stopped"
    assert host_config["ReadonlyRootfs"] is True and host_config["CapDrop"] == ["ALL"]
    assert host_config["Memory"] == 1024**3
    bindings = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"]
    assert {b["HostIp"] for b in bindings} == {"127.0.0.1"}
    assert container.attrs["Config"]["User"] == "10001:10001"
    assert "Waiting for" in recorder.text and "Ready: " in recorder.text
    assert recorder.progress[-1].ready == 1


def test_a_redeploy_starts_the_new_container_before_the_old_one_stops(
    docker_engine, docker_target, host_spec, model_images, host_identity, recorder
):
    old_endpoint = docker_target.deploy(host_spec(model_images.v1), log=lambda _: None,
                                        on_progress=lambda _: None, should_stop=lambda: None)  # fmt: skip
    at_ready: dict[str, object] = {}

    def on_line(line: str) -> None:
        if line.startswith("Ready: "):  # the new one is ready: the old one must still be serving now
            at_ready["old"] = ready_status(old_endpoint)
            at_ready["containers"] = len(containers_of(docker_engine, host_identity))

    recorder.on_line = on_line
    second = host_spec(model_images.v2)
    new_endpoint = docker_target.deploy(second, **recorder.kwargs)

    assert at_ready == {"old": 200, "containers": 2}
    assert new_endpoint != old_endpoint
    assert ready_status(new_endpoint) == 200
    assert ready_status(old_endpoint) == 0, "the previous container is gone"
    (container,) = containers_of(docker_engine, host_identity)
    assert container.name.endswith(f"-d{second.deployment_id}")
    assert "Stopped and removed the previous container" in recorder.text
    live = docker_target.live_state(host_identity)
    assert (live.exists, live.image, live.replicas, live.ready, live.endpoint) == (
        True, model_images.v2, 1, 1, new_endpoint
    )  # fmt: skip


def test_failing_versions_are_removed_and_the_previous_container_keeps_serving(
    docker_engine, docker_target, host_spec, model_images, host_identity, recorder
):
    endpoint = docker_target.deploy(host_spec(model_images.v1), log=lambda _: None,
                                    on_progress=lambda _: None, should_stop=lambda: None)  # fmt: skip
    docker_target.ready_timeout = 120  # neither failure may wait for it

    started = time.monotonic()
    with pytest.raises(TargetError) as cannot_load:
        docker_target.deploy(host_spec(model_images.broken, env={"SLIPWAY_LOAD_FAILURE_GRACE": "120"}),
                             **recorder.kwargs)  # fmt: skip
    assert time.monotonic() - started < 20  # on the runtime's report, not when it exits after its grace
    with pytest.raises(TargetError) as crashed:
        docker_target.deploy(host_spec(model_images.crash), **recorder.kwargs)

    assert str(cannot_load.value).startswith("The model server reported a load failure after ")
    assert str(cannot_load.value).endswith(": model failed to load: RuntimeError: the weights file is corrupt")
    assert str(crashed.value).startswith("The container exited with code 2: invalid_config: cannot read")
    # The runtime's own explanation survives the tail, although readiness probes were answered every 0.1 s.
    assert '"event": "model_load_failed"' in recorder.text
    assert '"event": "invalid_config"' in recorder.text
    assert recorder.text.count(f"Still serving: slipway-{host_identity.name}-d1") == 2
    assert ready_status(endpoint) == 200
    (survivor,) = containers_of(docker_engine, host_identity)
    assert survivor.attrs["Config"]["Image"] == model_images.v1
    assert docker_target.live_state(host_identity).image == model_images.v1


def test_an_image_the_host_lacks_is_pulled_by_digest_with_the_credentials(
    docker_engine, docker_target, host_spec, model_images, recorder
):
    # A copy under a new repository, then forgotten locally: the deploy must pull it by digest.
    repository = f"{model_images.registry_host}/targets/pulled-{secrets.token_hex(3)}"
    docker_engine.images.get(model_images.v1).tag(repository, "copy")
    digest = ""
    for line in docker_engine.api.push(repository, tag="copy", auth_config=model_images.registry_auth, stream=True,
                                       decode=True):  # fmt: skip
        digest = (line.get("aux") or {}).get("Digest", digest)
    reference = f"{repository}@{digest}"
    docker_engine.images.remove(f"{repository}:copy")  # its last tag: the repository digest goes too
    with pytest.raises(ImageNotFound):
        docker_engine.images.get(reference)

    try:
        endpoint = docker_target.deploy(host_spec(reference), **recorder.kwargs)

        assert ready_status(endpoint) == 200
        assert f"Pulling {reference}" in recorder.text
        assert f"Status: Downloaded newer image for {reference}" in recorder.text
    finally:
        docker_engine.images.remove(reference, force=True)  # only this reference: the image keeps its v1 tag


@pytest.mark.parametrize(
    ("auth", "reason"),
    [("right", "manifest unknown"), ("wrong", "unauthorized: authentication required"), (None, "no basic auth")],
)
def test_an_image_that_cannot_be_pulled_is_a_target_error_with_the_registry_reason(
    docker_engine, host_spec, model_images, auth, reason
):
    credentials = {"right": model_images.registry_auth, "wrong": {"username": "ci", "password": "wrong"}}.get(auth)
    missing = f"{model_images.registry_host}/targets/iris@sha256:{'0' * 64}"

    with DockerHostTarget(registry_auth=credentials) as target, pytest.raises(TargetError) as failure:
        target.deploy(host_spec(missing), log=lambda _: None, on_progress=lambda _: None, should_stop=lambda: None)

    assert str(failure.value).startswith(f"The Docker host cannot pull {missing}: ")
    assert reason in str(failure.value)


def test_should_stop_removes_the_new_container(docker_engine, docker_target, host_spec, model_images, host_identity):
    docker_target.ready_timeout = 30
    calls = []

    def stop_once_started() -> str | None:
        calls.append(1)
        return "Cancelled by alice." if len(calls) > 2 else None

    with pytest.raises(RolloutStopped, match="Cancelled by alice"):
        docker_target.deploy(host_spec(model_images.broken), log=lambda _: None, on_progress=lambda _: None,
                             should_stop=stop_once_started)  # fmt: skip

    assert containers_of(docker_engine, host_identity) == []


def test_live_state_and_remove(docker_engine, docker_target, host_spec, model_images, host_identity):
    assert docker_target.live_state(host_identity).exists is False
    docker_target.deploy(host_spec(model_images.v1), log=lambda _: None, on_progress=lambda _: None,
                         should_stop=lambda: None)  # fmt: skip

    # `docker stop` behind Slipway's back: nothing serves any more.
    (container,) = containers_of(docker_engine, host_identity)
    container.stop(timeout=3)
    assert docker_target.live_state(host_identity).exists is False

    docker_target.remove(host_identity)
    docker_target.remove(host_identity)
    assert containers_of(docker_engine, host_identity) == []


def test_check_reports_the_engine_version(docker_engine):
    result = DockerHostTarget().check()
    assert result["ok"] is True
    assert result["server_version"] == docker_engine.version()["Version"]

    unreachable = DockerHostTarget("unix:///nonexistent/docker.sock").check()
    assert unreachable["ok"] is False
    assert "unix:///nonexistent/docker.sock did not answer" in unreachable["message"]


def test_secret_refs_and_tags_are_refused_before_anything_runs(host_spec, model_images):
    target = DockerHostTarget("unix:///nonexistent/docker.sock")

    with pytest.raises(TargetError, match=r"^secret_refs: a Docker host has no Kubernetes Secrets"):
        target.render(host_spec(model_images.v1, secret_refs=("iris-db",)))
    with pytest.raises(TargetError, match=r"^image: .* is not a reference by digest"):
        target.render(host_spec(model_images.v1.split("@")[0] + ":v1"))


def test_a_container_that_cannot_start_is_removed(docker_engine, docker_target, host_spec, model_images, host_identity):
    # This host has no GPU runtime: the engine creates the container, then refuses to start it.
    spec = host_spec(model_images.v1, resources=Resources(gpus=1))

    with pytest.raises(TargetError, match=r"^The Docker engine refused starting the container .*(gpu|device)"):
        docker_target.deploy(spec, log=lambda _: None, on_progress=lambda _: None, should_stop=lambda: None)

    assert containers_of(docker_engine, host_identity) == []


def test_a_retried_deploy_adopts_its_own_running_container(
    docker_engine, docker_target, host_spec, model_images, host_identity, recorder
):
    spec = host_spec(model_images.v1)
    first = docker_target.deploy(spec, log=lambda _: None, on_progress=lambda _: None, should_stop=lambda: None)
    (container,) = containers_of(docker_engine, host_identity)

    again = docker_target.deploy(spec, **recorder.kwargs)  # e.g. the worker died before recording success

    assert again == first
    assert [c.id for c in containers_of(docker_engine, host_identity)] == [container.id]
    assert "already runs this image (a retried rollout)" in recorder.text
