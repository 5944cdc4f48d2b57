from django.conf import settings
from django.contrib import admin
from django.contrib.auth.views import LogoutView
from django.urls import include, path, re_path
from django.views.generic import TemplateView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from tutorplatform.api_contract import api_contract
from tutorplatform.files import favicon, static_file
from tutorplatform.health import health

# The login page and the admin carry the product's name, not Django's.
admin.site.site_header = "Tutor avatars"
admin.site.site_title = "Tutor avatars"
admin.site.index_title = "Tutors, avatars, sessions and API keys"

urlpatterns = [
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
    path("health", health, name="health"),
    path("favicon.ico", favicon, name="favicon"),
    path("docs/api.md", api_contract, name="api-contract"),
    path("admin/", admin.site.urls),
    path("staff/logout", LogoutView.as_view(next_page="/admin/login/?next=/staff/"), name="staff-logout"),
    path("staff/", include("tutors.urls")),
    path("staff/", include("sessions_app.urls")),
    path("staff/", include("avatars.staff_urls")),
    path("v1/", include("avatars.api.urls")),
    path("v1/", include("sessions_app.api.urls")),
    path("v1/", include("tutors.api.urls")),
    path("v1/", include("webhooks.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

if settings.SERVE_STATIC:
    # The embedded default runs no separate web server; serve the collected static files here.
    urlpatterns.append(re_path(r"^static/(?P<path>.*)$", static_file))

handler400 = "tutorplatform.errors.bad_request"
handler404 = "tutorplatform.errors.not_found"
handler500 = "tutorplatform.errors.server_error"
