"""Request validation, and the tutor resource (the answer and its OpenAPI description)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from avatars.models import Avatar, AvatarState
from avatars.preparation import output_warnings
from common.api_input import MAX_OFFSET, StrictBooleanField
from tutors.models import Tutor
from tutors.services import MAX_NAME


class TutorListQuerySerializer(serializers.Serializer):
    search = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=50)
    offset = serializers.IntegerField(required=False, min_value=0, max_value=MAX_OFFSET, default=0)


class CreateTutorSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=MAX_NAME)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=10000)
    avatar_video = serializers.FileField(required=False, allow_null=True, allow_empty_file=True, default=None)
    apply_blur = StrictBooleanField(required=False, default=False)


class UpdateTutorSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, max_length=MAX_NAME)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10000)
    avatar_video = serializers.FileField(required=False, allow_null=True, allow_empty_file=True, default=None)
    apply_blur = StrictBooleanField(required=False, default=False)


class TutorAvatarSerializer(serializers.Serializer):
    """A tutor's avatar in brief; the whole resource is at /v1/avatars/{avatar_id}."""

    avatar_id = serializers.CharField()
    state = serializers.CharField()
    stage = serializers.CharField(allow_null=True)
    progress = serializers.FloatField()
    error = serializers.DictField(allow_null=True)
    size_bytes = serializers.IntegerField(allow_null=True)
    ready_at = serializers.DateTimeField(allow_null=True)
    warnings = serializers.SerializerMethodField()

    def to_representation(self, avatar: Avatar) -> dict:
        data = super().to_representation(avatar)
        data["progress"] = round(avatar.progress, 1)
        return data

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_warnings(self, avatar: Avatar) -> list[dict]:
        """As the avatar resource's `warnings` (`large_output`)."""
        return output_warnings(avatar.video, avatar.size_bytes if avatar.state == AvatarState.READY else None)


class TutorSerializer(serializers.Serializer):
    """The tutor resource. `avatar_id` is the ready avatar sessions show (as in the seed's
    tutor table); `avatar` describes it; `pending_avatar` is the one being made from the newest
    video (or that failed, with its error), which the tutor switches to when it is ready."""

    id = serializers.IntegerField(source="pk")
    tutor_id = serializers.IntegerField(source="pk")
    name = serializers.CharField()
    description = serializers.CharField()
    avatar_id = serializers.CharField(allow_null=True)
    avatar = serializers.SerializerMethodField()
    pending_avatar = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField(allow_null=True)

    def _avatar(self, avatar_id: str | None) -> dict | None:
        avatars = self.context.get("avatars")
        avatar = (avatars.get(avatar_id) if avatars is not None
                  else Avatar.objects.filter(avatar_id=avatar_id).first()) if avatar_id else None
        return TutorAvatarSerializer(avatar).data if avatar else None

    @extend_schema_field(TutorAvatarSerializer(allow_null=True))
    def get_avatar(self, tutor: Tutor) -> dict | None:
        return self._avatar(tutor.avatar_id)

    @extend_schema_field(TutorAvatarSerializer(allow_null=True))
    def get_pending_avatar(self, tutor: Tutor) -> dict | None:
        return self._avatar(tutor.pending_avatar_id)


def tutor_list_context(tutors: list[Tutor]) -> dict:
    """The avatars a page of tutors names, fetched in one query."""
    named = {avatar_id for tutor in tutors for avatar_id in (tutor.avatar_id, tutor.pending_avatar_id) if avatar_id}
    return {"avatars": {avatar.avatar_id: avatar for avatar in Avatar.objects.filter(avatar_id__in=named)}}


class TutorListSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    tutors = TutorSerializer(many=True)


class TutorDeletedSerializer(serializers.Serializer):
    status = serializers.CharField(default="success")
    tutor_id = serializers.IntegerField()
    message = serializers.CharField()
