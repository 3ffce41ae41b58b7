"""A rollout to a Docker host may adopt containers an older Slipway made (no identity labels) only for the
model's earlier releases in its own environment (the target side: tests/targets/test_docker_legacy.py)."""

import secrets

import pytest

from deployments.models import Drift, Rollout, RolloutState
from deployments.runners import drift
from deployments.runners.rollouts import deploy_spec
from tests.support.factories import EnvironmentFactory, VersionFactory, succeeded_build


def rollout(environment, build, state, **fields) -> Rollout:
    return Rollout.objects.create(
        environment=environment,
        model=build.version.model,
        version=build.version,
        build=build,
        state=state,
        deployment_settings=environment.settings_for(None),
        **{"image": build.digest_reference, **fields},
    )


def test_a_docker_rollout_may_adopt_only_the_models_earlier_releases_in_its_own_environment():
    dev, staging = EnvironmentFactory(name="dev"), EnvironmentFactory(name="staging")
    v1 = VersionFactory()
    v2 = VersionFactory(model=v1.model, number=2)
    first, second = succeeded_build(v1), succeeded_build(v2, digest_char="b")
    superseded = rollout(dev, first, RolloutState.SUPERSEDED)
    current = rollout(dev, second, RolloutState.SUCCEEDED)
    rollout(dev, second, RolloutState.FAILED)  # never ran
    rollout(staging, first, RolloutState.SUCCEEDED)  # another environment's
    rollout(dev, succeeded_build(VersionFactory(), digest_char="c"), RolloutState.SUCCEEDED)  # another model's

    spec = deploy_spec(rollout(dev, second, RolloutState.QUEUED))

    assert spec.adopt == ((superseded.pk, superseded.image), (current.pk, current.image))


def test_a_kubernetes_rollout_adopts_nothing():
    cluster = EnvironmentFactory(name="prod", target="kubernetes", namespace="ml", kube_api_url="https://k8s.example")
    build = succeeded_build(VersionFactory())
    rollout(cluster, build, RolloutState.SUCCEEDED)

    assert deploy_spec(rollout(cluster, build, RolloutState.QUEUED)).adopt == ()


@pytest.mark.slow
def test_the_drift_check_sees_the_release_in_the_container_an_older_slipway_made(docker_engine, base_image):
    dev, staging = (
        EnvironmentFactory(name=name, docker_url="unix:///var/run/docker.sock") for name in ("dev", "staging")
    )
    build = succeeded_build(VersionFactory())
    model = build.version.model
    release = rollout(dev, build, RolloutState.SUCCEEDED, image=base_image)
    elsewhere = rollout(staging, build, RolloutState.SUCCEEDED, image=base_image)
    old = docker_engine.containers.run(
        base_image,
        ["sleep", "300"],
        name=f"slipway-{model.team.slug}-{model.name}-d{release.pk}-{secrets.token_hex(3)}",
        detach=True,
        labels={"app.kubernetes.io/managed-by": "slipway", "slipway.io/team": model.team.slug,
                "slipway.io/model": model.name, "slipway.io/deployment-id": str(release.pk)},
    )  # fmt: skip
    try:
        drift.check_environment(dev)
        drift.check_environment(staging)
    finally:
        old.remove(force=True)

    release.refresh_from_db()
    elsewhere.refresh_from_db()
    # Found, by its rollout's id and image; it answers no readiness probe (a stand-in), so: unhealthy.
    assert release.drift == Drift.UNHEALTHY and old.name in release.drift_detail
    assert elsewhere.drift == Drift.MISSING  # staging's release never ran in that container
