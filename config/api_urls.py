from rest_framework.routers import DefaultRouter

from accounts.api.views import TokenViewSet
from registry.api.views import ModelViewSet, TeamViewSet, VersionViewSet

router = DefaultRouter()
router.register("teams", TeamViewSet, basename="team")
router.register("models", ModelViewSet, basename="model")
router.register("versions", VersionViewSet, basename="version")
router.register("tokens", TokenViewSet, basename="token")

app_name = "api"
urlpatterns = router.urls
