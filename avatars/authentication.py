"""API-key authentication: `X-API-Key: <key>` or `Authorization: Token <key>`."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions

from avatars.models import ApiKey, hash_api_key


class ApiClient:
    """The user an API key authenticates as: not a Django user, just the key's name."""

    is_authenticated = True
    is_staff = False

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key
        self.username = f"api-key:{api_key.name}"

    def __str__(self) -> str:
        return self.username


def key_from_headers(request) -> str | None:
    header_key = request.META.get("HTTP_X_API_KEY")
    if header_key:
        return header_key.strip()
    parts = authentication.get_authorization_header(request).split()
    if len(parts) == 2 and parts[0].lower() == b"token":
        return parts[1].decode("latin-1")
    return None


def find_active_key(key: str) -> ApiKey | None:
    api_key = ApiKey.objects.filter(key_hash=hash_api_key(key), revoked_at__isnull=True).first()
    if api_key is not None:
        now = timezone.now()
        # One write a minute at most: keep the key's "last used" useful without a write per request.
        if api_key.last_used_at is None or now - api_key.last_used_at > timedelta(minutes=1):
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return api_key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request):
        key = key_from_headers(request)
        if key is None:
            return None  # let the session authenticator try
        api_key = find_active_key(key)
        if api_key is None:
            raise exceptions.AuthenticationFailed("The API key is not valid or has been revoked.")
        return ApiClient(api_key), api_key

    def authenticate_header(self, request) -> str:
        # Having a challenge makes DRF answer 401 rather than 403 to a request with no credentials.
        return self.keyword
