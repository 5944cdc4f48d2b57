"""A create request's `callback_url` (avatars: path and upload; tutors): that resource's events,
signed with a secret the create answer shows once (`callback_secret`).

The views read it before anything is created (a refused URL leaves nothing behind its 400), then
register it for the new resource.
"""

from __future__ import annotations

from webhooks import services
from webhooks.events import AVATAR_CALLBACK_EVENTS, TUTOR_CALLBACK_EVENTS
from webhooks.models import EndpointKind

FIELD = "callback_url"


def read(data) -> str | None:
    """The request's callback URL once checked (UrlRefused otherwise), or None when it has none."""
    url = data.get(FIELD) if hasattr(data, "get") else None
    if url is None or url == "":
        return None
    return services.check_url(url, FIELD)


def register(url: str | None, *, avatar_id: str | None = None, tutor_id: int | None = None) -> str | None:
    """Register the callback for the avatar (or the tutor); its secret, or None without a URL."""
    if url is None:
        return None
    events = AVATAR_CALLBACK_EVENTS if avatar_id else TUTOR_CALLBACK_EVENTS
    endpoint = services.create_endpoint(url=url, events=events, kind=EndpointKind.CALLBACK,
                                        avatar_id=avatar_id or "", tutor_id=None if avatar_id else tutor_id)
    return endpoint.secret
