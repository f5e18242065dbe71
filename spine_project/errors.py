"""One exception handler: every API error is JSON `{code, message, details}`."""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from executions.errors import DomainError


def api_exception_handler(exc, context):
    """Map domain errors and DRF errors onto `{code, message, details}` with the right status."""
    if isinstance(exc, DomainError):
        response = Response(
            {"code": exc.code, "message": exc.message, "details": exc.details},
            status=exc.http_status,
        )
        for header, value in exc.headers().items():
            response[header] = value
        return response
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        code, message, details = "invalid", "The request is not valid.", response.data
    else:
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else ""
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        code = codes if isinstance(codes, str) else "error"
        message, details = str(detail) or str(exc), {}
    if response.status_code == status.HTTP_401_UNAUTHORIZED:
        code = "not_authenticated"
    response.data = {"code": code, "message": message, "details": details}
    return response


def not_found(request, exception=None):
    """404 for a URL that matches no route: JSON under `/api/`, Django's own page elsewhere."""
    from django.http import JsonResponse
    from django.views.defaults import page_not_found

    if request.path.startswith("/api/"):
        return JsonResponse(
            {"code": "not_found", "message": f"No route {request.path}.", "details": {}},
            status=404,
        )
    return page_not_found(request, exception)


def server_error(request):
    """500: JSON `{code, message, details}` under `/api/`, Django's own page elsewhere.

    The message names the request id, which is on the logged traceback, and nothing else.
    """
    from django.http import JsonResponse
    from django.views.defaults import server_error as django_server_error

    if request.path.startswith("/api/"):
        request_id = getattr(request, "request_id", "")
        return JsonResponse(
            {
                "code": "server_error",
                "message": f"Internal error; quote request id {request_id} when reporting it.",
                "details": {"request_id": request_id},
            },
            status=500,
        )
    return django_server_error(request)
