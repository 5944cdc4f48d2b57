from django.urls import path

from tutors.api import views

urlpatterns = [
    path("tutors", views.TutorListCreateView.as_view(), name="tutor-list"),
    path("tutors/<int:tutor_id>", views.TutorDetailView.as_view(), name="tutor-detail"),
]
