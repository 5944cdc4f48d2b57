"""OpenAPI helpers every API app uses: the error body's schema, for any set of statuses."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    status = serializers.CharField(default="error")
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField()


def errors(*statuses: int) -> dict:
    """Responses for `extend_schema`: the contract's error body at each of `statuses`."""
    return {status: OpenApiResponse(ErrorSerializer) for status in statuses}


__all__ = ["ErrorSerializer", "errors", "extend_schema"]
