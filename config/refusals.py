"""Every refusal on every path goes on the audit trail.

The policy (`accounts.permissions.require` and the deployments policy) records the refusals it raises
and marks them; any other PermissionDenied (a view's own check, an API permission class such as a
token's missing scope) is recorded here, named after the route that refused.
"""

from django.core.exceptions import PermissionDenied
from rest_framework import exceptions

from accounts.permissions import Actor
from audit.services import record


def record_refusal(request, exc: Exception) -> None:
    if getattr(exc, "recorded", False):
        return
    match = getattr(request, "resolver_match", None)
    name = ((match.url_name if match else "") or "request").replace("-", "_").lower()
    surface = "api" if request.path.startswith("/api/") else "page"
    record(
        actor=Actor.from_request(request),
        action=f"{surface}.{name}",
        outcome="refused",
        reason=str(exc.detail if isinstance(exc, exceptions.APIException) else exc)[:1000],
        after={"method": request.method, "path": request.path[:300]},
    )
    exc.recorded = True  # type: ignore[attr-defined]


def is_refusal(exc: Exception) -> bool:
    return isinstance(exc, PermissionDenied | exceptions.PermissionDenied)


class RefusalAuditMiddleware:
    """Records the PermissionDenied a page raised (Django then answers 403)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if is_refusal(exception):
            record_refusal(request, exception)
        return None
