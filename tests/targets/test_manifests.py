"""render(): the manifests as applied, valid for the oldest and newest Kubernetes the schemas cover."""

from __future__ import annotations

import re

import kubernetes_validate
import pytest

from deployments.targets import (
    Autoscaling,
    DeploySpec,
    Identity,
    KubernetesTarget,
    Resources,
    TargetError,
    kubeconfig_from_token,
)
from deployments.targets.manifests import schema_version, supported_minors, validate_manifest

OLDEST, NEWEST = f"1.{supported_minors()[0]}", f"1.{supported_minors()[-1]}"
IMAGE = "registry.example.com/vision/iris@sha256:" + "ab" * 32
VARIANTS = {
    "plain": {},
    "autoscaling": {"autoscaling": Autoscaling(min_replicas=2, max_replicas=5, target_cpu_percent=70)},
    "gpus": {"resources": Resources(cpu_limit="2", memory_limit="8Gi", gpus=2)},
    "secrets": {"secret_refs": ("iris-db", "iris-api-key"), "env": {"LOG_LEVEL": "debug", "PORT": "9999"}},
}


def offline_target(version: str) -> KubernetesTarget:
    """No server is contacted: the version is given, and render() only validates offline."""
    kubeconfig = kubeconfig_from_token("https://127.0.0.1:1", "", "unused-token", "models")
    return KubernetesTarget(kubeconfig, "models", kubernetes_version=version)


IDENTITY = {"installation": "i0123456789ab", "environment": "staging", "environment_id": 7, "team": "vision",
            "model": "iris"}  # fmt: skip
NAME = Identity(**IDENTITY).name


def spec(**overrides) -> DeploySpec:
    identity = Identity(**{key: overrides.pop(key, value) for key, value in IDENTITY.items()})
    values = {"identity": identity, "image": IMAGE, "version": 3, "deployment_id": 41, "replicas": 2, **overrides}
    return DeploySpec(**values)


def by_kind(manifests: list[dict]) -> dict[str, dict]:
    return {m["kind"]: m for m in manifests}


def test_the_schemas_cover_the_versions_we_claim():
    assert (OLDEST, NEWEST) == ("1.25", "1.37")


@pytest.mark.parametrize("version", [OLDEST, NEWEST])
@pytest.mark.parametrize("variant", VARIANTS)
def test_rendered_manifests_are_valid_for_the_oldest_and_newest_kubernetes(version, variant):
    manifests = offline_target(version).render(spec(**VARIANTS[variant]))

    for manifest in manifests:
        kubernetes_validate.validate(manifest, version, strict=True)
    kinds = [m["kind"] for m in manifests]
    assert kinds == ["Service", "Deployment"] + (["HorizontalPodAutoscaler"] if variant == "autoscaling" else [])


def test_the_deployment_runs_the_image_by_digest_locked_down_and_probed():
    deployment = by_kind(offline_target(NEWEST).render(spec()))["Deployment"]

    labels = deployment["metadata"]["labels"]
    assert labels["app.kubernetes.io/instance"] == NAME
    assert labels["app.kubernetes.io/version"] == "v3"
    assert labels["app.kubernetes.io/managed-by"] == "slipway"
    assert labels["slipway.io/deployment-id"] == "41"
    # Whose it is: the installation, the environment, the team and the model.
    assert {key: labels[key] for key in ("slipway.io/installation", "slipway.io/environment",
                                         "slipway.io/environment-id", "slipway.io/team", "slipway.io/model")} == {
        "slipway.io/installation": "i0123456789ab", "slipway.io/environment": "staging",
        "slipway.io/environment-id": "7", "slipway.io/team": "vision", "slipway.io/model": "iris",
    }  # fmt: skip
    assert deployment["spec"]["template"]["metadata"]["labels"]["slipway.io/environment-id"] == "7"
    assert deployment["metadata"]["annotations"]["slipway.io/deployment-id"] == "41"
    # Selectors are immutable: nothing that changes per version or deployment may be in it.
    assert deployment["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "iris",
        "app.kubernetes.io/instance": NAME,
    }
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": 0}
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == IMAGE
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http", "scheme": "HTTP"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_the_service_reaches_the_named_port():
    service = by_kind(offline_target(NEWEST).render(spec()))["Service"]

    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert service["spec"]["selector"] == {
        "app.kubernetes.io/name": "iris",
        "app.kubernetes.io/instance": NAME,
    }


def test_with_autoscaling_the_hpa_owns_replicas():
    manifests = by_kind(offline_target(NEWEST).render(spec(**VARIANTS["autoscaling"])))

    assert "replicas" not in manifests["Deployment"]["spec"]
    hpa = manifests["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 5)
    assert hpa["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}


def test_gpus_are_limits_with_a_toleration():
    pod = by_kind(offline_target(NEWEST).render(spec(**VARIANTS["gpus"])))["Deployment"]["spec"]["template"]["spec"]

    resources = pod["containers"][0]["resources"]
    assert resources["limits"] == {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "2"}
    assert resources["requests"] == {"cpu": "100m", "memory": "256Mi"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]


def test_secrets_become_env_from_and_env_is_a_sorted_list_with_the_port():
    container = by_kind(offline_target(NEWEST).render(spec(**VARIANTS["secrets"])))["Deployment"]["spec"]["template"][
        "spec"
    ]["containers"][0]

    assert container["envFrom"] == [{"secretRef": {"name": "iris-db"}}, {"secretRef": {"name": "iris-api-key"}}]
    # The port the probes and Service use wins over a PORT given in env.
    assert container["env"] == [{"name": "PORT", "value": "8080"}, {"name": "LOG_LEVEL", "value": "debug"}]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"image": "registry.example.com/vision/iris:v3"}, "image"),
        ({"model": "Iris_Model"}, "name"),
        ({"team": "9-vision"}, "name"),
        ({"environment": "dev/eu"}, "environment"),
        ({"installation": ""}, "installation"),
        ({"environment_id": 0}, "environment_id"),
        ({"resources": Resources(cpu_request="lots")}, "resources.cpu_request"),
        ({"resources": Resources(memory_request="2Gi", memory_limit="1Gi")}, "resources.memory_request"),
        ({"autoscaling": Autoscaling(min_replicas=3, max_replicas=2)}, "autoscaling"),
        ({"max_surge": "0", "max_unavailable": "0%"}, "max_surge"),
        ({"env": {"BAD NAME": "x"}}, "env"),
        ({"secret_refs": ("Not_A_Secret",)}, "secret_refs"),
        ({"team": "a" * 64}, "team"),
    ],
)
def test_invalid_specs_are_refused_naming_the_field(overrides, field):
    with pytest.raises(TargetError, match=rf"^{field}"):
        offline_target(NEWEST).render(spec(**overrides))


def test_a_schema_violation_is_a_target_error_naming_the_field():
    deployment = by_kind(offline_target(NEWEST).render(spec()))["Deployment"]
    deployment["spec"]["replicas"] = "two"

    with pytest.raises(TargetError, match=rf"Deployment {NAME} manifest is invalid for Kubernetes 1.37: spec.replicas"):
        validate_manifest(deployment, "1.37")


@pytest.mark.parametrize(
    ("server", "schemas"), [("v1.30.2", "1.30"), ("1.24", OLDEST), ("v1.9.0", OLDEST), ("1.45+", NEWEST)]
)
def test_cluster_versions_map_to_the_nearest_shipped_schemas(server, schemas):
    assert schema_version(server) == schemas


def test_names_are_unique_per_installation_environment_team_and_model_and_valid_resource_names():
    base = Identity(**IDENTITY)
    variants = [
        base,
        Identity(**{**IDENTITY, "environment_id": 8}),
        Identity(**{**IDENTITY, "installation": "i999"}),
        # `f"{team}-{model}"` once gave these two the same name: one team's rollout replaced the other's.
        Identity(**{**IDENTITY, "team": "ml", "model": "search-ranker"}),
        Identity(**{**IDENTITY, "team": "ml-search", "model": "ranker"}),
        Identity(**{**IDENTITY, "team": "t" * 63, "model": "m" * 63}),
    ]

    names = [identity.name for identity in variants]

    assert len(set(names)) == len(names)
    assert names[0] == base.name == Identity(**{**IDENTITY, "environment": "renamed"}).name, "stable across renames"
    assert names[3].startswith("ml-search-ranker-") and names[4].startswith("ml-search-ranker-")
    for name in names:
        assert len(name) <= 63 and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name), name
