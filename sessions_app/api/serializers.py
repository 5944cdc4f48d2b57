from __future__ import annotations

from rest_framework import serializers

from avatars.services import AVATAR_ID_PATTERN
from sessions_app.models import SessionState


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


class SessionSerializer(serializers.Serializer):
    """The session resource of api.md: what the API answers, and its OpenAPI description."""

    session_id = serializers.UUIDField()
    tutor_id = serializers.IntegerField()
    student_id = serializers.IntegerField()
    avatar_id = serializers.CharField()
    state = serializers.ChoiceField(choices=SessionState.values)
    created_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    end_reason = serializers.CharField(allow_blank=True)
    stream_url = serializers.CharField(read_only=True)


class SessionListSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    sessions = serializers.ListField(child=serializers.UUIDField())
