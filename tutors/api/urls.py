from django.urls import path

import common.url_converters  # noqa: F401  (the "id" converter)

from tutors.api import views

urlpatterns = [
    path("tutors", views.TutorListCreateView.as_view(), name="tutor-list"),
    path("tutors/<id:tutor_id>", views.TutorDetailView.as_view(), name="tutor-detail"),
]
