"""Request validation, and the avatar resource of api.md (the answer and its schema)."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from avatars import storage
from avatars.pipeline import mouth_bank
from avatars.models import Avatar, AvatarState
from avatars.preparation import output_warnings
from avatars.services import AVATAR_ID_PATTERN, MAX_WAIT_S
from common.api_input import MAX_DB_INT, MAX_OFFSET, StrictBooleanField


avatar_id_field = serializers.RegexField(
    AVATAR_ID_PATTERN,
    max_length=64,
    error_messages={"invalid": "Must be 1 to 64 letters, digits, '_' or '-', starting with a letter or digit."},
)


class CreateFromPathSerializer(serializers.Serializer):
    avatar_id = avatar_id_field
    video_path = serializers.CharField(max_length=4096, trim_whitespace=False)
    apply_blur = StrictBooleanField(required=False, default=False)
    tutor_id = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_DB_INT, default=None)


class CreateFromUploadSerializer(serializers.Serializer):
    avatar_id = avatar_id_field
    video_file = serializers.FileField(allow_empty_file=True)
    apply_blur = StrictBooleanField(required=False, default=False)
    tutor_id = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_DB_INT, default=None)


class WaitQuerySerializer(serializers.Serializer):
    wait = serializers.FloatField(required=False, min_value=0, max_value=MAX_WAIT_S, default=0)


class AvatarListQuerySerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=AvatarState.values, required=False)
    tutor_id = serializers.IntegerField(required=False, min_value=1, max_value=MAX_DB_INT)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=50)
    offset = serializers.IntegerField(required=False, min_value=0, max_value=MAX_OFFSET, default=0)


class DeleteQuerySerializer(serializers.Serializer):
    force = StrictBooleanField(required=False, default=False)


class ReprocessSerializer(serializers.Serializer):
    apply_blur = StrictBooleanField(required=False, allow_null=True, default=None)


class VideoFactsSerializer(serializers.Serializer):
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    fps = serializers.FloatField()
    frame_count = serializers.IntegerField()
    duration_s = serializers.FloatField()


class AvatarSerializer(serializers.Serializer):
    """The avatar resource exactly as api.md lists it: what the API answers, and its OpenAPI
    description."""

    avatar_id = serializers.CharField()
    tutor_id = serializers.IntegerField(allow_null=True)
    state = serializers.ChoiceField(choices=AvatarState.choices)
    stage = serializers.CharField(allow_null=True)
    progress = serializers.SerializerMethodField()
    frames_done = serializers.IntegerField()
    frames_total = serializers.IntegerField()
    apply_blur = serializers.BooleanField()
    source = serializers.ChoiceField(choices=["upload", "path"])
    avatar_path = serializers.SerializerMethodField()
    error = serializers.DictField(allow_null=True)
    video = serializers.SerializerMethodField()
    faces = serializers.DictField(allow_null=True)
    mouth_coverage = serializers.SerializerMethodField()
    size_bytes = serializers.IntegerField(allow_null=True)
    warnings = serializers.SerializerMethodField()
    preview_url = serializers.SerializerMethodField()
    events_url = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    ready_at = serializers.DateTimeField(allow_null=True)

    @extend_schema_field(OpenApiTypes.FLOAT)
    def get_progress(self, avatar: Avatar) -> float:
        return round(avatar.progress, 1)

    @extend_schema_field(OpenApiTypes.STR)
    def get_avatar_path(self, avatar: Avatar) -> str:
        return str(storage.backend().avatar_path(avatar.avatar_id))

    @extend_schema_field(VideoFactsSerializer(allow_null=True))
    def get_video(self, avatar: Avatar) -> dict | None:
        if not avatar.video:
            return None
        return {key: avatar.video.get(key) for key in VideoFactsSerializer().fields}

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_mouth_coverage(self, avatar: Avatar) -> dict | None:
        """What the video shows of the tutor's mouth; for a ready avatar prepared before lip shapes
        were measured, the 'unmeasured' verdict (it speaks with the animator until prepared again)."""
        if avatar.mouth_coverage:
            return avatar.mouth_coverage
        return mouth_bank.coverage(None) if avatar.state == AvatarState.READY else None

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_warnings(self, avatar: Avatar) -> list[dict]:
        """Things to know about the avatar that are not errors: `large_output` when its prepared
        files are more than AVATAR_OUTPUT_WARN_RATIO times its video's size."""
        return output_warnings(avatar.video, avatar.size_bytes if avatar.state == AvatarState.READY else None)

    @extend_schema_field(OpenApiTypes.STR)
    def get_preview_url(self, avatar: Avatar) -> str:
        return reverse("avatar-preview", args=[avatar.avatar_id])

    @extend_schema_field(OpenApiTypes.STR)
    def get_events_url(self, avatar: Avatar) -> str:
        return f"/ws/avatars/{avatar.avatar_id}/"  # a Channels route: reverse() does not know it


class AvatarAcceptedSerializer(AvatarSerializer):
    """The avatar resource behind the seed's envelope (`status`, `message` from the context)."""

    ENVELOPE = ("status", "message")
    status = serializers.SerializerMethodField()
    message = serializers.SerializerMethodField()

    @extend_schema_field(OpenApiTypes.STR)
    def get_status(self, avatar: Avatar) -> str:
        return "success"

    @extend_schema_field(OpenApiTypes.STR)
    def get_message(self, avatar: Avatar) -> str:
        return self.context["message"]

    def to_representation(self, avatar: Avatar) -> dict:
        data = super().to_representation(avatar)
        return {**{key: data.pop(key) for key in self.ENVELOPE}, **data}


class AvatarCreatedSerializer(AvatarAcceptedSerializer):
    """The seed's 201: the envelope with the contract's `mock` field, always false here (the old
    server's field, kept for its clients: this server prepares avatars for real)."""

    ENVELOPE = ("status", "message", "mock")
    mock = serializers.SerializerMethodField()

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_mock(self, avatar: Avatar) -> bool:
        return False
