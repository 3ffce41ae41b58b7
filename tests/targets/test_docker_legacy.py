"""Containers made by Slipway before identity labels: named slipway-{team}-{model}-d{rollout}, labelled with
team, model and deployment id, but with no installation or environment. The next rollout of the same
environment adopts and replaces the one made for an earlier rollout there (DeploySpec.adopt, filled from the
database); one made for another environment's rollout, or for another image, is left alone."""

from __future__ import annotations

import contextlib

import docker.errors
import pytest

from tests.support.services import wait_until

pytestmark = pytest.mark.slow


def old_style(engine, image: str, identity, deployment_id: int, *, serving: bool = False):
    """What the Slipway before identity labels ran (its labels, its name); unless `serving`, `sleep` stands in
    for the model server."""
    serve = {"environment": {"PORT": "8080"}, "ports": {"8080/tcp": ("127.0.0.1", None)}, "user": "10001:10001"}
    return engine.containers.run(
        image,
        *([] if serving else [["sleep", "300"]]),
        **(serve if serving else {}),
        name=f"slipway-{identity.team}-{identity.model}-d{deployment_id}",
        detach=True,
        labels={
            "app.kubernetes.io/name": identity.model,
            "app.kubernetes.io/instance": f"{identity.team}-{identity.model}",
            "app.kubernetes.io/managed-by": "slipway",
            "app.kubernetes.io/component": "model-server",
            "slipway.io/team": identity.team,
            "slipway.io/model": identity.model,
            "slipway.io/version": "1",
            "slipway.io/deployment-id": str(deployment_id),
        },
    )


def gone(engine, name: str) -> bool:
    try:
        engine.containers.get(name)
    except docker.errors.NotFound:
        return True
    return False


def test_the_next_rollout_adopts_the_container_an_older_slipway_made_for_this_environment_only(
    docker_target, docker_engine, model_images, host_spec, host_identity, recorder, base_image
):
    here = old_style(docker_engine, base_image, host_identity, 7)  # rollout 7 was in this environment
    elsewhere = old_style(docker_engine, base_image, host_identity, 8)  # rollout 8 was in another one
    other_image = old_style(docker_engine, base_image, host_identity, 9)  # 9 ran here, but another image
    try:
        spec = host_spec(model_images.v1, adopt=((7, base_image), (9, model_images.v1)))

        endpoint = docker_target.deploy(spec, **recorder.kwargs)

        assert endpoint
        assert f"Adopting {here.name}: an older Slipway made it for rollout #7 here" in recorder.text
        assert f"Stopped and removed the previous container {here.name}" in recorder.text
        assert gone(docker_engine, here.name)
        for kept in (elsewhere, other_image):
            assert docker_engine.containers.get(kept.name).status == "running", kept.name
            assert kept.name not in recorder.text
    finally:
        for container in (here, elsewhere, other_image):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)


def test_without_earlier_rollouts_here_no_old_container_is_touched(
    docker_target, docker_engine, model_images, host_spec, host_identity, recorder, base_image
):
    old = old_style(docker_engine, base_image, host_identity, 7)
    try:
        docker_target.deploy(host_spec(model_images.v1), **recorder.kwargs)

        assert docker_engine.containers.get(old.name).status == "running"
        assert "Adopting" not in recorder.text
    finally:
        old.remove(force=True)


def test_the_release_an_older_slipway_runs_is_observed_where_it_runs(
    docker_target, docker_engine, model_images, host_identity
):
    old = old_style(docker_engine, model_images.v1, host_identity, 7, serving=True)
    try:
        assert docker_target.live_state(host_identity).exists is False  # by identity labels alone: nothing

        def observed():
            live = docker_target.live_state(host_identity, adopt=((7, model_images.v1),))
            return live if live.ready == 1 else None

        live = wait_until(observed, timeout=30, message="the old container to answer ready")
        old.reload()
        port = old.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
        assert (live.exists, live.image, live.replicas) == (True, model_images.v1, 1)
        assert live.endpoint == f"http://127.0.0.1:{port}"
        # Made for another environment's rollout: not this environment's release.
        assert docker_target.live_state(host_identity, adopt=((8, model_images.v1),)).exists is False
    finally:
        old.remove(force=True)
