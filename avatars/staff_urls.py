from django.urls import path

from avatars import staff_views

urlpatterns = [
    path("avatars/", staff_views.avatar_list, name="staff-avatars"),
]
