from django.urls import path

import common.url_converters  # noqa: F401  (the "id" converter)

from tutors import views

urlpatterns = [
    path("", views.tutor_list, name="staff-tutors"),
    path("tutors/new", views.tutor_create, name="staff-tutor-new"),
    path("tutors/<id:tutor_id>/", views.tutor_detail, name="staff-tutor"),
    path("tutors/<id:tutor_id>/edit", views.tutor_edit, name="staff-tutor-edit"),
    path("tutors/<id:tutor_id>/delete", views.tutor_delete, name="staff-tutor-delete"),
    path("tutors/<id:tutor_id>/video", views.tutor_video, name="staff-tutor-video"),
    path("tutors/<id:tutor_id>/reprocess", views.tutor_reprocess, name="staff-tutor-reprocess"),
]
