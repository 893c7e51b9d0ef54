"""The SDK side of the API: what every SDK and sidecar polls. Kept off the database on the hot path."""

import json
from collections.abc import Callable

from django.conf import settings
from django.http import HttpResponse, HttpResponseNotModified
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from ..domain.events import BatchInvalid
from ..domain.text import NUL_MESSAGE, contains_nul
from ..models import SDKScope
from ..services.config_cache import config_document_get, config_wait_for_change
from ..services.ingest import IngestResult, events_ingest, feedback_ingest
from ..services.shadow import shadow_sample_ingest
from .authentication import SDKKeyAuthentication
from .config_poll import version_from_etag
from .permissions import HasSDKScope
from .throttling import SDKKeyRateThrottle


class SDKConfigView(APIView):
    authentication_classes = [SDKKeyAuthentication]
    permission_classes = [HasSDKScope]
    required_scope = SDKScope.CONFIG_READ
    # Per key, from the cache (no SQL): settings.CUTOVER_SDK_RATE_LIMITS["config"].
    throttle_classes = [SDKKeyRateThrottle]
    throttle_scope = "config"

    @extend_schema(
        summary="The SDK config document of the key's environment",
        parameters=[
            OpenApiParameter("wait", {"type": "number", "minimum": 0,
                                      "maximum": settings.CUTOVER_CONFIG_MAX_WAIT_SECONDS},
                             description="long-poll for up to this many seconds (≤ 60) "
                             "for a version other than If-None-Match's"),
            OpenApiParameter("If-None-Match", str, OpenApiParameter.HEADER, description='a version\'s ETag, "42"'),
        ],
        responses={200: OpenApiTypes.OBJECT, 304: OpenApiResponse(description="unchanged")},
    )
    def get(self, request):
        environment_id = request.user.environment_id
        known_version = version_from_etag(request.headers.get("If-None-Match"))
        wait = self._wait_seconds(request)
        document = config_document_get(environment_id)
        if wait and document.version == known_version:
            document = config_wait_for_change(environment_id, known_version=known_version, timeout=wait)
        headers = {"ETag": document.etag, "Cache-Control": "no-cache"}
        if document.version == known_version:
            return HttpResponseNotModified(headers=headers)
        return HttpResponse(document.body, content_type="application/json", headers=headers)

    @staticmethod
    def _wait_seconds(request) -> float:
        raw = request.query_params.get("wait")
        if raw is None:
            return 0.0
        try:
            wait = float(raw)
        except ValueError:
            wait = -1.0
        if not 0 <= wait <= settings.CUTOVER_CONFIG_MAX_WAIT_SECONDS:
            raise ValidationError({"wait": [f"must be a number of seconds from 0 to "
                                            f"{settings.CUTOVER_CONFIG_MAX_WAIT_SECONDS}"]})
        return wait


def _json_body(request) -> object:
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError) as error:
        raise ValidationError({"non_field_errors": [f"the body is not JSON: {error}"]}) from error
    # Only a body that may hold a NUL is walked: the hot path pays one bytes search.
    if b"\\u0000" in request.body and contains_nul(body):
        raise ValidationError({"non_field_errors": [f"the body {NUL_MESSAGE}"]})
    return body


class _SDKWriteView(APIView):
    """An SDK write: the body goes whole to `ingest` (a service validating it in the domain — cheaper on the
    hot path than DRF's parsers), which refuses a bad batch whole (400 naming each bad field)."""

    authentication_classes = [SDKKeyAuthentication]
    permission_classes = [HasSDKScope]
    required_scope = SDKScope.EVENTS_WRITE
    parser_classes: list = []
    throttle_classes = [SDKKeyRateThrottle]
    throttle_scope: str
    ingest: Callable[..., IngestResult]

    def post(self, request):
        try:
            result = type(self).ingest(environment_id=request.user.environment_id, payload=_json_body(request))
        except BatchInvalid as invalid:
            raise ValidationError(invalid.errors) from invalid
        return Response({"accepted": result.accepted, "duplicate": result.duplicate}, status=202)


_INGEST_RESPONSES = {
    202: inline_serializer("IngestResult", {"accepted": serializers.IntegerField(),
                                            "duplicate": serializers.IntegerField()}),
    400: OpenApiResponse(description="the batch is refused whole; each bad field named"),
}


def _ingest_schema(summary: str):
    return extend_schema_view(post=extend_schema(summary=summary, request=OpenApiTypes.OBJECT,
                                                 responses=_INGEST_RESPONSES))


@_ingest_schema("Report a batch of per-request events")
class SDKEventsView(_SDKWriteView):
    ingest = events_ingest
    throttle_scope = "events"


@_ingest_schema("Report user feedback on requests")
class SDKFeedbackView(_SDKWriteView):
    ingest = feedback_ingest
    throttle_scope = "feedback"


@_ingest_schema("Submit a shadow sample (idempotent on request_id); the worker asks the candidate and stores "
                "the comparison")
class SDKShadowView(_SDKWriteView):
    ingest = shadow_sample_ingest
    throttle_scope = "shadow"
