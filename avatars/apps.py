from django.apps import AppConfig


class AvatarsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "avatars"

    def ready(self) -> None:
        from avatars import checks  # noqa: F401  (registers the start-up checks)
        from avatars.api import schema  # noqa: F401  (registers the API-key scheme for the OpenAPI docs)
