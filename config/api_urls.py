from rest_framework.routers import DefaultRouter

from accounts.api.views import TokenViewSet
from deployments.api.views import BuildViewSet, RegistryViewSet
from registry.api.views import ModelViewSet, TeamViewSet, VersionViewSet

router = DefaultRouter()
router.register("teams", TeamViewSet, basename="team")
router.register("models", ModelViewSet, basename="model")
router.register("versions", VersionViewSet, basename="version")
router.register("tokens", TokenViewSet, basename="token")
router.register("builds", BuildViewSet, basename="build")
router.register("registries", RegistryViewSet, basename="registry")

app_name = "api"
urlpatterns = router.urls
