from django.urls import path

from tutors import views

urlpatterns = [
    path("", views.tutor_list, name="staff-tutors"),
    path("tutors/new", views.tutor_create, name="staff-tutor-new"),
    path("tutors/<int:tutor_id>/", views.tutor_detail, name="staff-tutor"),
    path("tutors/<int:tutor_id>/edit", views.tutor_edit, name="staff-tutor-edit"),
    path("tutors/<int:tutor_id>/delete", views.tutor_delete, name="staff-tutor-delete"),
    path("tutors/<int:tutor_id>/video", views.tutor_video, name="staff-tutor-video"),
    path("tutors/<int:tutor_id>/reprocess", views.tutor_reprocess, name="staff-tutor-reprocess"),
]
