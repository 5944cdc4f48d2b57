"""WebRTC viewers through the media server (SESSION_MEDIA_SERVER="janus"): the server offers, the
viewer answers.

POST /v1/sessions/{id}/viewers makes a viewer: a Janus session with a Streaming handle watching
the session's mountpoint; Janus's offer goes back to the viewer. POST .../viewers/{viewer_id}/answer
hands the viewer's answer to Janus, and media flows from Janus to the viewer. DELETE leaves.
Any web process answers any of these: the viewer's Janus ids are in the database (MediaViewer),
and the stage worker that holds the session keeps the viewers' Janus sessions alive and drops
those that hung up (sessions_app/live/stage_worker.py).
"""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from common.errors import InvalidRequest, NotFound
from sessions_app import services
from sessions_app.errors import (
    JanusError,
    JanusUnavailable,
    MediaServerUnavailable,
    StageStarting,
    TooManyViewers,
    ViewerAnswered,
    WrongSignalling,
)
from sessions_app.live import placement
from sessions_app.live.janus import JanusClient
from sessions_app.models import MediaViewer, SessionState, TutoringSession

logger = logging.getLogger(__name__)

MAX_SDP_CHARS = 64 * 1024


def janus_client() -> JanusClient:
    return JanusClient(settings.JANUS_URL, settings.JANUS_ADMIN_KEY, timeout=10.0)


def refuse_unless_scaled_out(session_id) -> None:
    if not placement.scaled_out():
        raise WrongSignalling("This server answers the viewer's offer: POST it to "
                              f"/v1/sessions/{session_id}/webrtc (docs/api.md, \"WebRTC\").",
                              {"signalling": "viewer_offers", "offer_to": f"/v1/sessions/{session_id}/webrtc"})


def refuse_if_scaled_out(session_id) -> None:
    """A viewer's offer to a server whose media comes from Janus (which makes the offer itself)."""
    if placement.scaled_out():
        raise WrongSignalling("This server's media server makes the offer: POST {} to "
                              f"/v1/sessions/{session_id}/viewers, then POST your answer to the viewer's "
                              "answer_url (docs/api.md, \"WebRTC through the media server\").",
                              {"signalling": "server_offers", "ask_at": f"/v1/sessions/{session_id}/viewers"})


def _active_session(session_id) -> TutoringSession:
    session = services.session_or_none(session_id)
    if session is None or session.state != SessionState.ACTIVE:
        raise NotFound(f"Session '{session_id}' does not exist or has ended.")
    return session


def add_viewer(session_id) -> dict:
    """A new viewer of the session: {"viewer_id", "type": "offer", "sdp", "answer_url",
    "ice_servers", "session"}. Refused while the session's stage is not running on a live worker
    (503 stage_starting, ask again) and when the session has SESSION_MAX_VIEWERS viewers."""
    refuse_unless_scaled_out(session_id)
    session = _active_session(session_id)
    where = placement.placement_of(session.session_id)
    if not placement.worker_alive(where) or not where.video_port:
        raise StageStarting(f"Session '{session.session_id}' is being placed on a stage worker; ask again in a second.",
                            {"retry_after_s": StageStarting.retry_after_s})
    # The place is taken first (the session row locked while counting: two requests cannot both
    # take the last one), then Janus is asked; a failure there gives the place back.
    with transaction.atomic():
        TutoringSession.objects.select_for_update().filter(pk=session.pk).first()
        if MediaViewer.objects.filter(session=session).count() >= settings.SESSION_MAX_VIEWERS:
            raise TooManyViewers(f"Session '{session.session_id}' has {settings.SESSION_MAX_VIEWERS} viewers already.",
                                 {"limit": settings.SESSION_MAX_VIEWERS})
        viewer = MediaViewer.objects.create(session=session, janus_session=0, janus_handle=0)
    client = janus_client()
    try:
        janus_session, handle, offer = client.watch(where.mountpoint_id)
    except (JanusError, JanusUnavailable) as exc:
        MediaViewer.objects.filter(pk=viewer.pk).delete()
        raise MediaServerUnavailable(f"The media server could not make an offer: {exc}",
                                     {"retry_after_s": MediaServerUnavailable.retry_after_s}) from None
    finally:
        client.close()
    if not MediaViewer.objects.filter(pk=viewer.pk).update(janus_session=janus_session, janus_handle=handle):
        _destroy_quietly(janus_session)  # the session ended meanwhile and took the row
        raise NotFound(f"Session '{session.session_id}' has ended.")
    logger.info("session %s: viewer %s offered (Janus session %s)", session.session_id, viewer.pk, janus_session)
    return {"viewer_id": str(viewer.pk), "type": "offer", "sdp": offer,
            "answer_url": f"/v1/sessions/{session.session_id}/viewers/{viewer.pk}/answer",
            "ice_servers": settings.SESSION_WEBRTC_ICE_SERVERS, "session": where.header or None}


def _viewer(session_id, viewer_id) -> MediaViewer:
    session = _active_session(session_id)
    try:
        key = uuid.UUID(str(viewer_id))
    except ValueError:
        key = None
    viewer = MediaViewer.objects.filter(pk=key, session=session).first() if key else None
    if viewer is None:
        raise NotFound(f"Viewer '{viewer_id}' of session '{session.session_id}' does not exist "
                       "(it left, hung up, or its media server restarted: ask for a new offer).")
    return viewer


def answer_viewer(session_id, viewer_id, sdp, kind) -> dict:
    """The viewer's answer to Janus's offer; media starts flowing."""
    refuse_unless_scaled_out(session_id)
    if kind != "answer":
        raise InvalidRequest(f"\"type\" must be \"answer\" (got {kind!r}).", {"reason": "not_an_answer"})
    if not isinstance(sdp, str) or not sdp.strip():
        raise InvalidRequest("\"sdp\" must be the answer's SDP text.", {"reason": "no_sdp"})
    if len(sdp) > MAX_SDP_CHARS:
        raise InvalidRequest(f"The SDP is longer than {MAX_SDP_CHARS} characters.", {"reason": "sdp_too_long"})
    viewer = _viewer(session_id, viewer_id)
    if viewer.answered_at is not None:
        raise _answered(viewer)
    # Marked answered only once Janus has started it: the stage worker then begins to long-poll the
    # viewer's Janus session, and a poll of its own before that would take the event `start` waits
    # for. Two answers at once: Janus refuses the second start, which is then told so.
    client = janus_client()
    try:
        client.start(viewer.janus_session, viewer.janus_handle, sdp)
    except JanusError as exc:
        if MediaViewer.objects.filter(pk=viewer.pk, answered_at__isnull=False).exists():
            raise _answered(viewer) from None
        remove_viewer(viewer)
        raise InvalidRequest(f"The media server refused the answer: {exc}", {"reason": "not_negotiable"}) from None
    except JanusUnavailable as exc:
        remove_viewer(viewer)
        raise MediaServerUnavailable(f"The media server cannot be reached: {exc}") from None
    finally:
        client.close()
    MediaViewer.objects.filter(pk=viewer.pk, answered_at__isnull=True).update(answered_at=timezone.now())
    return {"viewer_id": str(viewer.pk), "state": "answered"}


def _answered(viewer: MediaViewer) -> ViewerAnswered:
    return ViewerAnswered(f"Viewer '{viewer.pk}' has answered already; ask for a new offer to connect again.")


def leave(session_id, viewer_id) -> None:
    remove_viewer(_viewer(session_id, viewer_id))


def remove_viewer(viewer: MediaViewer) -> None:
    """Forget the viewer and close its Janus session (which hangs up its peer connection)."""
    if MediaViewer.objects.filter(pk=viewer.pk).delete()[0] and viewer.janus_session:
        _destroy_quietly(viewer.janus_session)


def _destroy_quietly(janus_session: int) -> None:
    client = janus_client()
    try:
        client.destroy_session(janus_session)
    except (JanusError, JanusUnavailable):
        pass  # gone already (Janus restarted, or it timed out)
    finally:
        client.close()
