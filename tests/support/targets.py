"""Identities for target tests: who the objects a test creates belong to.

The Docker engine is shared with every other test run on the machine, so Docker tests label their
containers with this session's own installation id and only ever look for (or remove) those.
"""

from __future__ import annotations

import secrets

import docker

from deployments.targets import Identity

# The emulated cluster is each test's own: a fixed identity gives names the tests can spell out.
KUBE_IDENTITY = Identity(installation="tests", environment="dev", environment_id=1, team="vision", model="iris")
DOCKER_INSTALLATION = f"tests-{secrets.token_hex(4)}"


def docker_identity(*, model: str = "", environment: str = "dev", environment_id: int = 1, team: str = "vision"):
    """A fresh model (unless named) of this session's installation."""
    return Identity(
        installation=DOCKER_INSTALLATION,
        environment=environment,
        environment_id=environment_id,
        team=team,
        model=model or f"t{secrets.token_hex(3)}-iris",
    )


def containers_of(engine: docker.DockerClient, identity: Identity) -> list:
    labels = [f"{key}={value}" for key, value in identity.selector().items()]
    return engine.containers.list(all=True, filters={"label": labels}, ignore_removed=True)


def remove_containers(engine: docker.DockerClient, installation: str, **labels: str) -> None:
    """Every container the installation made (narrowed by more labels, e.g. model=...), and nobody else's.

    Tests on the database use settings.INSTALLATION_ID (set per session in config.test_settings), database-free
    target tests DOCKER_INSTALLATION.
    """
    selector = [f"slipway.io/installation={installation}"] + [f"slipway.io/{k}={v}" for k, v in labels.items()]
    for container in engine.containers.list(all=True, filters={"label": selector}, ignore_removed=True):
        try:
            container.remove(force=True)
        except docker.errors.APIError as error:  # gone already (404) or being removed (409)
            if error.status_code not in (404, 409):
                raise
