"""Deployment settings have one rule (deployments.deployment_settings), applied on save through the form and
the API and again by every rollout target: what is accepted on save is never refused at rollout."""

import pytest

from deployments.models import Environment, Rollout
from deployments.runners.rollouts import deploy_spec
from deployments.selectors.environments import effective_settings
from deployments.targets import DeploySpec, DockerHostTarget, Identity, Resources, TargetError, validate_spec
from deployments.targets.manifests import render_manifests, validate_manifest
from tests.support.factories import EnvironmentFactory, VersionFactory, succeeded_build

# Where a team's admin may point an environment without connecting (this machine's engine is the site's).
CLUSTER = {"target": "kubernetes", "namespace": "ml-dev", "kube_api_url": "https://k8s.example.net", "kube_token": "t"}


def create_environment(api, owner, deployment_settings):
    return api.as_user(owner).post(
        "/api/v1/environments/",
        {"name": "dev", "team": "vision", "deployment_settings": deployment_settings, **CLUSTER},
        format="json",
    )


@pytest.mark.parametrize(
    "value",
    [
        "512K",  # Kubernetes' decimal kilo is 'k'; 'K' was accepted on save and refused at rollout
        "512m",  # a thousandth of a byte each: 'Mi' was meant
        "1.5.5Gi",
        "lots",
    ],
)
def test_a_memory_value_kubernetes_would_refuse_is_refused_on_save(api, owner, team, value):
    response = create_environment(api, owner, {"memory_limit": value})

    assert response.status_code == 400
    assert response.json()["deployment_settings"][0].startswith("memory_limit: ")
    assert not Environment.objects.exists()


@pytest.mark.parametrize(
    "deployment_settings",
    [
        {"memory_limit": "1.5Gi"},  # refused on save before, although Kubernetes takes it
        {"memory_request": "512k", "memory_limit": "0.5Gi"},
        {"cpu_request": "250m", "cpu_limit": "1.5"},
        {"memory_limit": "2e9", "cpu_limit": "2"},
        {"autoscaling": {"min_replicas": 2, "max_replicas": 4}, "env": {"LOG_LEVEL": "debug"}},
    ],
)
def test_what_is_saved_is_what_a_rollout_deploys(api, owner, team, model, deployment_settings):
    response = create_environment(api, owner, deployment_settings)
    assert response.status_code == 201, response.json()

    environment = Environment.objects.get(pk=response.json()["id"])
    build = succeeded_build(VersionFactory(model=model))
    rollout = Rollout(
        pk=1,
        environment=environment,
        model=model,
        version=build.version,
        build=build,
        image=build.digest_reference,
        deployment_settings=effective_settings(environment, model),
    )
    spec = deploy_spec(rollout)
    validate_spec(spec)
    DockerHostTarget().render(spec)
    for manifest in render_manifests(spec, "ml-dev"):
        validate_manifest(manifest, "1.37")


def test_a_model_override_above_the_limit_it_inherits_is_refused_on_save(api, owner, team, model):
    environment = EnvironmentFactory(team=team, deployment_settings={"memory_limit": "1Gi"})

    response = api.as_user(owner).post(
        f"/api/v1/environments/{environment.pk}/model-settings/",
        {"model": model.pk, "deployment_settings": {"memory_request": "2Gi"}},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["deployment_settings"] == ["memory_request: 2Gi is more than memory_limit 1Gi"]


def test_a_target_refuses_the_same_values_with_the_same_reason():

    spec = DeploySpec(
        identity=Identity(installation="tests", environment="dev", environment_id=1, team="vision", model="iris"),
        image="registry.local/vision/iris@sha256:" + "a" * 64,
        version=1,
        deployment_id=1,
        resources=Resources(memory_limit="512K"),
    )
    with pytest.raises(TargetError, match=r"^resources\.memory_limit: use a Kubernetes quantity"):
        validate_spec(spec)
