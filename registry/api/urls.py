"""The registry's API routes; config/api_urls.py puts every app's routes under /api/v1/."""

from registry.api.views import ModelViewSet, VersionViewSet

routes = [("models", ModelViewSet, "model"), ("versions", VersionViewSet, "version")]
