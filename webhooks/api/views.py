"""The /v1/webhooks endpoints: parse, call a service, render."""

from __future__ import annotations

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api_input import validated
from common.api_schema import errors, extend_schema
from webhooks import services
from webhooks.api.serializers import (
    CreateWebhookSerializer,
    UpdateWebhookSerializer,
    WebhookCreatedSerializer,
    WebhookListQuerySerializer,
    WebhookListSerializer,
    WebhookSerializer,
)


class WebhookListCreateView(APIView):
    @extend_schema(operation_id="v1_webhooks_list", parameters=[WebhookListQuerySerializer],
                   responses={200: WebhookListSerializer, **errors(400, 401)})
    def get(self, request):
        total, endpoints = services.list_endpoints(**validated(WebhookListQuerySerializer, request.query_params))
        return Response({"total": total, "webhooks": WebhookSerializer(endpoints, many=True).data})

    @extend_schema(request=CreateWebhookSerializer, responses={201: WebhookCreatedSerializer, **errors(400, 401)})
    def post(self, request):
        endpoint = services.create_endpoint(**validated(CreateWebhookSerializer, request.data))
        return Response(WebhookCreatedSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class WebhookDetailView(APIView):
    @extend_schema(responses={200: WebhookSerializer, **errors(401, 404)})
    def get(self, request, webhook_id: str):
        return Response(WebhookSerializer(services.get_endpoint(webhook_id)).data)

    @extend_schema(request=UpdateWebhookSerializer, responses={200: WebhookSerializer, **errors(400, 401, 404)})
    def patch(self, request, webhook_id: str):
        endpoint = services.update_endpoint(webhook_id, **validated(UpdateWebhookSerializer, request.data))
        return Response(WebhookSerializer(endpoint).data)

    @extend_schema(responses={200: WebhookSerializer, **errors(401, 404)})
    def delete(self, request, webhook_id: str):
        services.delete_endpoint(webhook_id)
        return Response({"status": "success", "webhook_id": webhook_id, "message": f"Webhook {webhook_id} deleted."})
