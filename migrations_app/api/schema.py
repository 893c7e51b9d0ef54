"""The error answers every view may give, declared in the OpenAPI schema (docs/api.md, "Errors"): so a client
generated from the schema — and the schema fuzz (tests/fuzz) — knows each status the API can return."""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


class ConflictSerializer(ErrorSerializer):
    state = serializers.CharField(help_text="the plan's current state")
    action = serializers.CharField(required=False, help_text="the lifecycle action refused")
    fields = serializers.ListField(child=serializers.CharField(), required=False,
                                   help_text="the fields this state does not let change")


class UnavailableSerializer(ErrorSerializer):
    code = serializers.CharField()


_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait before retrying"}}
_WRITES = {"POST", "PUT", "PATCH", "DELETE"}


class CutoverAutoSchema(AutoSchema):
    """drf-spectacular's schema, plus the error responses an operation can give when it does not declare them:
    400 (bad input, each field named) where there is input, 401/403 everywhere, 404 on paths naming an object,
    409 on writes to a plan (its state refuses them), 429 on the rate-limited SDK API, 503 (database
    unavailable, Retry-After) everywhere, 415 on ops writes (JSON bodies only)."""

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        errors = {
            "400": OpenApiResponse(OpenApiTypes.OBJECT, description="invalid input: an object naming each bad "
                                   "field"),
            "401": OpenApiResponse(ErrorSerializer, description="no or unknown credentials"),
            "403": OpenApiResponse(ErrorSerializer, description="the role or the SDK key's scope does not allow "
                                   "this"),
            "404": OpenApiResponse(ErrorSerializer, description="no such object"),
            "409": OpenApiResponse(ConflictSerializer, description="the plan's state does not allow this"),
            "415": OpenApiResponse(ErrorSerializer, description="the body is not JSON (a dataset import may also "
                                   "be multipart)"),
            "429": OpenApiResponse(ErrorSerializer, description="the SDK key is over its rate limit"),
            "503": OpenApiResponse(UnavailableSerializer, description="the database is unavailable; retry later"),
        }
        has_input = self.method in _WRITES or any(p.get("in") == "query" for p in operation.get("parameters", []))
        wanted = {"401", "403", "503"}
        if has_input:
            wanted.add("400")
        if self.method in _WRITES and not self.path.startswith("/api/v1/sdk/"):  # the SDK reads bodies as JSON
            wanted.add("415")
        if "{" in self.path:
            wanted.add("404")
        if self.method in _WRITES and self.path.startswith("/api/v1/plans/{"):
            wanted.add("409")
        if self.path.startswith("/api/v1/sdk/"):
            wanted.add("429")
        responses = operation.setdefault("responses", {})
        for code in sorted(wanted - set(responses)):
            responses[code] = self._get_response_for_code(errors[code], code, media_types=["application/json"])
            if code in ("429", "503"):
                responses[code]["headers"] = dict(_RETRY_AFTER)
        return operation
