"""Lists are paged with ?limit= and ?offset=; a value that is not a whole number ≥ 0 is a 400 naming it (DRF's
own LimitOffsetPagination silently falls back to the defaults, so a client's typo went unnoticed), and so is
one past MAXIMUM (a database cannot slice past a 64-bit integer: that was a 500)."""

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination

MAXIMUM = 2**31 - 1


class StrictLimitOffsetPagination(LimitOffsetPagination):
    def _strict(self, request, name: str, *, minimum: int) -> None:
        for raw in request.query_params.getlist(name):
            if not (raw.isascii() and raw.isdigit()) or not minimum <= int(raw) <= MAXIMUM:
                raise ValidationError({name: [f"must be a whole number from {minimum} to {MAXIMUM}"]})

    def paginate_queryset(self, queryset, request, view=None):
        self._strict(request, self.limit_query_param, minimum=1)
        self._strict(request, self.offset_query_param, minimum=0)
        return super().paginate_queryset(queryset, request, view)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1 if parameter["name"] == self.limit_query_param else 0
            parameter["schema"]["maximum"] = MAXIMUM
        return parameters
