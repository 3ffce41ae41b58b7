from django.urls import path
from rest_framework.routers import DefaultRouter

from accounts.api.views import TokenViewSet
from audit.api.views import AuditEventViewSet
from deployments.api.builds import BuildViewSet
from deployments.api.can_i import CanIView
from deployments.api.environments import EnvironmentViewSet, FreezeWindowViewSet
from deployments.api.notifications import WebhookViewSet
from deployments.api.promotions import PromotionViewSet
from deployments.api.registries import RegistryViewSet
from deployments.api.rollouts import RolloutViewSet
from registry.api.views import ModelViewSet, TeamViewSet, VersionViewSet

router = DefaultRouter()
router.register("teams", TeamViewSet, basename="team")
router.register("models", ModelViewSet, basename="model")
router.register("versions", VersionViewSet, basename="version")
router.register("tokens", TokenViewSet, basename="token")
router.register("builds", BuildViewSet, basename="build")
router.register("registries", RegistryViewSet, basename="registry")
router.register("environments", EnvironmentViewSet, basename="environment")
router.register("rollouts", RolloutViewSet, basename="rollout")
router.register("promotions", PromotionViewSet, basename="promotion")
router.register("freeze-windows", FreezeWindowViewSet, basename="freeze-window")
router.register("webhooks", WebhookViewSet, basename="webhook")
router.register("audit", AuditEventViewSet, basename="audit-event")

app_name = "api"
urlpatterns = [path("can-i/", CanIView.as_view(), name="can-i"), *router.urls]
