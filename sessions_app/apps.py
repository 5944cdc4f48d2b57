from django.apps import AppConfig


class SessionsAppConfig(AppConfig):
    """Tutoring sessions bound to an avatar (the seed's POST /v1/sessions)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "sessions_app"
