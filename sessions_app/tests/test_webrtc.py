"""WebRTC delivery through the real URLconf: an aiortc viewer in the test offers, the server
answers and sends the session's video and audio over a real peer connection on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import time

import cv2
import numpy as np
import pytest
from django.conf import settings as django_settings

from avatars import jobs, services as avatar_services, storage
from avatars.models import AvatarSource
from sessions_app import services
from sessions_app.live.stage import stages
from sessions_app.live.watcher import viewers
from sessions_app.live.webrtc import peers as peer_module
from sessions_app.live.webrtc.addresses import offer_only
from sessions_app.live.webrtc.media import PeerFeed
from testsupport.webrtc_viewer import WebRTCViewer, idle_thumbnails, mouth_change
from tutors.models import Tutor

pytestmark = pytest.mark.django_db(transaction=True)

SENTENCE = "Hello! Today we will look at fractions, one small step at a time."


@pytest.fixture(autouse=True)
def loopback_only(settings):
    """Media stays on loopback (the server's candidates and this viewer's), and no peer outlives its test."""
    settings.SESSION_WEBRTC_HOST_ADDRESSES = ["127.0.0.1"]
    offer_only(["127.0.0.1"])
    yield
    asyncio.run_coroutine_threadsafe(peer_module.close_all(), peer_module.media_loop()).result(10)
    offer_only([])


@pytest.fixture
def session_id(face_video) -> str:
    tutor = Tutor.objects.create(name="Ada")
    avatar_services.create_avatar(avatar_id="rtc", local_path=face_video[0], original_name="v.mp4",
                                  source=AvatarSource.UPLOAD, tutor_id=tutor.pk)
    assert jobs.backend().wait_idle(60)
    return str(services.create_session(tutor_id=tutor.pk, student_id=1).session_id)


def poster(client, session_id: str):
    def post(body: dict) -> dict:
        response = client.post(f"/v1/sessions/{session_id}/webrtc", body, format="json")
        assert response.status_code == 200, response.content
        return response.json()
    return post


@contextlib.asynccontextmanager
async def webrtc_viewer(client, session_id: str, video_codec: str | None = None, microphone=None, **options):
    """A viewer whose offer was answered (its answer in `viewer.answer`), closed however the test ends."""
    viewer = WebRTCViewer("", session_id, "", **options)
    try:
        await viewer.start(post=poster(client, session_id), video_codec=video_codec, microphone=microphone)
        yield viewer
    finally:
        await viewer.close()


async def until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not in {timeout_s} s: {what}"
        await asyncio.sleep(0.05)


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["status"] == "error" and body["code"] == code and body["message"], body
    return body


def idle_lumas(avatar_id: str) -> list[np.ndarray]:
    names = sorted(storage.backend().list_prepared(avatar_id, "full_imgs"))
    return [cv2.imdecode(np.frombuffer(storage.backend().read_prepared(avatar_id, f"full_imgs/{name}"), np.uint8),
                         cv2.IMREAD_GRAYSCALE) for name in names]


def mouth_changes(viewer: WebRTCViewer, avatar_id: str, since: float) -> list[float]:
    """For each picture received after `since`: how far its mouth is from the idle frame it shows."""
    lumas = idle_lumas(avatar_id)
    thumbnails = idle_thumbnails(lumas)
    landmarks = np.load(django_settings.AVATAR_ROOT / avatar_id / "landmarks.npy")
    return [mouth_change(video.luma, lumas, thumbnails, landmarks)
            for video in viewer.video if video.at >= since and video.luma is not None]


def test_an_offer_is_answered_and_the_viewer_receives_the_avatar_speaking(client_with_key, session_id):
    """VP8 and Opus chosen; video at the avatar's size and rate, audio always; a speak is heard
    (loud audio) and seen (the mouth moves away from the idle frame), with its events on the data channel."""
    async def scenario():
        async with webrtc_viewer(client_with_key, session_id) as viewer:
            answer = viewer.answer
            assert answer["type"] == "answer" and "a=fingerprint" in answer["sdp"]
            assert answer["codecs"] == {"video": "VP8", "audio": "opus"}
            await viewer.wait_for_video(25)
            assert viewer.video[-1].luma.shape == (360, 640)
            await until(lambda: any(event["type"] == "session" for _, event in viewer.events), 5, "the header event")
            header = next(event for _, event in viewer.events if event["type"] == "session")
            assert header["avatar_id"] == "rtc" and header["fps"] == 25 and header["session_id"] == session_id
            assert stages.of_session(session_id) and viewers.count(session_id) == 1

            silent = [audio.rms for audio in viewer.audio]
            assert silent and max(silent) < 50  # silence between utterances flows too
            idle = mouth_changes(viewer, "rtc", 0)
            sent = time.monotonic()
            response = await asyncio.get_running_loop().run_in_executor(
                None, lambda: client_with_key.post(f"/v1/sessions/{session_id}/speak", {"text": SENTENCE}, format="json"))
            assert response.status_code == 202
            await until(lambda: any(event["type"] == "utterance.ended" for _, event in viewer.events), 20,
                        "the utterance to be said")
            loud = [audio for audio in viewer.audio if audio.at >= sent and audio.rms > 500]
            assert len(loud) > 50, "less than a second of loud audio arrived"  # 20 ms each
            speaking = mouth_changes(viewer, "rtc", sent)
            print(f"WebRTC: mouth change idle max {max(idle):.1f}, speaking max {max(speaking):.1f}; "
                  f"first loud audio {loud[0].at - sent:.3f} s after the speak; offset {viewer.offset_ms():.0f} ms")
            # Idle pictures differ from their prepared frame by the video codec's loss alone (~5 here).
            assert max(speaking) > 2.5 * max(max(idle), 1.5)
            assert abs(viewer.offset_ms()) <= 40
            started = [event for _, event in viewer.events if event["type"] == "utterance.started"]
            # Its duration when it started: the first sentence's ("Hello!"), the rest made meanwhile.
            assert len(started) == 1 and started[0]["duration_s"] > 0.3
    asyncio.run(scenario())


def test_the_viewer_leaving_closes_its_peer_connection_and_the_stage(client_with_key, session_id):
    async def scenario():
        viewer = WebRTCViewer("", session_id, "")
        await viewer.start(post=poster(client_with_key, session_id))
        await viewer.wait_for_video(5)
        assert len(peer_module.peers) == 1
        await viewer.close()
        await until(lambda: not peer_module.peers, 10, "the server to close the peer connection")
        await until(lambda: not stages.of_session(session_id), 5, "the stage to stop")
        assert viewers.count(session_id) == 0
    asyncio.run(scenario())


def test_ending_the_session_tells_the_viewer_and_closes_its_connection(client_with_key, session_id):
    async def scenario():
        async with webrtc_viewer(client_with_key, session_id) as viewer:
            await viewer.wait_for_video(5)
            await asyncio.get_running_loop().run_in_executor(None, services.end_session, session_id)
            await until(lambda: any(event["type"] == "ended" for _, event in viewer.events), 10, "the ended event")
            await until(lambda: not peer_module.peers, 10, "the server to close the peer connection")
            await until(lambda: viewer.pc.connectionState in ("closed", "failed"), 10, "the viewer to see it closed")
    asyncio.run(scenario())


def test_h264_alone_is_offered_and_chosen(client_with_key, session_id):
    async def scenario():
        async with webrtc_viewer(client_with_key, session_id, video_codec="H264") as viewer:
            answer = viewer.answer
            assert answer["codecs"]["video"] == "H264"
            await viewer.wait_for_video(10)
            assert viewer.video[-1].luma.shape == (360, 640)
    asyncio.run(scenario())


def offer_sdp(direction: str = "recvonly") -> str:
    """A real browser-like offer made by aiortc (no connection follows)."""
    from aiortc import RTCConfiguration, RTCPeerConnection

    async def make() -> str:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # not aiortc's default public STUN server
        pc.addTransceiver("video", direction=direction)
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp
    return asyncio.run(make())


def test_bad_offers_are_400_and_make_no_peer(client_with_key, session_id):
    good = offer_sdp()
    url = f"/v1/sessions/{session_id}/webrtc"
    cases = [
        ({"type": "offer"}, None),  # no sdp
        ({"sdp": good}, None),  # no type
        ({"sdp": good, "type": "answer"}, "not_an_offer"),
        ({"sdp": "hello", "type": "offer"}, "no_media"),
        ({"sdp": "v=0\r\nm=video x\r\n", "type": "offer"}, "bad_sdp"),
        ({"sdp": offer_sdp("sendonly"), "type": "offer"}, "not_receiving"),
        ({"sdp": "\r\n".join(line for line in good.split("\r\n") if not line.startswith("a=ice-")), "type": "offer"}, "no_ice"),
        ({"sdp": "\r\n".join(line for line in good.split("\r\n") if not line.startswith("a=fingerprint")), "type": "offer"}, "no_dtls"),
        ({"sdp": good.replace("VP8/90000", "XYZ/90000").replace("H264/90000", "XYZ/90000"), "type": "offer"}, "not_negotiable"),
        ({"sdp": "v=0\r\n" + "a=x\r\n" * 20000, "type": "offer"}, "sdp_too_long"),
    ]
    for body, reason in cases:
        error = assert_error(client_with_key.post(url, body, format="json"), 400, "invalid_request")
        if reason:
            assert error["details"]["reason"] == reason, (reason, error)
    assert_error(client_with_key.post(url, "not json", content_type="text/plain"), 400, "invalid_request")
    assert not peer_module.peers and viewers.count(session_id) == 0


def test_unknown_ended_unauthenticated_and_full_sessions_are_refused(client, client_with_key, session_id, settings):
    body = {"sdp": offer_sdp(), "type": "offer"}
    assert_error(client.post(f"/v1/sessions/{session_id}/webrtc", body, format="json"), 401, "not_authenticated")
    assert_error(client_with_key.post("/v1/sessions/00000000-0000-0000-0000-000000000000/webrtc", body, format="json"),
                 404, "not_found")
    assert_error(client_with_key.post("/v1/sessions/nope/webrtc", body, format="json"), 404, "not_found")

    settings.SESSION_MAX_VIEWERS = 1
    assert viewers.join(session_id)  # someone watches already (a WebSocket stream, say)
    try:
        response = client_with_key.post(f"/v1/sessions/{session_id}/webrtc", body, format="json")
        assert_error(response, 429, "too_many_viewers")
        assert response["Retry-After"]
    finally:
        viewers.leave(session_id)
    services.end_session(session_id)
    assert_error(client_with_key.post(f"/v1/sessions/{session_id}/webrtc", body, format="json"), 404, "not_found")
    assert not peer_module.peers


def test_the_feed_keeps_one_timeline_across_segments_in_20_ms_audio_frames():
    """A new segment (another stage, whose clock starts at 0 again) continues where the last stopped."""
    async def scenario():
        feed = PeerFeed(24000)
        feed.sends_video = feed.sends_audio = True
        picture = np.zeros((360 * 3 // 2, 640), np.uint8)
        for index in range(3):  # 25 fps: 960 samples a frame
            feed.frame(5000 + index * 960, 0, None, picture, np.full(960, index, np.int16))
        feed.new_segment()
        feed.frame(0, 0, None, picture, np.full(960, 9, np.int16))
        videos = [feed.video.queue.get_nowait() for _ in range(feed.video.queue.qsize())]
        audios = [feed.audio.queue.get_nowait() for _ in range(feed.audio.queue.qsize())]
        assert [video.pts for video in videos] == [0, 960, 1920, 2880]
        assert [audio.pts for audio in audios] == list(range(0, 3840, 480))
        assert all(audio.samples == 480 and audio.sample_rate == 24000 for audio in audios)
        assert audios[-1].to_ndarray()[0, 0] == 9 and audios[0].to_ndarray()[0, 0] == 0
        for index in range(10):  # an encoder that does not keep up: the oldest pictures go
            feed.frame(index * 960, 0, None, picture, np.zeros(960, np.int16))
        assert feed.video.queue.qsize() == 6 and feed.frames_dropped == 4
    asyncio.run(scenario())


def test_a_waiting_session_sends_black_and_silence_then_the_avatar_on_the_same_timeline(client_with_key, face_video,
                                                                                       gate_jobs):
    """While the avatar is prepared: "waiting" events, a black picture and silence; once it is
    ready: the header and the avatar's frames, their times going on from where the wait stopped."""
    tutor = Tutor.objects.create(name="Ada")
    avatar_services.create_avatar(avatar_id="coming", local_path=face_video[0], original_name="v.mp4",
                                  source=AvatarSource.UPLOAD, tutor_id=tutor.pk)
    session_id = str(services.create_session(tutor_id=tutor.pk, student_id=1).session_id)

    async def scenario():
        async with webrtc_viewer(client_with_key, session_id) as viewer:
            await viewer.wait_for_video(3)
            await until(lambda: any(event["type"] == "waiting" for _, event in viewer.events), 5, "a waiting event")
            assert all(video.luma.max() < 40 for video in viewer.video)  # black (give or take the codec)
            gate_jobs.set()
            await until(lambda: any(event["type"] == "session" for _, event in viewer.events), 60, "the header")
            ready_at = next(at for at, event in viewer.events if event["type"] == "session")
            await until(lambda: sum(video.at > ready_at for video in viewer.video) >= 25, 20, "the avatar's frames")
            after = [video for video in viewer.video if video.at > ready_at]
            assert after[-1].luma.mean() > 60  # the avatar, not black
            times = [video.media_s for video in viewer.video]
            assert times == sorted(times)  # one timeline, never back to 0
            gaps = np.diff([audio.media_s for audio in viewer.audio])
            assert np.allclose(gaps, 0.02, atol=0.001)  # audio without a hole across the switch
    asyncio.run(scenario())


def test_a_viewer_that_starts_streaming_after_the_wait_marks_the_session_active_at_once(client_with_key, face_video,
                                                                                      gate_jobs, monkeypatch):
    """As a WebSocket stream does: the moment the avatar is ready and the stage streams to the
    peer, the session counts as active (not one TOUCH_EVERY_S later)."""
    from datetime import timedelta

    from django.utils import timezone

    from sessions_app.live import watcher
    from sessions_app.models import TutoringSession

    monkeypatch.setattr(watcher, "TOUCH_EVERY_S", 3600.0)  # no periodic touch within the test
    tutor = Tutor.objects.create(name="Ada")
    avatar_services.create_avatar(avatar_id="later", local_path=face_video[0], original_name="v.mp4",
                                  source=AvatarSource.UPLOAD, tutor_id=tutor.pk)
    session_id = str(services.create_session(tutor_id=tutor.pk, student_id=1).session_id)

    def last_activity():
        return TutoringSession.objects.get(session_id=session_id).last_activity_at

    async def scenario():
        run = asyncio.get_running_loop().run_in_executor
        async with webrtc_viewer(client_with_key, session_id) as viewer:
            await until(lambda: any(event["type"] == "waiting" for _, event in viewer.events), 10, "a waiting event")
            before = timezone.now() - timedelta(seconds=60)
            await run(None, lambda: TutoringSession.objects.filter(session_id=session_id).update(last_activity_at=before))
            gate_jobs.set()
            await until(lambda: any(event["type"] == "session" for _, event in viewer.events), 60, "the header")
            deadline = time.monotonic() + 10
            while (await run(None, last_activity)) <= before:
                assert time.monotonic() < deadline, "streaming did not mark the session active"
                await asyncio.sleep(0.1)
    asyncio.run(scenario())


def test_revoking_the_key_closes_the_connections_it_opened(client_with_key, session_id):
    from django.utils import timezone

    from avatars.models import ApiKey

    async def scenario():
        async with webrtc_viewer(client_with_key, session_id) as viewer:
            await viewer.wait_for_video(5)
            await asyncio.get_running_loop().run_in_executor(None, lambda: ApiKey.objects.update(revoked_at=timezone.now()))
            await until(lambda: not peer_module.peers, 15, "the server to close the connection")
    asyncio.run(scenario())


def test_websocket_and_webrtc_viewers_count_together_however_the_id_is_spelled(client_with_key, api_key, session_id,
                                                                              settings):
    """One limit and one stage per session: a stream opened with the id in capitals is the same
    session's viewer, so a WebRTC offer past SESSION_MAX_VIEWERS is refused."""
    from channels.testing import WebsocketCommunicator

    from tutorplatform.asgi import application

    settings.SESSION_MAX_VIEWERS = 1
    body = {"sdp": offer_sdp(), "type": "offer"}

    async def scenario():
        communicator = WebsocketCommunicator(application, f"/ws/sessions/{session_id.upper()}/?api_key={api_key}")
        try:
            assert (await communicator.connect())[0]
            await communicator.receive_output(5)  # the header
            await until(lambda: bool(stages.of_session(session_id)), 5, "the stage, under the session's own id")
            response = await asyncio.get_running_loop().run_in_executor(
                None, lambda: client_with_key.post(f"/v1/sessions/{session_id}/webrtc", body, format="json"))
            assert_error(response, 429, "too_many_viewers")
        finally:
            await communicator.disconnect()
    asyncio.run(scenario())
    assert viewers.count(session_id) == 0


@pytest.fixture
def turn_server(tmp_path):
    """coturn on loopback with one long-term credential (scripts/test.sh installs Debian's coturn)."""
    import shutil
    import subprocess

    from testsupport.live_server import free_port

    if shutil.which("turnserver") is None:
        pytest.skip("coturn is not installed (scripts/test.sh installs Debian's coturn; it could not here)")
    port = free_port()
    process = subprocess.Popen(
        ["turnserver", "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", f"--listening-port={port}",
         "--lt-cred-mech", "--user=tutor:turn-secret", "--realm=tutors.test", "--no-tls", "--no-dtls", "--no-cli",
         "--allow-loopback-peers", "--min-port=49160", "--max-port=49260", f"--pidfile={tmp_path / 'turn.pid'}",
         f"--log-file={tmp_path / 'turn.log'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    assert process.poll() is None, "turnserver did not start"
    yield {"urls": f"turn:127.0.0.1:{port}", "username": "tutor", "credential": "turn-secret"}
    process.terminate()
    process.wait(10)


def test_ice_servers_from_the_setting_let_a_viewer_that_only_relays_watch(client_with_key, session_id, settings,
                                                                         turn_server):
    """SESSION_WEBRTC_ICE_SERVERS reaches the server's peer connections (its answer offers a
    candidate relayed by the TURN server, with the setting's credentials), and a viewer that may
    only use relayed candidates (as behind a strict NAT) gets the media through the TURN server."""
    from aiortc import RTCIceServer

    settings.SESSION_WEBRTC_ICE_SERVERS = [turn_server]

    async def scenario():
        async with webrtc_viewer(client_with_key, session_id, ice_servers=[RTCIceServer(**turn_server)], relay_only=True) as viewer:
            answer = viewer.answer
            assert " typ relay " in answer["sdp"]
            assert " typ host " not in viewer.pc.localDescription.sdp  # the viewer offered relayed candidates alone
            await viewer.wait_for_video(10)
            await until(lambda: len(viewer.audio) >= 10, 5, "audio through the relay")
    asyncio.run(scenario())


def test_the_students_microphone_over_webrtc_is_heard_and_recognised(client_with_key, session_id, settings):
    """A sendrecv offer whose audio track carries real read speech: the transcript comes back on
    the data channel (as on the WebSocket stream)."""
    import re

    from sessions_app.tests.test_listening import recording
    from testsupport.webrtc_viewer import RecordingTrack

    # "Ever tried, ever failed.", after 1.5 s of quiet: what the microphone sends before
    # the avatar streams (the connection is up a moment before) has nobody to talk to.
    speech = np.concatenate([np.zeros(72000, np.int16), recording("beckett.wav", 48000)[:int(3.4 * 48000)]])

    def said(events) -> str:
        return " ".join(" ".join(re.findall(r"[a-z]+", event["text"].lower())) for event in events
                        if event["type"] == "transcript")

    async def scenario():
        async with webrtc_viewer(client_with_key, session_id, microphone=RecordingTrack(speech)) as viewer:
            assert "a=sendrecv" in viewer.answer["sdp"]
            await until(lambda: len(said([event for _, event in viewer.events]).split()) >= 4, 30, "the transcripts")
            return [event for _, event in viewer.events]

    seen = asyncio.run(scenario())
    assert said(seen) == "ever tried ever failed"  # one turn or two: the reader pauses 0.6 s
    kinds = [event["type"] for event in seen if event["type"].startswith("student.") or event["type"] == "transcript"]
    assert kinds[:2] == ["student.started", "student.ended"]
    assert kinds.count("student.started") == kinds.count("student.ended") == kinds.count("transcript")
