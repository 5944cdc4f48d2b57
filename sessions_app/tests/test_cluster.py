"""Live sessions past one machine, against a real local cluster (scripts/cluster.sh): PostgreSQL,
Redis, Janus in its network namespace, two web processes behind HAProxy, two stage workers, a
Celery worker. Everything goes through HTTP, WebSocket and WebRTC, as clients would.

One session is created through web process A, watched through B, spoken to through A; a second and
third viewer come through the load balancer; the stage worker holding it is killed (kill -9) and
the session goes on on the other worker with its queue; Janus is restarted and the viewers come
back by themselves; a worker stopped with SIGTERM hands its session over without cutting what is
said; the session stream (WebSocket) is served by a web process whose stage runs elsewhere.

Needs root (network namespaces) and Debian's janus and haproxy; skipped, and said why, otherwise.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import pytest

import numpy as np

from sessions_app.tests.test_listening import BECKETT, CHUNK, RATE, recording, words
from sessions_app.tests.test_listening import message as audio_message
from testsupport.cluster import LocalCluster, running, wait_for
from testsupport.webrtc_viewer import WebRTCViewer, call_json

CLUSTER = LocalCluster()
LB = CLUSTER.lb
A, B = CLUSTER.web
FAILOVER_LIMIT_S = 5.0  # kill -9 to the session placed on another worker


@pytest.fixture(scope="module")
def running_cluster():
    yield from running(CLUSTER)


@pytest.fixture(scope="module")
def api_key(running_cluster) -> str:
    return running_cluster.api_key()


@pytest.fixture(scope="module")
def tutor(running_cluster, api_key, face_video) -> int:
    return running_cluster.tutor_with_avatar(api_key, face_video[0])


def session_of(session_id: str, api_key: str) -> dict:
    status, body = call_json("GET", f"{LB}/v1/sessions/{session_id}", None, api_key)
    assert status == 200, body
    return body


def worker_pid(name: str) -> int:
    return CLUSTER.pid(f"stage-{name}")


def threads_of(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def video_gaps(viewer: WebRTCViewer, since: float) -> list[float]:
    """The pauses between video packets that arrived after `since` (s), longest last."""
    arrivals = [at for at, _, _ in viewer.packets["video"] if at > since]
    return sorted(b - a for a, b in zip(arrivals, arrivals[1:]))


def loud_audio_after(viewer: WebRTCViewer, since: float) -> bool:
    return any(arrival.at > since and arrival.rms > 300 for arrival in viewer.audio)


def test_a_session_lives_on_the_cluster(running_cluster, api_key, tutor):
    asyncio.run(_the_session(api_key, tutor))


async def _the_session(api_key: str, tutor_id: int) -> None:
    loop = asyncio.get_running_loop()

    async def call(method, url, body=None):
        return await loop.run_in_executor(None, call_json, method, url, body, api_key)

    # Created through A; placed on a stage worker.
    status, created = await call("POST", f"{A}/v1/sessions", {"tutor_id": tutor_id, "student_id": 1})
    assert status == 201, created
    sid = created["session_id"]
    assert created["webrtc"] == {"signalling": "server_offers", "url": f"/v1/sessions/{sid}/viewers"}
    placed = await loop.run_in_executor(None, wait_for, lambda: session_of(sid, api_key)["stage"], 15, "placed")
    first_worker = placed["worker"]
    assert placed["alive"] and placed["moves"] == 0
    # An offer posted the direct way is refused with the way to go.
    status, refused = await call("POST", f"{A}/v1/sessions/{sid}/webrtc", {"type": "offer", "sdp": "v=0\r\n"})
    assert status == 409 and refused["code"] == "wrong_signalling"

    # Watched through B (the offer comes from Janus), spoken to through A.
    first = WebRTCViewer(B, sid, api_key, keep_pictures=False)
    offer = await first.watch_through_media_server(reconnect_after_s=None)
    await first.wait_for_video(25)
    # The header: with the offer once the stage streams, and on the data channel.
    await _until(lambda: any(e.get("type") == "session" for _, e in first.events), 10, "the header")
    header = offer["session"] or next(e for _, e in first.events if e.get("type") == "session")
    assert header["avatar_id"] == f"avatar_tutor_{tutor_id}" and header["audio_rate"] > 0
    said = time.monotonic()
    status, utterance = await call("POST", f"{A}/v1/sessions/{sid}/speak", {"text": "Hello, I am your tutor today."})
    assert status == 202, utterance
    await _until(lambda: any(e.get("type") == "utterance.ended" and e.get("utterance_id") == utterance["utterance_id"]
                             for _, e in first.events), 20, "the utterance played to its end")
    assert loud_audio_after(first, said), "the tutor's voice reached the viewer through Janus"
    started = [e for _, e in first.events if e.get("type") == "utterance.started"]
    assert started and started[0]["utterance_id"] == utterance["utterance_id"]

    # A second and a third viewer, through the load balancer: the stage worker does not grow (one
    # encoder, one RTP stream; Janus fans it out), and Janus counts three viewers.
    holder_pid = worker_pid(first_worker)
    threads_before = threads_of(holder_pid)
    more = [WebRTCViewer(LB, sid, api_key, keep_pictures=False) for _ in range(2)]
    for viewer in more:
        await viewer.watch_through_media_server(reconnect_after_s=None)
    for viewer in more:
        await viewer.wait_for_video(25)
    assert threads_of(holder_pid) == threads_before
    for viewer in more:
        await viewer.close()

    # kill -9 the worker holding it, with utterances queued behind the one playing.
    texts = ["This first sentence is a long one, so that it is still being said when the worker dies.",
             "The second waits in the queue.", "And the third one waits too."]
    ids = []
    for text in texts:
        status, body = await call("POST", f"{A}/v1/sessions/{sid}/speak", {"text": text})
        assert status == 202, body
        ids.append(body["utterance_id"])
    await _until(lambda: any(e.get("type") == "utterance.started" and e.get("utterance_id") == ids[0]
                             for _, e in first.events), 20, "the first queued utterance started")
    await asyncio.sleep(0.5)
    killed = time.monotonic()
    os.kill(holder_pid, signal.SIGKILL)
    moved = await loop.run_in_executor(None, wait_for, lambda: (s := session_of(sid, api_key)["stage"]) and
                                       s["worker"] != first_worker and s["alive"] and s, 15, "moved")
    placed_after = time.monotonic() - killed
    assert moved["moves"] == 1
    assert placed_after <= FAILOVER_LIMIT_S, f"placed on {moved['worker']} {placed_after:.1f} s after kill -9"
    await _until(lambda: [at for at, _, _ in first.packets["video"] if at > killed + placed_after], 15,
                 "media flowing again")
    await asyncio.sleep(2)
    assert first.connections == 1, "the viewer saw a freeze, not an end: no new connection"
    assert first.pc.connectionState == "connected"
    assert max(video_gaps(first, killed)) < 10.0
    # The queue survived: the one playing ended interrupted, the two behind it were said.
    await _until(lambda: _states(sid, api_key, ids[1:]) == ["done", "done"], 30, "the queue played on")
    assert _states(sid, api_key, ids[:1]) == ["interrupted"]

    # Janus restarted: its mountpoints are gone; the worker makes the session's again and the
    # viewers connect again by themselves.
    second = WebRTCViewer(LB, sid, api_key, keep_pictures=False)
    await second.watch_through_media_server(reconnect_after_s=3.0)
    await second.wait_for_video(25)
    restarted_at = time.monotonic()
    restart = await loop.run_in_executor(None, CLUSTER.restart_janus)
    assert restart.returncode == 0, restart.stdout + restart.stderr
    await _until(lambda: second.connections >= 2 and [at for at, _, _ in second.packets["video"]
                                                      if at > restarted_at + 1.0], 40, "the viewer came back")
    count = len(second.video)
    await asyncio.sleep(1.5)
    assert len(second.video) > count, "video flows after the reconnection"
    await first.close()

    # The session stream (WebSocket) through B, whose stage runs on a worker: header, then media.
    import websockets

    async with websockets.connect(f"{B.replace('http', 'ws')}/ws/sessions/{sid}/?api_key={api_key}",
                                  max_size=None) as socket:
        header = json.loads(await asyncio.wait_for(socket.recv(), 15))
        assert header["type"] == "session" and header["audio_rate"] > 0
        kinds = set()
        deadline = time.monotonic() + 10
        while kinds != {b"V", b"A"} and time.monotonic() < deadline:
            message = await asyncio.wait_for(socket.recv(), 10)
            if isinstance(message, bytes):
                kinds.add(message[:1])
        assert kinds == {b"V", b"A"}

    # The student speaks, over a socket that carries events and the microphone only (a page whose
    # media come through Janus): the worker's stage hears it, the transcript has it, and the turn's
    # events reach the socket (relayed) and the WebRTC viewer (the data channel).
    speech = np.concatenate([np.zeros(RATE // 2, np.int16), recording(), np.zeros(2 * RATE, np.int16)])
    async with websockets.connect(f"{A.replace('http', 'ws')}/ws/sessions/{sid}/?media=none&api_key={api_key}",
                                  max_size=None) as socket:
        for index in range(len(speech) // CHUNK):
            await socket.send(audio_message(index * 40_000, speech[index * CHUNK:(index + 1) * CHUNK]))
            await asyncio.sleep(0.04)  # as a microphone sends it
        heard = []  # the transcript events on the socket (the reader pauses: maybe several turns)
        deadline = time.monotonic() + 60
        while words(" ".join(event["text"] for event in heard)) != BECKETT and time.monotonic() < deadline:
            got = await asyncio.wait_for(socket.recv(), 60)
            assert isinstance(got, str), "no media on an events-only socket"
            if json.loads(got)["type"] == "transcript":
                heard.append(json.loads(got))
    assert words(" ".join(event["text"] for event in heard)) == BECKETT
    await _until(lambda: len([e for _, e in second.events if e.get("type") == "transcript"]) == len(heard), 10,
                 "the transcript events on the data channel")
    status, transcript = await call("GET", f"{A}/v1/sessions/{sid}/transcript")
    assert words(" ".join(e["text"] for e in transcript["entries"] if e["speaker"] == "student")) == BECKETT

    # The same over WebRTC: the microphone on an audio-only connection to a web process (Janus's
    # streams carry nothing back), passed on to the worker's stage.
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    from testsupport.webrtc_viewer import RecordingTrack

    mic_speech = np.concatenate([np.zeros(48000, np.int16), recording("beckett.wav", 48000)[:int(3.4 * 48000)],
                                 np.zeros(96000, np.int16)])
    microphone = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    microphone.addTransceiver(RecordingTrack(mic_speech), direction="sendonly")
    await microphone.setLocalDescription(await microphone.createOffer())
    mic_started = time.monotonic()
    status, answer = await call("POST", f"{B}/v1/sessions/{sid}/microphone",
                                {"type": "offer", "sdp": microphone.localDescription.sdp})
    assert status == 200, answer
    assert "a=recvonly" in answer["sdp"] and answer["codecs"] == {"audio": "opus"}
    await microphone.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))

    def said_since() -> str:
        return words(" ".join(e["text"] for at, e in second.events if at > mic_started and e.get("type") == "transcript"))

    await _until(lambda: said_since() == "ever tried ever failed", 40, "the microphone's words in the transcript")
    await microphone.close()

    # SIGTERM: the worker holding it lets the utterance finish, then hands the session over.
    holder = session_of(sid, api_key)["stage"]["worker"]
    restarted = CLUSTER.start_worker(first_worker)
    assert restarted.returncode == 0, restarted.stderr
    status, body = await call("POST", f"{A}/v1/sessions/{sid}/speak",
                              {"text": "This sentence is said to its end before the worker stops."})
    assert status == 202
    last = body["utterance_id"]
    await _until(lambda: any(e.get("type") == "utterance.started" and e.get("utterance_id") == last
                             for _, e in second.events), 20, "the last utterance started")
    os.kill(worker_pid(holder), signal.SIGTERM)
    await loop.run_in_executor(None, wait_for, lambda: (s := session_of(sid, api_key)["stage"]) and
                               s["worker"] == first_worker and s["alive"], 40, "handed over")
    assert _states(sid, api_key, [last]) == ["done"], "a clean stop cuts no sentence"
    await second.close()
    status, _ = await call("POST", f"{A}/v1/sessions/{sid}/end", {})
    assert status == 200


def _states(sid: str, api_key: str, utterance_ids: list[str]) -> list[str]:
    status, body = call_json("GET", f"{LB}/v1/sessions/{sid}/transcript", None, api_key)
    assert status == 200, body
    state = {entry.get("utterance_id"): entry.get("state") for entry in body["entries"]}
    return [state.get(uid) for uid in utterance_ids]


async def _until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.1)



def test_a_viewer_that_only_relays_watches_through_turn_and_janus(running_cluster, api_key, tutor, tmp_path):
    """TURN still works with the media server: a viewer that may only use relayed candidates (as
    behind a strict NAT) gets the session's media from Janus through coturn."""
    import shutil
    import subprocess

    from aiortc import RTCIceServer

    from testsupport.live_server import free_port

    if shutil.which("turnserver") is None:
        pytest.skip("coturn is not installed (scripts/test.sh installs Debian's coturn; it could not here)")
    port = free_port()
    relay_address = running_cluster.env["JANUS_HOST_ADDR"]  # this side of Janus's veth: Janus reaches it
    process = subprocess.Popen(
        ["turnserver", "-n", "--listening-ip=127.0.0.1", f"--relay-ip={relay_address}", f"--listening-port={port}",
         "--lt-cred-mech", "--user=tutor:turn-secret", "--realm=tutors.test", "--no-tls", "--no-dtls", "--no-cli",
         "--allow-loopback-peers", "--min-port=49300", "--max-port=49400", f"--pidfile={tmp_path / 'turn.pid'}",
         f"--log-file={tmp_path / 'turn.log'}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        assert process.poll() is None, "turnserver did not start"
        turn = RTCIceServer(urls=f"turn:127.0.0.1:{port}", username="tutor", credential="turn-secret")

        async def scenario():
            status, created = call_json("POST", f"{A}/v1/sessions", {"tutor_id": tutor, "student_id": 2}, api_key)
            assert status == 201, created
            viewer = WebRTCViewer(B, created["session_id"], api_key, keep_pictures=False, ice_servers=[turn],
                                  relay_only=True)
            try:
                await viewer.watch_through_media_server(reconnect_after_s=None)
                assert " typ host " not in viewer.pc.localDescription.sdp  # relayed candidates alone
                assert " typ relay " in viewer.pc.localDescription.sdp
                await viewer.wait_for_video(25)
                await _until(lambda: len(viewer.audio) >= 25, 10, "audio through the relay")
            finally:
                await viewer.close()
                call_json("POST", f"{A}/v1/sessions/{created['session_id']}/end", {}, api_key)

        asyncio.run(scenario())
    finally:
        process.terminate()
        process.wait(10)
