"""A rollout to a Docker host may adopt containers an older Slipway made (no identity labels) only for the
model's earlier releases in its own environment (the target side: tests/targets/test_docker_legacy.py)."""

from deployments.models import Rollout, RolloutState
from deployments.runners.rollouts import deploy_spec
from tests.support.factories import EnvironmentFactory, VersionFactory, succeeded_build


def rollout(environment, build, state, **fields) -> Rollout:
    return Rollout.objects.create(
        environment=environment,
        model=build.version.model,
        version=build.version,
        build=build,
        image=build.digest_reference,
        state=state,
        deployment_settings=environment.settings_for(None),
        **fields,
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
