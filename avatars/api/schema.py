"""OpenAPI description of the avatar API (drf-spectacular): the key scheme and the small response
shapes; the avatar resource itself is `serializers.AvatarSerializer`, which also renders it."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers

from common.api_schema import errors


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "avatars.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "X-API-Key",
                "description": "Or `Authorization: Token <key>`. Create one with `manage.py create_api_key NAME`."}


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
