"""Pytest fixtures giving a test a Kubernetes cluster reachable through a kubeconfig.

Use them from a conftest.py (or a test module):

    pytest_plugins = ["tests.support.kube.fixtures"]  # or: from tests.support.kube.fixtures import kube_cluster

    def test_deploy(kube_cluster):
        settings.KUBECONFIG = str(kube_cluster.kubeconfig)   # what the platform code loads
        deploy_model(namespace=kube_cluster.namespace, ...)
        kube_cluster.wait_for(lambda: rollout_done(kube_cluster.apps, ...), timeout=10)

By default the cluster is emulated: one `KubeEmulator` (the API server over HTTP on 127.0.0.1) and one
`DeploymentController` (scheduler + controllers + kubelet) per test session, and a fresh namespace
`t-<random>` per test, deleted afterwards. Fault injection, denials and failure rules are reset after
each test, so tests can set them freely.

With SLIPWAY_TEST_KUBECONFIG=/path/to/kubeconfig the same tests run against that real cluster (kind,
k3s, ...): no emulator, no controller (`kube_cluster.emulator` and `.controller` are None), and tests that
need emulator-only powers call `kube_cluster.require_emulator()`, which skips them there.
"""

from __future__ import annotations

import os
import secrets
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from .controller import DeploymentController
from .emulator import KubeEmulator, wait_for

REAL_CLUSTER_ENV = "SLIPWAY_TEST_KUBECONFIG"


@dataclass
class KubeBackend:
    """What the session shares: a kubeconfig, and the emulator and controller behind it (if emulated)."""

    kubeconfig: Path
    emulator: KubeEmulator | None = None
    controller: DeploymentController | None = None


@dataclass
class KubeCluster:
    kubeconfig: Path
    namespace: str
    emulator: KubeEmulator | None
    controller: DeploymentController | None
    api_client: client.ApiClient = field(repr=False)

    @property
    def is_emulated(self) -> bool:
        return self.emulator is not None

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api_client)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api_client)

    @property
    def autoscaling(self) -> client.AutoscalingV2Api:
        return client.AutoscalingV2Api(self.api_client)

    def require_emulator(self) -> tuple[KubeEmulator, DeploymentController]:
        """For tests that inject faults or failure rules: skipped on a real cluster."""
        if self.emulator is None or self.controller is None:
            pytest.skip("needs the emulated cluster (fault injection / simulated failures)")
        return self.emulator, self.controller

    @staticmethod
    def wait_for(condition: Callable[[], Any], timeout: float = 10.0, message: str = "condition") -> Any:
        return wait_for(condition, timeout=timeout, message=message)


@pytest.fixture(scope="session")
def kube_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeBackend]:
    real = os.environ.get(REAL_CLUSTER_ENV)
    if real:
        yield KubeBackend(Path(real))
        return
    with KubeEmulator() as emulator:
        kubeconfig = emulator.write_kubeconfig(tmp_path_factory.mktemp("kube") / "kubeconfig")
        with DeploymentController(kubeconfig, log_sink=emulator.set_pod_log) as controller:
            yield KubeBackend(kubeconfig, emulator, controller)


@pytest.fixture
def kube_cluster(kube_backend: KubeBackend) -> Iterator[KubeCluster]:
    """A fresh namespace on the session's cluster; see the module docstring."""
    api_client = config.new_client_from_config(config_file=str(kube_backend.kubeconfig))
    namespace = f"t-{secrets.token_hex(4)}"
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": namespace, "labels": {"slipway.test/ephemeral": "true"}}})
    cluster = KubeCluster(
        kube_backend.kubeconfig, namespace, kube_backend.emulator, kube_backend.controller, api_client
    )
    try:
        yield cluster
    finally:
        _reset(kube_backend)
        try:
            core.delete_namespace(namespace, propagation_policy="Background")
        except ApiException as error:
            if error.status != 404:
                raise
        api_client.close()


def _reset(backend: KubeBackend) -> None:
    if backend.emulator is not None:
        backend.emulator.reset()
    if backend.controller is not None:
        if backend.controller.errors:
            warnings.warn(f"emulated controller errors: {backend.controller.errors}", stacklevel=2)
        backend.controller.reset_rules()
