from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """Webhooks: the platform is told when avatars, tutors, sessions and utterances change."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "webhooks"

    def ready(self) -> None:
        from webhooks import receivers  # noqa: F401  (turns the other apps' signals into events)
