"""The ops API: thin views over services and selectors."""

from django.db import IntegrityError
from django.db.models import Prefetch
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from .. import selectors
from ..domain.lifecycle import Action
from ..models import (
    Alert,
    AuditEvent,
    Environment,
    HealthRule,
    MigrationPlan,
    ModelEndpoint,
    RolloutStep,
    SDKKey,
)
from ..postmortem import postmortem_markdown
from ..roles import OPERATE_PERMISSION
from ..services import endpoints as endpoint_services
from ..services import plans as plan_services
from ..services import sdk_keys as sdk_key_services
from . import serializers as s


def actor_of(request) -> str:
    return f"user:{request.user.get_username()}"


class EnvironmentViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                         viewsets.GenericViewSet):
    queryset = Environment.objects.all()
    serializer_class = s.EnvironmentSerializer
    permission_model = Environment
    lookup_field = "name"

    def perform_create(self, serializer):
        serializer.instance = sdk_key_services.environment_get_or_create(
            name=serializer.validated_data["name"], actor=actor_of(self.request))


class ModelEndpointViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                           mixins.UpdateModelMixin, viewsets.GenericViewSet):
    queryset = ModelEndpoint.objects.all()
    serializer_class = s.ModelEndpointSerializer
    permission_model = ModelEndpoint
    lookup_field = "name"

    def perform_create(self, serializer):
        serializer.instance = endpoint_services.endpoint_create(
            actor=actor_of(self.request), **serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = endpoint_services.endpoint_update(
            actor=actor_of(self.request), endpoint=serializer.instance, **serializer.validated_data)


def _action_view(lifecycle_action: Action):
    def view(self, request, key=None):
        payload = s.ActionInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        plan = self.get_object()
        plan = plan_services.plan_act(actor=actor_of(request), plan_key=plan.key, action=lifecycle_action,
                                      reason=payload.validated_data["reason"])
        return Response(s.PlanSerializer(self.get_queryset().get(pk=plan.pk)).data)

    view.__name__ = lifecycle_action.value
    # extend_schema outside @action (as when stacking decorators): applied under it, it was lost and the schema
    # asked for a whole plan (PlanRequest, required) as the body of every lifecycle action.
    return extend_schema(request=s.ActionInputSerializer, responses={200: s.PlanSerializer},
                         summary=f"{lifecycle_action.value.capitalize()} the plan",
                         description="409 with the current state when the plan's state does not allow it.")(
        action(detail=True, methods=["post"], url_path=lifecycle_action.value)(view))


class PlanViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Migration plans with their steps and health rules; lifecycle actions at /plans/{key}/{action}/."""

    serializer_class = s.PlanSerializer
    lookup_field = "key"
    permission_model = MigrationPlan
    # Reads need view, create add, edits change; the lifecycle actions need operate (operators and admins).
    action_permissions = {lifecycle_action.value: OPERATE_PERMISSION for lifecycle_action in Action}

    def get_queryset(self):
        return MigrationPlan.objects.select_related("environment", "baseline", "candidate",
                                                    "judge_endpoint").prefetch_related(
            Prefetch("steps", queryset=RolloutStep.objects.order_by("order")),
            Prefetch("rules", queryset=HealthRule.objects.order_by("id")),
        )

    @extend_schema(request=s.PlanInputSerializer, responses={201: s.PlanSerializer})
    def create(self, request):
        payload = s.PlanInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            plan = plan_services.plan_create(actor=actor_of(request), **payload.validated_data)
        except IntegrityError as error:  # a concurrent create of the same key
            raise ValidationError({"key": "a plan with this key already exists"}) from error
        return Response(s.PlanSerializer(self.get_queryset().get(pk=plan.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.PlanInputSerializer, responses={200: s.PlanSerializer})
    def partial_update(self, request, key=None):
        plan = self.get_object()
        payload = s.PlanInputSerializer(plan, data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        fields = dict(payload.validated_data)
        fields.pop("key", None)
        fields.pop("environment", None)
        plan_services.plan_update(actor=actor_of(request), plan=plan, **fields)
        return Response(s.PlanSerializer(self.get_queryset().get(pk=plan.pk)).data)

    @extend_schema(responses={200: OpenApiTypes.OBJECT},
                   summary="Per-arm metrics and each health rule's statistic, interval, verdict and evidence")
    @action(detail=True, methods=["get"])
    def report(self, request, key=None):
        return Response(selectors.plan_report(plan=self.get_object(), now=timezone.now()))

    @extend_schema(responses={(200, "text/markdown"): OpenApiTypes.STR},
                   summary="The migration's postmortem as a Markdown document")
    @action(detail=True, methods=["get"])
    def postmortem(self, request, key=None):
        plan = self.get_object()
        response = HttpResponse(postmortem_markdown(plan=plan), content_type="text/markdown; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="postmortem-{plan.key}.md"'
        return response

    start = _action_view(Action.START)
    pause = _action_view(Action.PAUSE)
    resume = _action_view(Action.RESUME)
    advance = _action_view(Action.ADVANCE)
    promote = _action_view(Action.PROMOTE)
    rollback = _action_view(Action.ROLLBACK)
    abort = _action_view(Action.ABORT)
    retry = _action_view(Action.RETRY)


@extend_schema(parameters=[
    OpenApiParameter("plan", str, description="only this plan's events (its key)"),
    OpenApiParameter("action", str, description="only this action, e.g. plan.rollback"),
])
class AuditEventViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = s.AuditEventSerializer
    permission_model = AuditEvent

    def get_queryset(self):
        events = AuditEvent.objects.all()
        if plan_key := self.request.query_params.get("plan"):
            events = events.filter(plan_key=plan_key)
        if action_name := self.request.query_params.get("action"):
            events = events.filter(action=action_name)
        return events


class SDKKeyViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                    viewsets.GenericViewSet):
    """SDK keys of every environment. The secret is in the creation response only. Admins only (the role's
    view, add and change permissions on SDK keys)."""

    queryset = SDKKey.objects.select_related("environment")
    serializer_class = s.SDKKeySerializer
    lookup_field = "prefix"
    permission_model = SDKKey
    action_permissions = {"revoke": "change"}

    @extend_schema(request=s.SDKKeySerializer, responses={201: s.SDKKeyCreatedSerializer})
    def create(self, request):
        payload = s.SDKKeySerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        key, secret = sdk_key_services.sdk_key_create(
            actor=actor_of(request), environment=payload.validated_data["environment"],
            scopes=payload.validated_data.get("scopes"), name=payload.validated_data.get("name", ""),
        )
        body = s.SDKKeySerializer(key).data | {"secret": secret}
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.ActionInputSerializer, responses={200: s.SDKKeySerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request, prefix=None):
        payload = s.ActionInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        key = sdk_key_services.sdk_key_revoke(actor=actor_of(request), key=self.get_object(),
                                              reason=payload.validated_data["reason"])
        return Response(s.SDKKeySerializer(key).data)




@extend_schema(parameters=[
    OpenApiParameter("plan", str, description="only this plan's alerts (its key)"),
    OpenApiParameter("state", str, description="firing or resolved"),
])
class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = s.AlertSerializer
    permission_model = Alert

    def get_queryset(self):
        alerts = Alert.objects.select_related("plan")
        if plan_key := self.request.query_params.get("plan"):
            alerts = alerts.filter(plan__key=plan_key)
        if state := self.request.query_params.get("state"):
            alerts = alerts.filter(state=state)
        return alerts


# --- evaluation and shadow ----------------------------------------------------------------------------------

import json as _json  # noqa: E402

from django.db.models import Count  # noqa: E402
from django.http import StreamingHttpResponse  # noqa: E402
from django.shortcuts import get_object_or_404  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

from ..models import EvaluationDataset, EvaluationRun, ShadowComparison  # noqa: E402
from ..services import evaluation as evaluation_services  # noqa: E402
from ..services.shadow import shadow_export_rows  # noqa: E402
from .pagination import StrictLimitOffsetPagination  # noqa: E402
from .parsers import StrictMultiPartParser  # noqa: E402


def _float_param(request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError as error:
        raise ValidationError({name: ["must be a number"]}) from error
    if value != value or value in (float("inf"), float("-inf")):  # "nan", "inf": no score compares with them
        raise ValidationError({name: ["must be a number"]})
    return value


_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no")


def _bool_param(request, name: str) -> bool | None:
    """true/false (or 1/0, yes/no); anything else is a 400 (it used to mean false, silently)."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if raw.lower() not in _TRUE + _FALSE:
        raise ValidationError({name: ["must be true or false"]})
    return raw.lower() in _TRUE


def _datetime_param(request, name: str):
    from datetime import UTC

    from django.utils.dateparse import parse_datetime

    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = parse_datetime(raw)
        # In UTC: PostgreSQL refuses offsets past ±15:59 (Python takes up to ±23:59): that was a 500.
        value = value and (value.replace(tzinfo=UTC) if value.tzinfo is None
                           else value.astimezone(UTC))
    except (ValueError, OverflowError):  # well-formed but impossible (month 13), or out of range in UTC
        value = None
    if value is None:
        raise ValidationError({name: ["must be an ISO 8601 date and time, e.g. 2026-01-31T12:00:00Z"]})
    return value


def _comparisons_for(request, key: str):
    plan = get_object_or_404(MigrationPlan, key=key)
    return plan, selectors.shadow_comparisons(
        plan=plan, segment=request.query_params.get("segment"), max_score=_float_param(request, "max_score"),
        min_score=_float_param(request, "min_score"), disagree=_bool_param(request, "disagree"))


_COMPARISON_FILTERS = [
    OpenApiParameter("segment", str, description="only this segment"),
    OpenApiParameter("max_score", float, description="only comparisons scoring at most this (the worst first)"),
    OpenApiParameter("min_score", float, description="only comparisons scoring at least this"),
    OpenApiParameter("disagree", bool, description="only disagreements (true) or agreements (false)"),
]


class PlanComparisonsView(APIView):
    """A plan's shadow comparisons, worst first."""

    permission_model = ShadowComparison
    pagination_class = StrictLimitOffsetPagination  # also tells the schema the list is paged

    @extend_schema(parameters=_COMPARISON_FILTERS, responses={200: s.ShadowComparisonSerializer(many=True)})
    def get(self, request, key: str):
        _, rows = _comparisons_for(request, key)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(s.ShadowComparisonSerializer(page, many=True).data)


class PlanComparisonsExportView(APIView):
    """Every matching comparison as JSON lines: the request, both answers, the scores."""

    permission_model = ShadowComparison

    @extend_schema(parameters=_COMPARISON_FILTERS, responses={(200, "application/x-ndjson"): OpenApiTypes.STR})
    def get(self, request, key: str):
        plan, rows = _comparisons_for(request, key)
        lines = (_json.dumps(row, default=str) + "\n" for row in shadow_export_rows(rows.iterator(chunk_size=500)))
        response = StreamingHttpResponse(lines, content_type="application/x-ndjson")
        response["Content-Disposition"] = f'attachment; filename="{plan.key}-comparisons.jsonl"'
        return response


class PlanShadowSummaryView(APIView):
    permission_model = ShadowComparison

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, parameters=[
        OpenApiParameter("since", OpenApiTypes.DATETIME, description="only comparisons from this ISO time on")],
        summary="Shadow evidence: disagreement above the noise floor with its interval, paired latency and cost "
                "differences, per segment; and the evaluation gate")
    def get(self, request, key: str):
        plan = get_object_or_404(MigrationPlan, key=key)
        since = _datetime_param(request, "since")
        summary = selectors.shadow_summary(plan=plan, since=since)
        return Response(summary.as_dict() | {"evaluation_gate": selectors.evaluation_gate(plan=plan)})


class PlanQualitySettingsView(APIView):
    permission_model = MigrationPlan
    action_permissions = {"POST": "change"}  # edits the plan

    @extend_schema(request=s.PlanQualitySettingsSerializer, responses={200: s.PlanQualitySettingsSerializer},
                   summary="Set the plan's success criteria and shadow thresholds")
    def post(self, request, key: str):
        plan = get_object_or_404(MigrationPlan, key=key)
        payload = s.PlanQualitySettingsSerializer(data=request.data, context={"plan": plan})
        payload.is_valid(raise_exception=True)
        fields = dict(payload.validated_data)
        reason = fields.pop("reason", "")
        plan = evaluation_services.plan_quality_settings_update(actor=actor_of(request), plan=plan, reason=reason,
                                                                **fields)
        return Response(evaluation_services.plan_quality_settings(plan))


class EvaluationDatasetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Evaluation datasets; cases come in through POST /evaluation-datasets/import/ (JSONL or CSV)."""

    serializer_class = s.EvaluationDatasetSerializer
    lookup_field = "name"
    permission_model = EvaluationDataset

    def get_queryset(self):
        return EvaluationDataset.objects.annotate(case_count=Count("cases"))

    @extend_schema(request=s.DatasetImportSerializer, responses={201: s.EvaluationDatasetSerializer})
    @action(detail=False, methods=["post"], url_path="import", parser_classes=[JSONParser, StrictMultiPartParser])
    def import_cases(self, request):
        payload = s.DatasetImportSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        content = data["file"].read() if data.get("file") else data["content"]
        try:
            dataset, count = evaluation_services.dataset_import(
                actor=actor_of(request), name=data["name"], content=content, fmt=data["format"],
                description=data["description"], replace=data["replace"])
        except evaluation_services.DatasetInvalid as invalid:
            raise ValidationError(invalid.errors) from invalid
        body = s.EvaluationDatasetSerializer(self.get_queryset().get(pk=dataset.pk)).data | {"imported": count}
        return Response(body, status=status.HTTP_201_CREATED)


class EvaluationRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Evaluation runs with their reports; POST queues one (the worker runs it)."""

    serializer_class = s.EvaluationRunSerializer
    permission_model = EvaluationRun

    def get_queryset(self):
        runs = EvaluationRun.objects.select_related("plan", "dataset", "baseline", "candidate", "judge_endpoint")
        if plan_key := self.request.query_params.get("plan"):
            runs = runs.filter(plan__key=plan_key)
        return runs

    @extend_schema(request=s.EvaluationRunInputSerializer, responses={201: s.EvaluationRunSerializer})
    def create(self, request):
        payload = s.EvaluationRunInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        errors = {}
        dataset = EvaluationDataset.objects.filter(name=data.pop("dataset")).first()
        if dataset is None:
            errors["dataset"] = ["no such dataset"]
        plan = None
        if plan_key := data.pop("plan", None):
            plan = MigrationPlan.objects.filter(key=plan_key).first()
            if plan is None:
                errors["plan"] = ["no such plan"]
        for arm in ("baseline", "candidate"):
            if arm in data:
                data[arm] = ModelEndpoint.objects.filter(name=data[arm]).first()
                if data[arm] is None:
                    errors[arm] = ["no such endpoint"]
            elif plan is None and "plan" not in errors:
                errors[arm] = ["required without a plan"]
        if "judge_endpoint" in data:
            data["judge_endpoint"] = ModelEndpoint.objects.filter(name=data["judge_endpoint"]).first()
            if data["judge_endpoint"] is None:
                errors["judge_endpoint"] = ["no such endpoint"]
        if errors:
            raise ValidationError(errors)
        try:
            run = evaluation_services.evaluation_run_create(actor=actor_of(request), dataset=dataset, plan=plan,
                                                            **data)
        except evaluation_services.SettingsInvalid as invalid:
            raise ValidationError({name: [problem] for name, problem in invalid.errors.items()}) from invalid
        return Response(s.EvaluationRunSerializer(self.get_queryset().get(pk=run.pk)).data,
                        status=status.HTTP_201_CREATED)
