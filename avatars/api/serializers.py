"""Request validation and the avatar resource of api.md."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from avatars import storage
from avatars.models import Avatar, AvatarState
from avatars.services import AVATAR_ID_PATTERN, MAX_WAIT_S


class StrictBooleanField(serializers.BooleanField):
    """The contract's booleans: true/false/True/False/1/0 (httpx sends Python's "True"/"False")."""

    TRUE_STRINGS = {"true", "True", "TRUE", "1"}
    FALSE_STRINGS = {"false", "False", "FALSE", "0"}
    default_error_messages = {"invalid": "Must be true or false (also accepted: True, False, 1, 0); got {input!r}."}

    def to_internal_value(self, data):
        if isinstance(data, bool):
            return data
        if isinstance(data, int) and data in (0, 1):
            return bool(data)
        if isinstance(data, str) and data.strip() in self.TRUE_STRINGS | self.FALSE_STRINGS:
            return data.strip() in self.TRUE_STRINGS
        self.fail("invalid", input=data)


avatar_id_field = serializers.RegexField(
    AVATAR_ID_PATTERN,
    max_length=64,
    error_messages={"invalid": "Must be 1 to 64 letters, digits, '_' or '-', starting with a letter or digit."},
)


class CreateFromPathSerializer(serializers.Serializer):
    avatar_id = avatar_id_field
    video_path = serializers.CharField(max_length=4096, trim_whitespace=False)
    apply_blur = StrictBooleanField(required=False, default=False)
    tutor_id = serializers.IntegerField(required=False, allow_null=True, min_value=1, default=None)


class CreateFromUploadSerializer(serializers.Serializer):
    avatar_id = avatar_id_field
    video_file = serializers.FileField(allow_empty_file=True)
    apply_blur = StrictBooleanField(required=False, default=False)
    tutor_id = serializers.IntegerField(required=False, allow_null=True, min_value=1, default=None)


class WaitQuerySerializer(serializers.Serializer):
    wait = serializers.FloatField(required=False, min_value=0, max_value=MAX_WAIT_S, default=0)


class AvatarListQuerySerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=AvatarState.values, required=False)
    tutor_id = serializers.IntegerField(required=False, min_value=1)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=50)
    offset = serializers.IntegerField(required=False, min_value=0, default=0)


class DeleteQuerySerializer(serializers.Serializer):
    force = StrictBooleanField(required=False, default=False)


class ReprocessSerializer(serializers.Serializer):
    apply_blur = StrictBooleanField(required=False, allow_null=True, default=None)


def avatar_resource(avatar: Avatar) -> dict:
    """The avatar resource exactly as api.md lists it."""
    return {
        "avatar_id": avatar.avatar_id,
        "tutor_id": avatar.tutor_id,
        "state": avatar.state,
        "stage": avatar.stage,
        "progress": round(avatar.progress, 1),
        "frames_done": avatar.frames_done,
        "frames_total": avatar.frames_total,
        "apply_blur": avatar.apply_blur,
        "source": avatar.source,
        "avatar_path": str(storage.avatar_path(avatar.avatar_id)),
        "error": avatar.error,
        "video": _public_video(avatar.video),
        "faces": avatar.faces,
        "preview_url": reverse("avatar-preview", args=[avatar.avatar_id]),
        "events_url": f"/ws/avatars/{avatar.avatar_id}/",
        "created_at": _iso(avatar.created_at),
        "updated_at": _iso(avatar.updated_at),
        "ready_at": _iso(avatar.ready_at),
    }


def _public_video(video: dict | None) -> dict | None:
    if not video:
        return None
    return {key: video.get(key) for key in ("width", "height", "fps", "frame_count", "duration_s")}


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None
