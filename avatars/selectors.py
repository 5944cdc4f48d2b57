"""Reading avatars for lists; writes live in services."""

from __future__ import annotations

from avatars.models import Avatar


def list_avatar_ids(*, state: str | None = None, tutor_id: int | None = None, limit: int = 50,
                    offset: int = 0) -> tuple[int, list[str]]:
    """(number of matches, one page of their ids newest first)."""
    avatars = Avatar.objects.all()
    if state:
        avatars = avatars.filter(state=state)
    if tutor_id:
        avatars = avatars.filter(tutor_id=tutor_id)
    total = avatars.count()
    ids = list(avatars.order_by("-created_at", "-id").values_list("avatar_id", flat=True)[offset : offset + limit])
    return total, ids
