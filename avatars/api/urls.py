from django.urls import path

from avatars.api import views

urlpatterns = [
    path("avatars", views.AvatarListCreateView.as_view(), name="avatar-list"),
    path("avatars/upload", views.AvatarUploadView.as_view(), name="avatar-upload"),
    path("avatars/<str:avatar_id>", views.AvatarDetailView.as_view(), name="avatar-detail"),
    path("avatars/<str:avatar_id>/preview", views.AvatarPreviewView.as_view(), name="avatar-preview"),
    path("avatars/<str:avatar_id>/reprocess", views.AvatarReprocessView.as_view(), name="avatar-reprocess"),
]
