from __future__ import annotations

from rest_framework import serializers

from avatars.services import AVATAR_ID_PATTERN
from sessions_app.models import SessionState, TutoringSession


class CreateSessionSerializer(serializers.Serializer):
    tutor_id = serializers.IntegerField(min_value=1)
    student_id = serializers.IntegerField(min_value=0)
    avatar_id = serializers.RegexField(
        AVATAR_ID_PATTERN, max_length=64, required=False, allow_null=True, default=None,
        error_messages={"invalid": "Must be 1 to 64 letters, digits, '_' or '-', starting with a letter or digit."},
    )


class SessionListQuerySerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=SessionState.values, required=False)
    tutor_id = serializers.IntegerField(required=False, min_value=1)
    student_id = serializers.IntegerField(required=False, min_value=0)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=50)
    offset = serializers.IntegerField(required=False, min_value=0, default=0)


class SessionResourceSerializer(serializers.Serializer):
    """The session resource of api.md (for the OpenAPI description; session_resource() builds it)."""

    session_id = serializers.UUIDField()
    tutor_id = serializers.IntegerField()
    student_id = serializers.IntegerField()
    avatar_id = serializers.CharField()
    state = serializers.ChoiceField(choices=SessionState.values)
    created_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    end_reason = serializers.CharField(allow_blank=True)
    stream_url = serializers.CharField()


class SessionListSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    sessions = serializers.ListField(child=serializers.UUIDField())


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def session_resource(session: TutoringSession) -> dict:
    return {
        "session_id": str(session.session_id),
        "tutor_id": session.tutor_id,
        "student_id": session.student_id,
        "avatar_id": session.avatar_id,
        "state": session.state,
        "created_at": _iso(session.created_at),
        "ended_at": _iso(session.ended_at),
        "end_reason": session.end_reason,
        "stream_url": session.stream_url,
    }
