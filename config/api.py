"""Shared REST API plumbing: pagination and the error format."""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions
from rest_framework.pagination import PageNumberPagination
from rest_framework.views import exception_handler as drf_exception_handler


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class PayloadTooLarge(exceptions.APIException):
    status_code = 413
    default_detail = "The request body is too large."
    default_code = "too_large"


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
