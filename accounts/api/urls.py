"""The accounts app's API routes; config/api_urls.py puts every app's routes under /api/v1/."""

from accounts.api.views import TeamViewSet, TokenViewSet

routes = [("teams", TeamViewSet, "team"), ("tokens", TokenViewSet, "token")]
