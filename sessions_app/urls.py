from django.urls import path

import common.url_converters  # noqa: F401  (the "id" converter)

from sessions_app import views

urlpatterns = [
    path("sessions/", views.session_list, name="staff-sessions"),
    path("tutors/<id:tutor_id>/session", views.session_start, name="staff-session-start"),
    path("sessions/<uuid:session_id>/", views.session_detail, name="staff-session"),
    path("sessions/<uuid:session_id>/end", views.session_end, name="staff-session-end"),
    path("sessions/<uuid:session_id>/speak", views.session_speak, name="staff-session-speak"),
    path("sessions/<uuid:session_id>/interrupt", views.session_interrupt, name="staff-session-interrupt"),
    path("sessions/<uuid:session_id>/webrtc", views.session_webrtc, name="staff-session-webrtc"),
]
