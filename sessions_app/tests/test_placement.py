"""Placing sessions' stages on stage workers: shares, failover, hand-over, and the orphaned utterance;
and the media-server signalling endpoints' refusals (through the real URLconf)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from sessions_app import speaking
from sessions_app.errors import NameTaken
from sessions_app.live import placement
from sessions_app.models import (
    SessionState,
    StagePlacement,
    StageWorker,
    TutoringSession,
    Utterance,
    UtteranceState,
)
from tutors.models import Tutor

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sessions():
    tutor = Tutor.objects.create(name="Ada")
    return [TutoringSession.objects.create(tutor=tutor, student_id=n, avatar_id="a") for n in range(3)]


def age(worker: StageWorker, seconds: float = 60) -> None:
    StageWorker.objects.filter(pk=worker.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=seconds))


def test_workers_share_the_sessions_and_each_session_is_held_once(sessions):
    one, two = placement.register("w1", 0), placement.register("w2", 0)
    first = placement.take(one.pk)
    second = placement.take(two.pk)
    assert len(first) == 2 and len(second) == 1  # 3 sessions, 2 workers: ceil(3/2) for the first
    assert set(first) | set(second) == {str(s.session_id) for s in sessions}
    assert placement.take(one.pk) == [] and placement.take(two.pk) == []  # both alive: nothing moves
    assert StagePlacement.objects.count() == 3
    assert len({p.mountpoint_id for p in StagePlacement.objects.all()}) == 3


def test_a_dead_workers_sessions_move_to_a_live_one(sessions):
    one, two = placement.register("w1", 0), placement.register("w2", 0)
    held_by_one = placement.take(one.pk)
    placement.take(two.pk)
    age(one)  # its heartbeat stopped (kill -9)
    moved = placement.take(two.pk)
    assert sorted(moved) == sorted(held_by_one)
    assert set(placement.held(two.pk)) == {str(s.session_id) for s in sessions}
    assert placement.held(one.pk) == {}
    assert all(p.moves == 1 for p in StagePlacement.objects.filter(session_id__in=moved))
    # The dead worker comes back under its name: it is a new start, holding nothing.
    back = placement.register("w1", 0)
    assert back.pk == one.pk and placement.held(one.pk) == {}


def test_a_live_name_is_refused(sessions):
    placement.register("w1", 0)
    with pytest.raises(NameTaken):
        placement.register("w1", 0)


def test_a_released_session_and_a_leaving_worker_are_taken_at_once(sessions):
    one, two = placement.register("w1", 0), placement.register("w2", 0)
    taken = placement.take(one.pk)
    placement.take(two.pk)
    placement.stop_accepting(one.pk)
    assert placement.take(one.pk) == []  # stopping: takes nothing
    assert placement.release(one.pk, taken[0])
    assert placement.take(two.pk) == [taken[0]]  # no heartbeat has to age
    placement.leave(one.pk)
    assert set(placement.take(two.pk)) == set(taken[1:])
    assert not StageWorker.objects.filter(pk=one.pk).exists()


def test_max_sessions_caps_a_workers_share(sessions):
    one = placement.register("w1", 1)
    assert len(placement.take(one.pk)) == 1
    assert placement.take(one.pk) == []


def test_ended_sessions_are_not_placed(sessions):
    TutoringSession.objects.filter(pk=sessions[0].pk).update(state=SessionState.ENDED)
    one = placement.register("w1", 0)
    assert str(sessions[0].session_id) not in placement.take(one.pk)


def test_an_ended_sessions_placement_left_by_a_dead_worker_is_tidied_once(sessions):
    dead, live = placement.register("w1", 0), placement.register("w2", 0)
    placement.take(dead.pk)
    placement.take(dead.pk)
    held = list(placement.held(dead.pk))
    TutoringSession.objects.filter(pk=held[0]).update(state=SessionState.ENDED)
    assert placement.take_ended_orphans(live.pk) == []  # its worker is alive: it tidies up itself
    age(dead)
    mountpoint = StagePlacement.objects.get(pk=held[0]).mountpoint_id
    assert placement.take_ended_orphans(live.pk) == [mountpoint]
    assert placement.take_ended_orphans(live.pk) == []
    assert not StagePlacement.objects.filter(pk=held[0]).exists()


@pytest.mark.skipif("connections['default'].vendor == 'sqlite'",
                    reason="SQLite serialises writers: the race needs PostgreSQL (the second test pass)")
def test_two_workers_racing_for_a_dead_workers_sessions_take_each_once(sessions):
    dead, two, three = (placement.register(name, 0) for name in ("w1", "w2", "w3"))
    placement.take(dead.pk)
    placement.take(dead.pk)
    age(dead)
    results: dict[int, list[str]] = {}
    start = threading.Barrier(2)

    def take(worker):
        start.wait()
        try:
            results[worker.pk] = placement.take(worker.pk)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=take, args=(w,)) for w in (two, three)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = results[two.pk] + results[three.pk]
    assert len(everything) == len(set(everything))  # never taken twice
    held = {**placement.held(two.pk), **placement.held(three.pk)}
    assert len(held) == len(placement.held(two.pk)) + len(placement.held(three.pk))


def test_what_a_dead_stage_left_playing_ends_interrupted_and_the_queue_stays(sessions):
    session = sessions[0]
    playing = Utterance.objects.create(session=session, source="text", text="a", rate=24000, sample_count=10,
                                       state=UtteranceState.PLAYING, started_at=timezone.now())
    queued = Utterance.objects.create(session=session, source="text", text="b", rate=24000, sample_count=10)
    assert speaking.end_orphaned(session.session_id) == 1
    playing.refresh_from_db()
    queued.refresh_from_db()
    assert playing.state == UtteranceState.INTERRUPTED and queued.state == UtteranceState.QUEUED


# --- the signalling endpoints' refusals --------------------------------------------------------

def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["status"] == "error" and body["code"] == code and body["message"]
    return body


OFFER = {"type": "offer", "sdp": "v=0\r\n"}


def test_the_server_offering_form_is_refused_on_a_server_in_one_process(client_with_key, sessions):
    sid = sessions[0].session_id
    body = assert_error(client_with_key.post(f"/v1/sessions/{sid}/viewers", {}, format="json"), 409, "wrong_signalling")
    assert body["details"]["signalling"] == "viewer_offers"
    resource = client_with_key.get(f"/v1/sessions/{sid}").json()
    assert resource["webrtc"] == {"signalling": "viewer_offers", "url": f"/v1/sessions/{sid}/webrtc"}
    assert resource["stage"] is None


def offer_sdp(audio: str) -> str:
    """An aiortc offer with one audio section in `audio` direction (no connection follows)."""
    import asyncio

    from aiortc import RTCConfiguration, RTCPeerConnection

    async def make() -> str:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("audio", direction=audio)
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp
    return asyncio.run(make())


def test_a_microphone_connection_is_for_a_media_server_and_must_send_audio(client_with_key, sessions, settings):
    sid = sessions[0].session_id
    url = f"/v1/sessions/{sid}/microphone"
    sending = offer_sdp(audio="sendonly")
    body = assert_error(client_with_key.post(url, {"type": "offer", "sdp": sending}, format="json"), 409,
                        "wrong_signalling")
    assert body["details"]["signalling"] == "viewer_offers"
    settings.SESSION_MEDIA_SERVER = "janus"
    body = assert_error(client_with_key.post(url, {"type": "offer", "sdp": offer_sdp(audio="recvonly")}, format="json"),
                        400, "invalid_request")
    assert body["details"] == {"reason": "not_sending"}
    TutoringSession.objects.filter(pk=sid).update(state=SessionState.ENDED)
    assert_error(client_with_key.post(url, {"type": "offer", "sdp": sending}, format="json"), 404, "not_found")


def test_with_a_media_server_the_viewer_asks_for_an_offer(client_with_key, sessions, settings):
    settings.SESSION_MEDIA_SERVER = "janus"
    sid = sessions[0].session_id
    body = assert_error(client_with_key.post(f"/v1/sessions/{sid}/webrtc", OFFER, format="json"), 409,
                        "wrong_signalling")
    assert body["details"] == {"signalling": "server_offers", "ask_at": f"/v1/sessions/{sid}/viewers"}
    # Not placed on a worker yet: ask again (503 with Retry-After), and nothing is left behind.
    response = client_with_key.post(f"/v1/sessions/{sid}/viewers", {}, format="json")
    assert_error(response, 503, "stage_starting")
    assert response["Retry-After"] == "1"
    # Placed on a dead worker: the same.
    worker = placement.register("w1", 0)
    placement.take(worker.pk)
    StagePlacement.objects.update(video_port=5000, audio_port=5002)
    age(worker)
    assert_error(client_with_key.post(f"/v1/sessions/{sid}/viewers", {}, format="json"), 503, "stage_starting")
    assert not sessions[0].media_viewers.exists()
    resource = client_with_key.get(f"/v1/sessions/{sid}").json()
    assert resource["webrtc"]["signalling"] == "server_offers"
    assert resource["stage"]["worker"] == "w1" and resource["stage"]["alive"] is False
    # Answers: checked before anything else is looked up.
    viewer = f"/v1/sessions/{sid}/viewers/00000000-0000-0000-0000-000000000000"
    assert_error(client_with_key.post(f"{viewer}/answer", {"type": "offer", "sdp": "x"}, format="json"), 400,
                 "invalid_request")
    assert_error(client_with_key.post(f"{viewer}/answer", {"type": "answer", "sdp": "x"}, format="json"), 404,
                 "not_found")
    assert_error(client_with_key.post(f"/v1/sessions/{sid}/viewers/nope/answer", {"type": "answer", "sdp": "x"},
                                      format="json"), 404, "not_found")
    assert_error(client_with_key.delete(viewer), 404, "not_found")
    ended = sessions[1].session_id
    TutoringSession.objects.filter(pk=ended).update(state=SessionState.ENDED)
    assert_error(client_with_key.post(f"/v1/sessions/{ended}/viewers", {}, format="json"), 404, "not_found")
