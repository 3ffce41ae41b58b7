"""Environments, builds, rollouts, promotions and approvals: one module per concern."""

from deployments.models.builds import Build, BuildLogLine, BuildState
from deployments.models.environments import (
    DEFAULT_DEPLOYMENT_SETTINGS,
    Environment,
    ModelEnvironmentSettings,
    TargetKind,
)
from deployments.models.promotions import (
    Approval,
    ApprovalDecision,
    FreezeWindow,
    PromotionRequest,
    PromotionState,
    Webhook,
    WebhookDelivery,
)
from deployments.models.registries import ContainerRegistry
from deployments.models.rollouts import Drift, Rollout, RolloutKind, RolloutLogLine, RolloutState

__all__ = [
    "DEFAULT_DEPLOYMENT_SETTINGS",
    "Approval",
    "ApprovalDecision",
    "Build",
    "BuildLogLine",
    "BuildState",
    "ContainerRegistry",
    "Drift",
    "Environment",
    "FreezeWindow",
    "ModelEnvironmentSettings",
    "PromotionRequest",
    "PromotionState",
    "Rollout",
    "RolloutKind",
    "RolloutLogLine",
    "RolloutState",
    "TargetKind",
    "Webhook",
    "WebhookDelivery",
]
