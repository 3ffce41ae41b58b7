"""Environments, builds, rollouts, promotions, registries and notifications: one module per subject,
named as in services/, selectors/, api/ and views/."""

from deployments.models.builds import Build, BuildLogLine, BuildState
from deployments.models.environments import (
    DEFAULT_DEPLOYMENT_SETTINGS,
    Environment,
    EnvironmentGrant,
    FourEyes,
    FreezeWindow,
    ModelEnvironmentSettings,
    TargetKind,
)
from deployments.models.installation import Installation
from deployments.models.notifications import Webhook, WebhookDelivery
from deployments.models.promotions import Approval, ApprovalDecision, PromotionRequest, PromotionState
from deployments.models.registries import ContainerRegistry
from deployments.models.rollouts import Drift, Rollout, RolloutKind, RolloutLogLine, RolloutState
from deployments.models.vulnerabilities import (
    Advisory,
    AffectedPackage,
    Finding,
    FindingAcceptance,
    Severity,
    VulnerabilityDatabase,
)

__all__ = [
    "DEFAULT_DEPLOYMENT_SETTINGS",
    "Advisory",
    "AffectedPackage",
    "Approval",
    "ApprovalDecision",
    "Build",
    "BuildLogLine",
    "BuildState",
    "ContainerRegistry",
    "Drift",
    "Environment",
    "EnvironmentGrant",
    "Finding",
    "FindingAcceptance",
    "FourEyes",
    "FreezeWindow",
    "Installation",
    "ModelEnvironmentSettings",
    "PromotionRequest",
    "PromotionState",
    "Rollout",
    "RolloutKind",
    "RolloutLogLine",
    "RolloutState",
    "Severity",
    "TargetKind",
    "VulnerabilityDatabase",
    "Webhook",
    "WebhookDelivery",
]
