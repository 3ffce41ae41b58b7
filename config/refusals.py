"""Every refusal on every path goes on the audit trail, and in the log as one WARNING line.

The policy (`accounts.permissions.require` and the deployments policy) records the refusals it raises
and marks them; any other PermissionDenied (a view's own check, an API permission class such as a
token's missing scope) is recorded here, named after the route that refused.

A refusal is a normal outcome, not a failure: its line says who was refused what, on what, and why,
without a traceback. Django's own line for the same 403 (with the traceback, for a page) is left out
by `config.logs.RefusalLoggedFilter`.
"""

import logging

from django.core.exceptions import PermissionDenied
from rest_framework import exceptions

from accounts.permissions import Actor
from audit.models import AuditEvent
from audit.services import record

logger = logging.getLogger("slipway.refusals")


def record_refusal(request, exc: Exception) -> None:
    """Put the refusal on the audit trail (unless the policy did) and log its line, once per request."""
    event = getattr(exc, "audit_event", None)
    if not getattr(exc, "recorded", False):
        match = getattr(request, "resolver_match", None)
        name = ((match.url_name if match else "") or "request").replace("-", "_").lower()
        surface = "api" if request.path.startswith("/api/") else "page"
        event = record(
            actor=Actor.from_request(request),
            action=f"{surface}.{name}",
            outcome="refused",
            reason=str(exc.detail if isinstance(exc, exceptions.APIException) else exc)[:1000],
            after={"method": request.method, "path": request.path[:300]},
        )
        exc.recorded = True  # type: ignore[attr-defined]
        exc.audit_event = event  # type: ignore[attr-defined]
    http_request = getattr(request, "_request", request)  # under the API, the HttpRequest Django logs with
    if not getattr(http_request, "refusal_logged", False):
        logger.warning("refused: %s", refusal_line(request, exc, event))
        http_request.refusal_logged = True


def refusal_line(request, exc: Exception, event: AuditEvent | None) -> str:
    if event is None:  # a refusal marked recorded by code that kept no event
        return f"{request.user} {request.method} {request.path}: {exc}"
    who = event.actor_username + (f" (token '{event.token_name}')" if event.token_name else "")
    what = event.object_repr or f"{event.after.get('method', '')} {event.after.get('path', '')}".strip()
    return f"{who} {event.action} on {what}: {event.reason}"


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
