"""The outermost middleware: every request gets an id, and one log line when it is answered."""

import logging
import time

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.http import JsonResponse
from django.views import defaults

from config.logs import accept_request_id, request_id_var
from config.metrics import route_label

logger = logging.getLogger("slipway.request")


class RequestIdMiddleware:
    """Takes the client's X-Request-ID (a proxy's, a CI job's) or makes one, and echoes it back.

    The id is in every log line written while the request is served and in the tasks it queues.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = accept_request_id(request.headers.get("X-Request-ID"))
        request.request_id = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            logger.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "route": route_label(request),
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
            return response
        finally:
            request_id_var.reset(token)


class ContentSecurityPolicyMiddleware:
    """Every response says where scripts may come from (settings.CONTENT_SECURITY_POLICY): our own
    static files only, so an injected <script> or onclick= never runs."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.policy = settings.CONTENT_SECURITY_POLICY

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", self.policy)
        return response


class NulCharacterMiddleware:
    """A NUL character in the address (path or query) is answered 400 before any view runs.

    PostgreSQL text cannot hold NUL, so a filter or lookup carrying one would otherwise fail its query
    with a 500. Under /api/ the answer is JSON, like every API error."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path or any("\x00" in key + value for key, value in request.GET.items()):
            if request.path.startswith("/api/"):
                return JsonResponse({"detail": "Null characters are not allowed in the address."}, status=400)
            return defaults.bad_request(request, SuspiciousOperation("NUL character in the address"))
        return self.get_response(request)
