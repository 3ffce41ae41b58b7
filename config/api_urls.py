"""/api/v1/: every app's routes (each app's api/urls.py) in one router, so the API root lists them all."""

from rest_framework.routers import DefaultRouter

from accounts.api import urls as accounts
from audit.api import urls as audit
from deployments.api import urls as deployments
from registry.api import urls as registry

router = DefaultRouter()
for app in (accounts, registry, deployments, audit):
    for prefix, viewset, basename in app.routes:
        router.register(prefix, viewset, basename=basename)

app_name = "api"
urlpatterns = [*deployments.urlpatterns, *router.urls]
