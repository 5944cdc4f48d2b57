"""Request validation, and the webhook endpoint resource of api.md."""

from __future__ import annotations

from rest_framework import serializers

from common.api_input import StrictBooleanField
from webhooks.events import EVENT_TYPES


class CreateWebhookSerializer(serializers.Serializer):
    # The URL's own rules (scheme, length, address) are the service's, with details.reason.
    url = serializers.CharField(trim_whitespace=False, help_text="http(s) URL at a public address.")
    events = serializers.ListField(child=serializers.CharField(), required=False, default=lambda: ["*"],
                                   help_text=f'Event types ({", ".join(EVENT_TYPES)}), or ["*"] for all.')
    active = StrictBooleanField(required=False, default=True)
    description = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")


class UpdateWebhookSerializer(serializers.Serializer):
    url = serializers.CharField(required=False, trim_whitespace=False)
    events = serializers.ListField(child=serializers.CharField(), required=False)
    active = StrictBooleanField(required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=200)


class WebhookListQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=50)
    offset = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1, default=0)


class WebhookSerializer(serializers.Serializer):
    """A webhook endpoint. `secret` is only in the create answer."""

    webhook_id = serializers.UUIDField(source="pk")
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.CharField())
    active = serializers.BooleanField()
    description = serializers.CharField()
    disabled_reason = serializers.CharField(allow_blank=True)
    disabled_at = serializers.DateTimeField(allow_null=True)
    failing_since = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(help_text="Signs every delivery; shown only in this answer.")


class WebhookListSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    webhooks = WebhookSerializer(many=True)
