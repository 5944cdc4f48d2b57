from django.apps import AppConfig


class TutorsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "tutors"

    def ready(self) -> None:
        from tutors import receivers  # noqa: F401  (connects the tutor's switch to its new avatar)
