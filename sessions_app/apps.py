from django.apps import AppConfig


class SessionsAppConfig(AppConfig):
    """Tutoring sessions bound to an avatar (the seed's POST /v1/sessions)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "sessions_app"

    def ready(self) -> None:
        from avatars import usage
        from sessions_app import receivers  # noqa: F401  (sessions follow their avatars and tutors)
        from sessions_app import services

        # Sessions show avatars: deleting one asks them first, then ends them (avatars/usage.py).
        usage.register(usage.AvatarUser(
            kind="sessions",
            showing=lambda avatar_id: [str(session.session_id) for session in services.active_sessions_using(avatar_id)],
            release=services.end_sessions_showing,
        ))
