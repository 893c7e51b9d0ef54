"""One error shape for domain errors: an illegal transition is 409 with the current state; a database that
cannot be reached is 503 with Retry-After (the SDK keeps its batch and retries), never a 500."""

import logging

from django.db import InterfaceError, OperationalError
from django.http import JsonResponse
from django.views import defaults
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ..domain.lifecycle import IllegalTransition
from ..services.plans import PlanNotEditable

logger = logging.getLogger("migrations_app.api")

# Seconds a client is asked to wait before retrying while the database is unavailable.
DATABASE_RETRY_AFTER_SECONDS = 5
DATABASE_ERRORS = (OperationalError, InterfaceError)
_UNAVAILABLE = {"detail": "the database is unavailable; retry later", "code": "database_unavailable"}


def _database_unavailable(exc: Exception) -> None:
    logger.warning("database unavailable: %s: %s", type(exc).__name__, exc)


def exception_handler(exc, context):
    if isinstance(exc, IllegalTransition):
        return Response(
            {"detail": exc.why, "state": exc.state.value, "action": exc.action.value},
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, PlanNotEditable):
        return Response({"detail": str(exc), "state": exc.state, "fields": exc.fields},
                        status=status.HTTP_409_CONFLICT)
    if isinstance(exc, DATABASE_ERRORS):
        _database_unavailable(exc)
        return Response(_UNAVAILABLE, status=status.HTTP_503_SERVICE_UNAVAILABLE,
                        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})
    return drf_exception_handler(exc, context)


class DatabaseUnavailableMiddleware:
    """The same 503 for views outside DRF (the admin, health pages): a database outage is no server bug."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, DATABASE_ERRORS):
            return None
        _database_unavailable(exception)
        return JsonResponse(_UNAVAILABLE, status=503, headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})


def api_not_found(request, exception):
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def api_server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Internal server error."}, status=500)
    return defaults.server_error(request)


class RefuseNulCharactersMiddleware:
    """Under /api/: a NUL character in the path or a query parameter is the client's error — a 404, or a 400
    naming the parameter — before it reaches a lookup (PostgreSQL cannot compare text with NUL: that was a 500)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/"):
            if "\x00" in request.path:
                return JsonResponse({"detail": "Not found."}, status=404)
            for name, values in request.GET.lists():
                if "\x00" in name or any("\x00" in value for value in values):
                    return JsonResponse({name.replace("\x00", ""): ["Null characters are not allowed."]}, status=400)
        return self.get_response(request)
