from django.urls import path
from rest_framework.routers import DefaultRouter

from . import sdk_views, views

router = DefaultRouter(trailing_slash=True)
router.register("environments", views.EnvironmentViewSet, basename="environment")
router.register("endpoints", views.ModelEndpointViewSet, basename="endpoint")
router.register("plans", views.PlanViewSet, basename="plan")
router.register("audit", views.AuditEventViewSet, basename="audit")
router.register("alerts", views.AlertViewSet, basename="alert")
router.register("sdk-keys", views.SDKKeyViewSet, basename="sdk-key")
router.register("evaluation-datasets", views.EvaluationDatasetViewSet, basename="evaluation-dataset")
router.register("evaluation-runs", views.EvaluationRunViewSet, basename="evaluation-run")

urlpatterns = [
    path("sdk/config", sdk_views.SDKConfigView.as_view(), name="sdk-config"),
    path("sdk/events", sdk_views.SDKEventsView.as_view(), name="sdk-events"),
    path("sdk/feedback", sdk_views.SDKFeedbackView.as_view(), name="sdk-feedback"),
    path("sdk/shadow", sdk_views.SDKShadowView.as_view(), name="sdk-shadow"),
    path("plans/<slug:key>/comparisons/", views.PlanComparisonsView.as_view(), name="plan-comparisons"),
    path("plans/<slug:key>/comparisons/export.jsonl", views.PlanComparisonsExportView.as_view(),
         name="plan-comparisons-export"),
    path("plans/<slug:key>/shadow-summary/", views.PlanShadowSummaryView.as_view(), name="plan-shadow-summary"),
    path("plans/<slug:key>/quality-settings/", views.PlanQualitySettingsView.as_view(), name="plan-quality-settings"),
    *router.urls,
]
