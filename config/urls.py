from django.contrib import admin
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts.views import SignInView, SsoCallbackView, SsoStartView, sign_out
from config import health, metrics
from deployments.views.overview import overview
from deployments.views.versions import model_detail, version_compare, version_detail


def favicon(request):
    # Browsers ask for /favicon.ico whatever a page links to (the admin and API docs link none).
    return redirect(static("favicon.svg"), permanent=True)


urlpatterns = [
    path("favicon.ico", favicon, name="favicon"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("login/", SignInView.as_view(), name="login"),
    path("logout/", sign_out, name="logout"),
    # Single sign-on: the callback is the URL to register at the identity provider.
    path("oidc/authenticate/", SsoStartView.as_view(), name="sso-start"),
    path("oidc/callback/", SsoCallbackView.as_view(), name="sso-callback"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("config.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its script as a file: no inline script, as the Content-Security-Policy wants.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("", overview, name="home"),
    # The model and version pages show what was uploaded (registry) and where it runs (deployments).
    path("models/<slug:team>/<slug:name>/", model_detail, name="model-detail"),
    path("models/<slug:team>/<slug:name>/compare/", version_compare, name="version-compare"),
    path("models/<slug:team>/<slug:name>/v<int:number>/", version_detail, name="version-detail"),
    path("", include("accounts.urls")),
    path("", include("audit.urls")),
    path("", include("deployments.urls")),
    path("", include("registry.urls")),
]

# Under /api/ these answer JSON; elsewhere Django's own pages.
handler400 = "config.api.bad_request"
handler500 = "config.api.server_error"
handler404 = "config.api.not_found"
