"""A session's conversation as it stands, in order: what the tutor said (or says now, or will say
next) and what the student said. Kept with the session: an ended session's transcript stays."""

from __future__ import annotations

from sessions_app.models import StudentTurn, Utterance, UtteranceState
from sessions_app.services import get_session


def transcript(session_id) -> dict:
    """{"session_id", "state", "entries"}: NotFound for an unknown session. The tutor's
    utterances come in the order they play; one dropped before it was heard is left out (an
    interrupted one that had started is in, with its state)."""
    session = get_session(session_id)
    entries = []
    utterances = (Utterance.objects.filter(session=session).exclude(state=UtteranceState.INTERRUPTED,
                                                                    started_at__isnull=True)
                  .order_by("id").only("utterance_id", "source", "text", "state", "sample_count", "rate",
                                       "created_at", "started_at", "ended_at", "open"))
    for utterance in utterances:
        entries.append({
            "speaker": "tutor", "utterance_id": str(utterance.utterance_id), "source": utterance.source,
            "text": utterance.text if utterance.source == "text" else None, "state": utterance.state,
            "open": utterance.open, "duration_s": round(utterance.duration_s, 3),
            "created_at": utterance.created_at, "started_at": utterance.started_at, "ended_at": utterance.ended_at,
        })
    # The student's turns among them, by when each began (the tutor's in play order: an utterance
    # not started yet comes after every turn).
    turns = [{"speaker": "student", "turn_id": str(turn.turn_id), "text": turn.text, "start_pts_us": turn.start_pts_us,
              "end_pts_us": turn.end_pts_us, "barge_in": turn.barge_in, "started_at": turn.started_at}
             for turn in StudentTurn.objects.filter(session=session).order_by("started_at", "id")]
    merged, pending = [], list(turns)
    for entry in entries:
        while pending and entry["started_at"] is not None and pending[0]["started_at"] < entry["started_at"]:
            merged.append(pending.pop(0))
        if entry["started_at"] is None:
            merged.extend(pending)
            pending = []
        merged.append(entry)
    return {"session_id": str(session.session_id), "state": session.state, "entries": merged + pending}
