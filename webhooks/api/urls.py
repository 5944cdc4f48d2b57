from django.urls import path

from webhooks.api import views

urlpatterns = [
    path("webhooks", views.WebhookListCreateView.as_view(), name="webhook-list"),
    path("webhooks/<str:webhook_id>", views.WebhookDetailView.as_view(), name="webhook-detail"),
]
