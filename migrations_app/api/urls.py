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

urlpatterns = [
    path("sdk/config", sdk_views.SDKConfigView.as_view(), name="sdk-config"),
    path("sdk/events", sdk_views.SDKEventsView.as_view(), name="sdk-events"),
    path("sdk/feedback", sdk_views.SDKFeedbackView.as_view(), name="sdk-feedback"),
    *router.urls,
]
