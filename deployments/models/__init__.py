"""Environments, builds, rollouts, promotions and approvals: one module per concern."""

from deployments.models.builds import Build, BuildLogLine, BuildState
from deployments.models.registries import ContainerRegistry

__all__ = ["Build", "BuildLogLine", "BuildState", "ContainerRegistry"]
