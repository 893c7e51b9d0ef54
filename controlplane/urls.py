from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from migrations_app.api.errors import api_not_found, api_server_error

from . import health

# Under /api/ a URL that matches no route (e.g. a plan key that is not a slug) and an unhandled error answer
# JSON like every other API error, not Django's HTML pages.
handler404 = api_not_found
handler500 = api_server_error

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("migrations_app.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
]
