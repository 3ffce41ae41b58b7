"""The deployments app's API routes; config/api_urls.py puts every app's routes under /api/v1/."""

from django.urls import path

from deployments.api.builds import BuildViewSet
from deployments.api.can_i import CanIView
from deployments.api.environments import EnvironmentViewSet, FreezeWindowViewSet
from deployments.api.notifications import WebhookViewSet
from deployments.api.promotions import PromotionViewSet
from deployments.api.registries import RegistryViewSet
from deployments.api.rollouts import RolloutViewSet
from deployments.api.vulnerabilities import FindingAcceptanceViewSet, VulnerabilityDatabaseView

routes = [
    ("builds", BuildViewSet, "build"),
    ("registries", RegistryViewSet, "registry"),
    ("environments", EnvironmentViewSet, "environment"),
    ("rollouts", RolloutViewSet, "rollout"),
    ("promotions", PromotionViewSet, "promotion"),
    ("freeze-windows", FreezeWindowViewSet, "freeze-window"),
    ("webhooks", WebhookViewSet, "webhook"),
    ("finding-acceptances", FindingAcceptanceViewSet, "finding-acceptance"),
]
urlpatterns = [
    path("can-i/", CanIView.as_view(), name="can-i"),
    path("vulnerability-database/", VulnerabilityDatabaseView.as_view(), name="vulnerability-database"),
]
