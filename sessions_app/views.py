"""Staff pages: the sessions, and one session's avatar stream as a viewer sees it."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404
from django.shortcuts import render

from sessions_app import services
from sessions_app.models import TutoringSession


@staff_member_required
def session_list(request):
    sessions = TutoringSession.objects.select_related("tutor").order_by("-created_at")[:200]
    return render(request, "staff/session_list.html", {"sessions": sessions})


@staff_member_required
def session_detail(request, session_id):
    session = services.session_or_none(session_id)
    if session is None:
        raise Http404("No such session")
    return render(request, "staff/session_detail.html", {"session": session})
