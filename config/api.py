"""Shared REST API plumbing: pagination and the error format.

Every error under /api/ is JSON, whatever raised it: DRF's handler shapes the errors views raise,
and `server_error` / `not_found` (Django's handler500 / handler404) answer for what escapes them,
with the request id that the log line of the failure carries.
"""

import contextlib
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.paginator import EmptyPage, PageNotAnInteger
from django.core.paginator import Paginator as DjangoPaginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, parsers
from rest_framework.pagination import PageNumberPagination, _positive_int
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from config.errors import Conflict
from config.refusals import is_refusal, record_refusal
from registry.validation import json_too_deep, too_deep_error


class Paginator(DjangoPaginator):
    """Django's paginator, without its COUNT query when the page asked for is the last one: the page is
    read with one row more than it shows, and when that row is not there, the count is known. Most
    lists fit in their first page."""

    def page(self, number):
        number = self.validate_number_without_count(number)
        bottom = (number - 1) * self.per_page
        rows = list(self.object_list[bottom : bottom + self.per_page + 1])
        if not rows and number > 1:
            return super().page(number)  # none this far: Django counts them, and says so
        if len(rows) > self.per_page:
            rows = rows[: self.per_page]  # more pages: counted when the page asks, its rows not read again
        else:
            self.__dict__["count"] = bottom + len(rows)  # the cached_property, known without a query
        return self._get_page(rows, number, self)

    def validate_number_without_count(self, number) -> int:
        try:
            number = int(number)
        except (TypeError, ValueError):
            raise PageNotAnInteger(self.error_messages["invalid_page"]) from None
        if number < 1:
            raise EmptyPage(self.error_messages["min_page"])
        return number


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    django_paginator_class = Paginator

    def get_page_size(self, request):
        # `limit`, the word the log windows use (and limit/offset clients send), sizes the page too.
        if self.page_size_query_param not in request.query_params and "limit" in request.query_params:
            with contextlib.suppress(ValueError):
                return _positive_int(request.query_params["limit"], strict=True, cutoff=self.max_page_size)
        return super().get_page_size(request)


class ConflictError(exceptions.APIException):
    status_code = 409
    default_detail = "The object changed since you looked at it."
    default_code = "conflict"


class PayloadTooLarge(exceptions.APIException):
    status_code = 413
    default_detail = "The request body is too large."
    default_code = "too_large"


QUEUED_FOR_LATER = (
    "Saved. Its work is queued for later: the task queue is unreachable now, "
    "and the work is enqueued again automatically once it is back."
)


def created(obj, data: dict) -> Response:
    """201 with the object; 202 when it is saved but its work could not be enqueued yet (the task
    queue is unreachable): the object is there, and the work starts once the queue is back."""
    if getattr(obj, "queued_for_later", False):
        return Response({**data, "queued_for_later": True, "detail": QUEUED_FOR_LATER}, status=202)
    return Response(data, status=201)


def exception_handler(exc, context):
    """DRF's handler, with every validation error shaped as {field: [reasons]}.

    A script can then always read `response.json()[field]`; errors that concern no single
    field appear under "non_field_errors", others under "detail".
    """
    if isinstance(exc, DjangoValidationError):
        # Services raise Django's ValidationError; scripts get the same shape as serializer errors.
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    if isinstance(exc, Conflict):
        exc = ConflictError(str(exc))
    if is_refusal(exc):
        record_refusal(context["request"], exc)
    if isinstance(exc, DjangoPermissionDenied) and exc.args:
        # Keep the reason ("needs the developer role in team 'vision'"), which DRF would drop.
        exc = exceptions.PermissionDenied(str(exc))
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.ValidationError):
        if isinstance(response.data, list):
            response.data = {"non_field_errors": response.data}
        # Always a list of reasons per field, however the error was raised.
        response.data = {
            field: reasons if isinstance(reasons, list | dict) else [reasons]
            for field, reasons in response.data.items()
        }
    return response


def is_api_request(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: JSON for the API (with the id to quote when reporting it), Django's page elsewhere."""
    if not is_api_request(request):
        return defaults.server_error(request)
    request_id = getattr(request, "request_id", "")
    return JsonResponse(
        {
            "detail": "Internal server error: the failure is logged under this request id.",
            "request_id": request_id,
        },
        status=500,
    )


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400: JSON for the API; a body over DATA_UPLOAD_MAX_MEMORY_SIZE is a 413 there, as an
    artifact over its limit is."""
    if not is_api_request(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return JsonResponse(
            {"detail": f"The request body is too large: at most {limit} bytes besides uploaded files."}, status=413
        )
    return JsonResponse({"detail": "Bad request."}, status=400)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: an unknown API address answers JSON too."""
    if not is_api_request(request):
        return defaults.page_not_found(request, exception)
    return JsonResponse({"detail": f"No API endpoint at {request.path}."}, status=404)


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing a NUL character anywhere in the document (a 400): PostgreSQL text
    and jsonb cannot hold one, and a field that does not check for it would fail its query with a 500.
    A document nested too deep is refused by the rule every JSON field of ours follows."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError(f"JSON parse error - {too_deep_error().msg}.") from None
        if json_too_deep(data):
            raise exceptions.ParseError(f"JSON parse error - {too_deep_error().msg}.")
        if _holds_nul(data):
            raise exceptions.ParseError("Null characters are not allowed.")
        return data
