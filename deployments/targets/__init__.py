"""Rollout targets: where a model image runs (a Kubernetes namespace, a Docker host), as pure Python.

No Django and no database here: the platform's Django code builds a target per environment and calls
check(), render(), deploy(), live_state() and remove(). See base.py for the shared types.
"""

from .base import (
    Autoscaling,
    DeploySpec,
    Identity,
    LiveState,
    Progress,
    Resources,
    RolloutStopped,
    Target,
    TargetError,
    TransientTargetError,
    validate_spec,
)
from .docker_host import DockerHostTarget
from .docker_ssh import DockerSSH, parse_host_key, validate_ssh
from .docker_tls import DockerTLS, validate_tls
from .kube import KubernetesTarget
from .kubeconfig import KubeconfigError, kubeconfig_from_token, parse_kubeconfig

__all__ = [
    "Autoscaling",
    "DeploySpec",
    "DockerHostTarget",
    "DockerSSH",
    "DockerTLS",
    "Identity",
    "KubeconfigError",
    "KubernetesTarget",
    "LiveState",
    "Progress",
    "Resources",
    "RolloutStopped",
    "Target",
    "TargetError",
    "TransientTargetError",
    "kubeconfig_from_token",
    "parse_host_key",
    "parse_kubeconfig",
    "validate_spec",
    "validate_ssh",
    "validate_tls",
]
