"""OpenAPI description of the avatar API (drf-spectacular): response shapes and the key scheme."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers

from avatars.models import AvatarState
from common.api_schema import errors


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "avatars.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "X-API-Key",
                "description": "Or `Authorization: Token <key>`. Create one with `manage.py create_api_key NAME`."}


class VideoFactsSerializer(serializers.Serializer):
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    fps = serializers.FloatField()
    frame_count = serializers.IntegerField()
    duration_s = serializers.FloatField()


class AvatarResourceSerializer(serializers.Serializer):
    avatar_id = serializers.CharField()
    tutor_id = serializers.IntegerField(allow_null=True)
    state = serializers.ChoiceField(choices=AvatarState.choices)
    stage = serializers.CharField(allow_null=True)
    progress = serializers.FloatField()
    frames_done = serializers.IntegerField()
    frames_total = serializers.IntegerField()
    apply_blur = serializers.BooleanField()
    source = serializers.ChoiceField(choices=["upload", "path"])
    avatar_path = serializers.CharField()
    error = serializers.DictField(allow_null=True)
    video = VideoFactsSerializer(allow_null=True)
    faces = serializers.DictField(allow_null=True)
    preview_url = serializers.CharField()
    events_url = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    ready_at = serializers.DateTimeField(allow_null=True)


class AvatarCreatedSerializer(AvatarResourceSerializer):
    status = serializers.CharField(default="success")
    message = serializers.CharField()
    mock = serializers.BooleanField(default=False)


class AvatarListSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    avatars = serializers.ListField(child=serializers.CharField())


class DeletedSerializer(serializers.Serializer):
    status = serializers.CharField(default="success")
    avatar_id = serializers.CharField()
    message = serializers.CharField()


WAIT = OpenApiParameter("wait", float, description="Hold the answer up to this many seconds (max 300) "
                                                   "until the avatar is ready or failed.")

__all__ = ["extend_schema", "OpenApiParameter", "OpenApiResponse", "errors", "WAIT"]
