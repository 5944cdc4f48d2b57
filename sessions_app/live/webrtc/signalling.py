"""POST /v1/sessions/{id}/webrtc: an offer in, an answer out, a viewer of the session made.

The rules: the offer must be an SDP offer that asks to receive video or audio and carries what
WebRTC requires (ICE credentials, a DTLS fingerprint); the session must exist and be active; the
session must have a viewer place left (SESSION_MAX_VIEWERS, WebSocket streams counted too). A
refused offer makes no peer connection and holds no place.
"""

from __future__ import annotations

from typing import Callable

from aiortc import RTCSessionDescription
from aiortc.exceptions import InvalidAccessError, InvalidStateError, OperationError
from aiortc.sdp import SessionDescription
from django.conf import settings

from common.errors import InvalidRequest, NotFound
from sessions_app import services
from sessions_app.errors import AnswerTimeout, TooManyViewers, WrongSignalling
from sessions_app.models import SessionState
from sessions_app.live.watcher import viewers
from sessions_app.live.webrtc.peers import start_peer

MAX_SDP_CHARS = 64 * 1024  # a browser's offer is 3-8 KB


def _refused(reason: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"The offer cannot be answered: {message}", {"reason": reason})


def parse_offer(sdp, kind, sends_audio: bool = False) -> RTCSessionDescription:
    """The offer, checked; InvalidRequest (400) saying what is wrong with it otherwise. A viewer's
    offer must receive video or audio; a microphone's (`sends_audio`) must send audio."""
    if kind != "offer":
        raise _refused("not_an_offer", f"\"type\" must be \"offer\" (got {kind!r}).")
    if not isinstance(sdp, str) or not sdp.strip():
        raise _refused("no_sdp", "\"sdp\" must be the offer's SDP text.")
    if len(sdp) > MAX_SDP_CHARS:
        raise _refused("sdp_too_long", f"the SDP is longer than {MAX_SDP_CHARS} characters.")
    try:
        parsed = SessionDescription.parse(sdp)
    except Exception as exc:  # the parser asserts and indexes its way through; any failure is a bad SDP
        raise _refused("bad_sdp", f"the SDP cannot be read ({type(exc).__name__}).") from None
    media = [m for m in parsed.media if m.kind in ("audio", "video")]
    if not media:
        raise _refused("no_media", "the SDP has no audio or video section.")
    if sends_audio:
        if not any(m.kind == "audio" and m.direction in (None, "sendrecv", "sendonly") for m in media):
            raise _refused("not_sending", "the offer sends no audio (an audio section, sendonly or sendrecv).")
    elif not any(m.direction in (None, "sendrecv", "recvonly") for m in media):
        raise _refused("not_receiving", "the offer receives neither video nor audio (recvonly or sendrecv).")
    for m in media:
        if m.ice is None or not m.ice.usernameFragment or not m.ice.password:
            raise _refused("no_ice", f"the {m.kind} section has no ICE credentials (a=ice-ufrag, a=ice-pwd).")
        if m.dtls is None or not m.dtls.fingerprints:
            raise _refused("no_dtls", f"the {m.kind} section has no DTLS fingerprint (a=fingerprint).")
    return RTCSessionDescription(sdp=sdp, type="offer")


def answer_offer(session_id: str, sdp, kind, allowed: Callable[[], bool]) -> dict:
    """Answer a viewer's offer: {"type": "answer", "sdp", "codecs"}. `allowed()` says, when asked
    again later, whether the viewer may still watch (a revoked API key: no)."""
    return _answer(session_id, parse_offer(sdp, kind), allowed, start_peer)


def answer_microphone(session_id: str, sdp, kind, allowed: Callable[[], bool]) -> dict:
    """Answer the offer of a viewer's microphone, when the session's media come from the media
    server (live/webrtc/microphone.py): {"type": "answer", "sdp", "codecs"}."""
    from sessions_app.live import placement
    from sessions_app.live.webrtc.microphone import start_microphone

    offer = parse_offer(sdp, kind, sends_audio=True)
    if not placement.scaled_out():
        raise WrongSignalling("This server hears the microphone on the viewer's own connection: offer it as a "
                              f"sendrecv audio section to /v1/sessions/{session_id}/webrtc.",
                              {"signalling": "viewer_offers", "offer_to": f"/v1/sessions/{session_id}/webrtc"})
    return _answer(session_id, offer, allowed, start_microphone)


def _answer(session_id: str, offer: RTCSessionDescription, allowed: Callable[[], bool], start) -> dict:
    """The session active, a viewer place taken, `start(session_id, offer, allowed)` answering
    (it frees the place when it fails)."""
    session = services.session_or_none(session_id)
    if session is None or session.state != SessionState.ACTIVE:
        raise NotFound(f"Session '{session_id}' does not exist or has ended.")
    if not viewers.join(str(session.session_id)):
        raise TooManyViewers(f"Session '{session_id}' has {settings.SESSION_MAX_VIEWERS} viewers already.",
                             {"limit": settings.SESSION_MAX_VIEWERS})
    try:
        answer = start(str(session.session_id), offer, allowed)
    except TimeoutError:
        raise AnswerTimeout("The answer took too long (gathering ICE candidates: are the STUN/TURN servers reachable?).",
                            {"timeout_s": settings.SESSION_WEBRTC_ANSWER_TIMEOUT_S}) from None
    except (ValueError, AssertionError, InvalidAccessError, InvalidStateError, OperationError) as exc:
        raise _refused("not_negotiable", str(exc) or "no codec or transport both sides support.") from None
    return {"type": answer.type, "sdp": answer.sdp, "codecs": chosen_codecs(answer.sdp)}


def chosen_codecs(answer_sdp: str) -> dict[str, str]:
    """The codec of each media section of an answer: {"video": "VP8", "audio": "opus"}."""
    chosen = {}
    for media in SessionDescription.parse(answer_sdp).media:
        if media.kind in ("audio", "video") and media.rtp.codecs and media.kind not in chosen:
            chosen[media.kind] = media.rtp.codecs[0].mimeType.split("/", 1)[-1]
    return chosen
