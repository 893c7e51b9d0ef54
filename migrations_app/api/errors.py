"""One error shape for domain errors: an illegal transition is 409 with the current state."""

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ..domain.lifecycle import IllegalTransition
from ..services.plans import PlanNotEditable


def exception_handler(exc, context):
    if isinstance(exc, IllegalTransition):
        return Response(
            {"detail": exc.why, "state": exc.state.value, "action": exc.action.value},
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, PlanNotEditable):
        return Response({"detail": str(exc), "state": exc.state, "fields": exc.fields},
                        status=status.HTTP_409_CONFLICT)
    return drf_exception_handler(exc, context)
