from django.urls import path

from sessions_app import views

urlpatterns = [
    path("sessions/", views.session_list, name="staff-sessions"),
    path("sessions/<uuid:session_id>/", views.session_detail, name="staff-session"),
    path("sessions/<uuid:session_id>/end", views.session_end, name="staff-session-end"),
]
