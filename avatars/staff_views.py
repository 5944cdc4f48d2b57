"""Staff page: every avatar, also those made without a tutor (through /v1/avatars), which no
tutor's page shows."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import render

from avatars.models import Avatar
from common.paging import page_of

PAGE_SIZE = 25


@staff_member_required
def avatar_list(request):
    avatars = Avatar.objects.select_related("tutor").order_by("-created_at", "-id")
    without_tutor = request.GET.get("tutor") == "none"
    if without_tutor:
        avatars = avatars.filter(tutor__isnull=True)
    number, paging = page_of(request, avatars.count(), PAGE_SIZE)
    shown = avatars[(number - 1) * PAGE_SIZE:number * PAGE_SIZE]
    return render(request, "staff/avatar_list.html", {"avatars": shown, "paging": paging,
                                                      "without_tutor": without_tutor})
