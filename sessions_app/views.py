"""Staff pages: the sessions, and one session's avatar stream as a viewer sees it."""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from common.api_errors import STATUS_BY_CODE, error_body
from common.errors import ServiceError
from common.paging import page_of
from avatars.models import Avatar
from sessions_app import services, speaking
from sessions_app.live import placement
from sessions_app.api.serializers import UtteranceSerializer
from sessions_app.models import END_REASON_WORDS, TutoringSession
from sessions_app.live.webrtc.signalling import answer_offer


PAGE_SIZE = 25
# The student of a session a staff member starts from a tutor's page, to see the tutor speak.
STAFF_TEST_STUDENT_ID = 0


def _refusal(exc: ServiceError) -> JsonResponse:
    """A refused page request, answered in the API's error shape."""
    response = JsonResponse(error_body(exc.code, exc.message, exc.details), status=STATUS_BY_CODE.get(exc.code, 400))
    if exc.retry_after_s:
        response["Retry-After"] = str(exc.retry_after_s)
    return response


@staff_member_required
def session_list(request):
    services.end_idle_sessions()
    sessions = TutoringSession.objects.select_related("tutor").order_by("-created_at", "-pk")
    number, paging = page_of(request, sessions.count(), PAGE_SIZE)
    shown = list(sessions[(number - 1) * PAGE_SIZE:number * PAGE_SIZE])
    _with_shown_state(shown)
    return render(request, "staff/session_list.html", {"sessions": shown, "paging": paging})


def _with_shown_state(sessions: list[TutoringSession]) -> None:
    """Each session's state as clients see it (`waiting` while its avatar is prepared), in one query."""
    states = dict(Avatar.objects.filter(avatar_id__in={session.avatar_id for session in sessions})
                  .values_list("avatar_id", "state"))
    for session in sessions:
        session.shown_state = services.shown_state(session, states.get(session.avatar_id))


@staff_member_required
@require_POST
def session_start(request, tutor_id: int):
    """The tutor page's "Start a session": a session with the staff test student, then its page."""
    try:
        session = services.create_session(tutor_id=tutor_id, student_id=STAFF_TEST_STUDENT_ID)
    except ServiceError as exc:
        messages.error(request, f"{exc.code}: {exc.message}", extra_tags=exc.code)
        return redirect("staff-tutor", tutor_id=tutor_id)
    return redirect("staff-session", session_id=session.session_id)


@staff_member_required
@require_POST
def session_end(request, session_id):
    session = services.session_or_none(session_id)
    if session is None:
        raise Http404("No such session")
    services.end_session(session.session_id, reason="ended_by_staff")
    messages.success(request, f"Session {session.session_id} ended.")
    return redirect("staff-sessions")


@staff_member_required
def session_detail(request, session_id):
    session = services.session_or_none(session_id)
    if session is None:
        raise Http404("No such session")
    _with_shown_state([session])
    return render(request, "staff/session_detail.html",
                  {"session": session, "max_chars": settings.SESSION_SPEAK_MAX_CHARS,
                   "ice_servers": settings.SESSION_WEBRTC_ICE_SERVERS, "end_reasons": END_REASON_WORDS,
                   "media_server": placement.scaled_out(),
                   "test_student_id": STAFF_TEST_STUDENT_ID})


@staff_member_required
@require_POST
def session_speak(request, session_id):
    """The session page's "Say" box (answers JSON, like the API's speak)."""
    try:
        utterance = speaking.speak_text(session_id, request.POST.get("text", ""),
                                        interrupt=request.POST.get("interrupt") == "true")
    except ServiceError as exc:
        return _refusal(exc)
    return JsonResponse(UtteranceSerializer(utterance).data, status=202)


# A typed sentence or an SDP offer: a larger body is refused from its Content-Length before it is
# read (tutorplatform/request_bodies.py).
session_speak.max_body_bytes = 1024 * 1024


@staff_member_required
@require_POST
def session_interrupt(request, session_id):
    try:
        speaking.interrupt(session_id)
    except ServiceError as exc:
        return _refusal(exc)
    return JsonResponse({"interrupted": True})


@staff_member_required
@require_POST
def session_webrtc(request, session_id):
    """The session page's WebRTC offer (JSON {"sdp", "type"}; answers like the API's webrtc)."""
    try:
        offer = json.loads(request.body or b"{}")
        if not isinstance(offer, dict):
            raise ValueError
    except ValueError:
        return JsonResponse(error_body("invalid_request", "Send JSON {\"sdp\", \"type\": \"offer\"}."), status=400)
    try:
        answer = answer_offer(str(session_id), offer.get("sdp"), offer.get("type"), allowed=lambda: True)
    except ServiceError as exc:
        return _refusal(exc)
    return JsonResponse(answer)


session_webrtc.max_body_bytes = 1024 * 1024
