"""The ops API: thin views over services and selectors."""

from django.db import IntegrityError
from django.db.models import Prefetch
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
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
    lookup_field = "name"

    def perform_create(self, serializer):
        serializer.instance = sdk_key_services.environment_get_or_create(
            name=serializer.validated_data["name"], actor=actor_of(self.request))


class ModelEndpointViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                           mixins.UpdateModelMixin, viewsets.GenericViewSet):
    queryset = ModelEndpoint.objects.all()
    serializer_class = s.ModelEndpointSerializer
    lookup_field = "name"

    def perform_create(self, serializer):
        serializer.instance = endpoint_services.endpoint_create(
            actor=actor_of(self.request), **serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = endpoint_services.endpoint_update(
            actor=actor_of(self.request), endpoint=serializer.instance, **serializer.validated_data)


def _action_view(lifecycle_action: Action):
    @extend_schema(request=s.ActionInputSerializer, responses={200: s.PlanSerializer},
                   summary=f"{lifecycle_action.value.capitalize()} the plan",
                   description="409 with the current state when the plan's state does not allow it.")
    def view(self, request, key=None):
        payload = s.ActionInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        plan = self.get_object()
        plan = plan_services.plan_act(actor=actor_of(request), plan_key=plan.key, action=lifecycle_action,
                                      reason=payload.validated_data["reason"])
        return Response(s.PlanSerializer(self.get_queryset().get(pk=plan.pk)).data)

    view.__name__ = lifecycle_action.value
    return action(detail=True, methods=["post"], url_path=lifecycle_action.value)(view)


class PlanViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Migration plans with their steps and health rules; lifecycle actions at /plans/{key}/{action}/."""

    serializer_class = s.PlanSerializer
    lookup_field = "key"

    def get_queryset(self):
        return MigrationPlan.objects.select_related("environment", "baseline", "candidate").prefetch_related(
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

    def get_queryset(self):
        events = AuditEvent.objects.all()
        if plan_key := self.request.query_params.get("plan"):
            events = events.filter(plan_key=plan_key)
        if action_name := self.request.query_params.get("action"):
            events = events.filter(action=action_name)
        return events


class SDKKeyViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                    viewsets.GenericViewSet):
    """SDK keys of every environment. The secret is in the creation response only."""

    queryset = SDKKey.objects.select_related("environment")
    serializer_class = s.SDKKeySerializer
    lookup_field = "prefix"

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

    def get_queryset(self):
        alerts = Alert.objects.select_related("plan")
        if plan_key := self.request.query_params.get("plan"):
            alerts = alerts.filter(plan__key=plan_key)
        if state := self.request.query_params.get("state"):
            alerts = alerts.filter(state=state)
        return alerts
