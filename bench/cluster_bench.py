"""Scaled-out live sessions benchmark: a whole local cluster (SESSION_MEDIA_SERVER=janus), its
stage workers' and Janus's CPU, speak latency, A/V offset and kill -9 recovery at the viewer.

    .venv/bin/python bench/cluster_bench.py [VIDEO] [--quick] [--av-seconds S] [--sections 3,5]
    (or: bash scripts/bench.sh cluster [VIDEO] [--quick])

Starts its own testsupport/cluster.py LocalCluster on ports of its own (load balancer 9410,
PostgreSQL 55462, Redis 56409, Janus at 10.216.0.2; needs root, Debian's janus and haproxy),
prepares a tutor from VIDEO on the cluster's Celery worker (default: 30 s of the real talking test
video at 1280x720 25 fps, as `bench/speak_bench.py --talking` uses), and watches sessions with the
aiortc viewer of testsupport/webrtc_viewer.py through Janus (POST /v1/sessions/{id}/viewers, then
the answer). Everything runs on this one machine (the viewers decode VP8 on the same cores); the
cluster is stopped at the end, also on errors. The machine's load average at the start is printed.
CPU is read from /proc/<pid>/stat (user + system, all threads) over a window and given in cores
(CPU seconds per wall second). "Speaking" means utterances kept queued (a short sentence posted
every SPEAK_EVERY_S; a 429, the queue full, is fine), so the session speaks throughout the window.

1. Server CPU per extra viewer of ONE speaking session: the stage worker holding it and the Janus
   process over a WINDOW_S window with 1 viewer, then with 3 viewers; per extra viewer =
   (CPU with 3 - CPU with 1) / 2. Goals: stage worker ~0 (it encodes once and sends one RTP
   stream), Janus <= 0.02 core.
2. Speaking sessions per stage-worker core at 720p25: the second worker is stopped (SIGTERM) so
   every session lands on one; the worker's CPU over a window with 1 speaking session, then with 2
   (each with one viewer: the frame rate Janus delivers, counted from the video RTP timestamps
   that arrived in the window, should be ~25; the frames the viewer decoded are beside it, lower
   when this process lacks the CPU to decode). Cost per session:
   the whole worker's CPU / sessions (fixed costs included) and the second session's increment;
   sessions per core = 1 / the cost; and, since a worker short of CPU delivers fewer frames and
   spends less, the worker's CPU per 25 fps of video delivered (what a full-rate session costs;
   a note says when a viewer got < 24 fps). The second worker is started again after.
3. Speak -> moving mouth through Janus: short utterances one at a time (the next after
   utterance.ended); time from sending POST /speak to the first *decoded* video frame at the
   viewer whose mouth is open more than a threshold calibrated on 2 s of silent video. An avatar
   that speaks with the tutor's own mouth (lips.npy: the default talking tutor) shows a composited
   resting mouth in its silent frames, so, as bench/speak_bench.py does for it, the measure is the
   mouth's opening found by the face mesh on the received picture (inner lips' gap / mouth width;
   the face located by the landmarks of the nearest idle frame by thumbnail), the threshold the
   resting maximum + 0.03. An avatar without lip shapes uses bench/webrtc_bench.py's Mouths (grey
   levels of the mouth box against the idle frame shown; threshold max(2 x idle max, idle max + 3)).
   Median and p95, with the POST's round trip (synthesis included) and POST -> utterance.started
   on the data channel beside them. The viewer reconnects after 3 s without media; an utterance
   during which it did is not counted. Goal: median <= 0.6 s.
4. A/V offset at the viewer: one viewer of a speaking session for --av-seconds (default 300); per
   AV_WINDOW_S window, from the RTP packet arrivals in it (before any jitter buffer of the client):
   each track's lateness = median(arrival - media time), offset = video - audio (+: video later;
   WebRTCViewer.offset_ms). Drift = last window - first. The viewer reconnects by itself after
   5 s without media, as the staff page does; the connections so far are printed per window.
   Goal: |offset| <= 40 ms, no drift.
5. kill -9 recovery: one viewer watching a speaking session (utterances queued, one playing);
   kill -9 of the stage worker holding it; time from the kill to (a) GET /v1/sessions/{id} showing
   its "stage" alive on the other worker and (b) the first video RTP packet at the viewer after
   the gap (the first packet after the kill that follows a pause > 0.3 s). KILL_REPEATS times, the
   killed worker started again in between (LocalCluster.start_worker).
6. The session stream (WebSocket) relayed: with the stage on a worker, web process B serves a
   stream viewer by the channel layer (sessions_app/live/relay.py). CPU of the stage worker (which
   now also makes JPEG for the relay), of web process B and of Redis over a window with a Janus
   viewer alone, then with one stream viewer on B added (the viewer reads every message); the
   difference is what carrying the stream costs. The video frames per second the socket received
   are given beside.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.speak_bench import SENTENCES, Api, cpu_seconds, machine, machine_cpu_seconds, ms, percentile  # noqa: E402
from bench.webrtc_bench import (  # noqa: E402
    Mouths,
    drop_pictures,
    fps_in,
    Trial,
    lateness_offset_ms,
    utterance,
    wait_event,
)

WINDOW_S = 20.0
QUICK_WINDOW_S = 8.0
LATENCY_REPEATS = 10
QUICK_LATENCY_REPEATS = 5
AV_SECONDS = 300.0
QUICK_AV_SECONDS = 60.0
AV_WINDOW_S = 30.0
QUICK_AV_WINDOW_S = 15.0
KILL_REPEATS = 3
CALIBRATION_S = 2.0
GAP_S = 0.3  # a pause between video packets longer than this is the failover's (25 fps: 40 ms apart)
SPEAK_EVERY_S = 1.5  # a short sentence is ~2-3 s of speech: the queue stays full
PORTS = dict(port=9410, pg_port=55462, redis_port=56409, janus_subnet=216)
WORKERS = ("worker-1", "worker-2")


def progress(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


def rtp_fps(viewer, start: float, end: float) -> float:
    """Video frames per second that reached the viewer in [start, end): distinct RTP timestamps
    (a frame is several packets), whether or not this process found the CPU to decode them."""
    return len({media for at, media, _ in viewer.packets["video"] if start <= at < end}) / (end - start)


class OwnMouths:
    """How open the received picture's mouth is (the face mesh's inner lips' gap / mouth width),
    for an avatar that speaks with the tutor's own mouth; the same `change(luma)` as Mouths."""

    unit = "of the mouth's width open"

    def __init__(self, avatar_dir: Path, shape: tuple[int, int]) -> None:
        from avatars.pipeline import lips

        self.nearest = Mouths(avatar_dir, shape)  # the idle frame shown: its landmarks place the face
        self.landmarker = lips.LipLandmarker()

    def change(self, luma: np.ndarray) -> float:
        from testsupport.webrtc_viewer import nearest_idle

        index = nearest_idle(luma, self.nearest.thumbnails)
        shape = self.landmarker.measure(cv2.cvtColor(luma, cv2.COLOR_GRAY2BGR), self.nearest.landmarks[index])
        return float("nan") if shape is None else float(shape.features[0])


def mouths_of(avatar_dir: Path, shape: tuple[int, int]):
    """(the measure, how its threshold is made from the idle maximum, its unit)."""
    from avatars.pipeline import lips

    if (avatar_dir / lips.POINTS_FILE).exists() and lips.available():
        return OwnMouths(avatar_dir, shape), (lambda idle_max: idle_max + 0.03), OwnMouths.unit
    return Mouths(avatar_dir, shape), (lambda idle_max: max(2.0 * idle_max, idle_max + 3.0)), "grey levels"


async def event_at(viewer, match, since: int, timeout: float = 30.0) -> float:
    """When the first data-channel event from index `since` on that `match` accepts arrived (the
    events list outlives a reconnection, unlike webrtc_bench's wait_event, which stops at a
    closed connection)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for at, event in viewer.events[since:]:
            if match(event):
                return at
        await asyncio.sleep(0.01)
    raise TimeoutError(f"no such event within {timeout:g} s")


async def speak_once(api: Api, session_id: str, viewer, mouths, threshold: float, text: str) -> Trial:
    """bench/webrtc_bench.py's speak_once with each picture measured in a thread: the face mesh
    takes tens of ms a picture here, and a blocked event loop misses ICE consent answers (aioice
    closes the connection after 6 missed in a row)."""
    since, connections = len(viewer.events), viewer.connections
    body, sent, answered = await asyncio.to_thread(api.speak, session_id, text)
    started_at = await event_at(viewer, utterance("utterance.started", body["utterance_id"]), since)
    ended_at = await event_at(viewer, utterance("utterance.ended", body["utterance_id"]), since)
    await asyncio.sleep(0.3)  # the last frames, decoded after the event
    if viewer.connections != connections:  # it reconnected meanwhile: the pictures have a hole
        drop_pictures(viewer, time.monotonic())
        return Trial(answered - sent, started_at - answered, None, float("nan"))
    latency, peak = None, 0.0
    for video in list(viewer.video):
        if video.at < sent or video.luma is None:
            continue
        change = await asyncio.to_thread(mouths.change, video.luma)
        peak = max(peak, np.nan_to_num(change))
        if latency is None and change > threshold:
            latency = video.at - sent
        if latency is not None and video.at > ended_at:
            break
    drop_pictures(viewer, time.monotonic())
    return Trial(answered - sent, started_at - answered, latency, peak)


class KeepSpeaking:
    """A session kept speaking while the block runs: a sentence posted every SPEAK_EVERY_S (a 429,
    the queue full, is what is wanted), so it never depends on a viewer's data channel; the queue
    is dropped after (POST interrupt)."""

    def __init__(self, api: Api, session_id: str, first: int = 0) -> None:
        self.api, self.session_id, self.turn = api, session_id, first
        self.task: asyncio.Task | None = None

    async def _post(self) -> None:
        while True:
            status, body, _, _ = await asyncio.to_thread(self.api.call, "POST", f"/v1/sessions/{self.session_id}/speak",
                                                          {"text": SENTENCES[self.turn % len(SENTENCES)]})
            self.turn += 1
            if status not in (202, 429):
                raise RuntimeError(f"POST speak answered {status}: {body}")
            await asyncio.sleep(SPEAK_EVERY_S)

    async def __aenter__(self) -> "KeepSpeaking":
        self.task = asyncio.create_task(self._post())
        return self

    def check(self) -> None:
        if self.task.done() and not self.task.cancelled() and self.task.exception():
            raise self.task.exception()

    async def __aexit__(self, *exc) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await asyncio.to_thread(self.api.call, "POST", f"/v1/sessions/{self.session_id}/interrupt")


class Bench:
    def __init__(self, cluster, api: Api, tutor_id: int, options) -> None:
        self.cluster, self.api, self.tutor_id, self.options = cluster, api, tutor_id, options
        self.window = QUICK_WINDOW_S if options.quick else WINDOW_S
        self.report: list[str] = []

    # --- helpers ---

    def session(self) -> str:
        status, body, _, _ = self.api.call("POST", "/v1/sessions", {"tutor_id": self.tutor_id, "student_id": 1})
        if status != 201:
            raise RuntimeError(f"POST /v1/sessions answered {status}: {body}")
        return body["session_id"]

    def stage(self, session_id: str) -> dict | None:
        status, body, _, _ = self.api.call("GET", f"/v1/sessions/{session_id}")
        return body.get("stage") if status == 200 else None

    async def placed(self, session_id: str, not_on: str | None = None, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            stage = await asyncio.to_thread(self.stage, session_id)
            if stage and stage.get("alive") and stage.get("worker") != not_on:
                return stage
            if time.monotonic() > deadline:
                raise TimeoutError(f"session {session_id} not placed within {timeout} s (stage {stage})")
            await asyncio.sleep(0.05)

    def worker_pid(self, name: str) -> int:
        return self.cluster.pid(f"stage-{name}")

    async def viewer(self, session_id: str, keep_pictures: bool = False, reconnect_after_s: float | None = None):
        from testsupport.webrtc_viewer import WebRTCViewer

        viewer = WebRTCViewer(self.api.url, session_id, self.api.key, keep_pictures=keep_pictures)
        try:
            await viewer.watch_through_media_server(reconnect_after_s=reconnect_after_s, timeout_s=60)
            await viewer.wait_for_video(25, timeout=30)
        except BaseException:
            await viewer.close()
            raise
        return viewer

    async def cpu_window(self, pids: dict[str, int], viewers) -> tuple[dict[str, float], list[float], float]:
        """({name: cores}, per viewer "frames delivered per s (decoded)", the machine's total cores)."""
        start, machine_start = time.monotonic(), machine_cpu_seconds()
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        await asyncio.sleep(self.window)
        end = time.monotonic()
        wall = end - start
        used = {name: (cpu_seconds(pid) - before[name]) / wall for name, pid in pids.items()}
        fps = [f"{rtp_fps(viewer, start, end):.1f} ({fps_in(viewer, start, end):.1f})" for viewer in viewers]
        return used, fps, (machine_cpu_seconds() - machine_start) / wall

    # --- 1 ---

    async def per_viewer(self, session_id: str) -> None:
        say = self.report.append
        stage = await self.placed(session_id)
        janus = self.cluster.janus_pid()
        if Path(f"/proc/{janus}/comm").read_text().strip() != "janus":
            raise RuntimeError(f"pid {janus} is not Janus")
        pids = {"stage worker": self.worker_pid(stage["worker"]), "janus": janus}
        viewers = [await self.viewer(session_id)]
        try:
            async with KeepSpeaking(self.api, session_id) as speaking:
                await asyncio.sleep(2.0)
                one = await self.cpu_window(pids, viewers)
                speaking.check()
                progress(f"   1 viewer: {one[0]}")
                viewers += [await self.viewer(session_id) for _ in range(2)]
                await asyncio.sleep(2.0)
                three = await self.cpu_window(pids, viewers)
                speaking.check()
                progress(f"   3 viewers: {three[0]}")
        finally:
            await asyncio.gather(*(viewer.close() for viewer in viewers), return_exceptions=True)
        say(f"1. server CPU per extra viewer of one speaking session ({stage['worker']}), {self.window:g} s windows "
            "(cores):")
        say("   | viewers | stage worker | Janus | fps per viewer: delivered (decoded) | machine total |")
        say("   |---|---|---|---|---|")
        for count, (used, fps, total) in ((1, one), (3, three)):
            say(f"   | {count} | {used['stage worker']:.3f} | {used['janus']:.3f} | "
                f"{', '.join(fps)} | {total:.2f} |")
        extra = {name: (three[0][name] - one[0][name]) / 2 for name in pids}
        say(f"   per extra viewer: stage worker {extra['stage worker']:+.3f} core (goal ~0), "
            f"Janus {extra['janus']:+.3f} core (goal <= 0.02)")
        self.figures["per_viewer"] = extra

    # --- 2 ---

    async def per_session(self, first_session: str) -> None:
        say = self.report.append
        stage = await self.placed(first_session)
        keep = stage["worker"]
        other = next(name for name in WORKERS if name != keep)
        other_pid = self.worker_pid(other)
        os.kill(other_pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while Path(f"/proc/{other_pid}").exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        progress(f"   {other} stopped (SIGTERM); every session on {keep}")
        pids = {"stage worker": self.worker_pid(keep)}
        sessions = [first_session]
        viewers, stack = [], []
        rows = []
        try:
            for count in (1, 2):
                while len(sessions) < count:
                    sessions.append(await asyncio.to_thread(self.session))
                session_id = sessions[count - 1]
                placed = await self.placed(session_id)
                assert placed["worker"] == keep, placed
                viewer = await self.viewer(session_id)
                viewers.append(viewer)
                speaking = KeepSpeaking(self.api, session_id, first=count * 5)
                await speaking.__aenter__()
                stack.append(speaking)
                await asyncio.sleep(2.0)
                used, fps, total = await self.cpu_window(pids, viewers)
                for each in stack:
                    each.check()
                delivered = sum(rtp_fps(viewer, time.monotonic() - self.window, time.monotonic()) for viewer in viewers)
                rows.append((count, used["stage worker"], fps, total, delivered))
                progress(f"   {count} session(s): worker {used['stage worker']:.2f} cores, fps {fps}")
        finally:
            for speaking in stack:
                await speaking.__aexit__(None, None, None)
            await asyncio.gather(*(viewer.close() for viewer in viewers), return_exceptions=True)
            for session_id in sessions[1:]:
                await asyncio.to_thread(self.api.call, "POST", f"/v1/sessions/{session_id}/end")
            started = await asyncio.to_thread(self.cluster.start_worker, other)
            if started.returncode != 0:
                raise RuntimeError(f"{other} did not start again: {started.stderr}")
        say(f"\n2. speaking sessions per stage-worker core at 720p25 (all on {keep}, {other} stopped; one viewer "
            f"each; {self.window:g} s windows):")
        say("   | speaking sessions | worker CPU (cores) | per session | fps per viewer: delivered (decoded) | machine total |")
        say("   |---|---|---|---|---|")
        for count, cores, fps, total, _ in rows:
            say(f"   | {count} | {cores:.2f} | {cores / count:.2f} | {', '.join(fps)} | {total:.2f} |")
        increment = rows[1][1] - rows[0][1]
        average = rows[1][1] / 2
        say(f"   per session: {average:.2f} cores (worker / 2 sessions) -> {1 / average:.1f} sessions per core; "
            f"the second session's increment {increment:.2f} cores -> {1 / increment if increment > 0 else float('inf'):.1f} "
            "sessions per core")
        # A starved machine delivers fewer frames and the worker spends less: per 25 fps of video
        # delivered is what a full-rate session would cost.
        full = [cores / (delivered / 25.0) for _, cores, _, _, delivered in rows if delivered > 0]
        say(f"   per 25 fps of video delivered (a full-rate session): {', '.join(f'{c:.2f}' for c in full)} cores "
            f"(1, 2 sessions) -> {1 / max(full):.1f}-{1 / min(full):.1f} sessions per core")
        if min(float(f.split()[0]) for _, _, fps, _, _ in rows for f in fps) < 24.0:
            say("   NOTE: a viewer got < 24 fps: the worker (or the machine: see its total) lacked the CPU; the plain "
                "per-session figures above are not at 25 fps")
        self.figures["per_session"] = (average, increment)

    # --- 3 ---

    async def latency(self, session_id: str) -> None:
        from django.conf import settings

        say = self.report.append
        repeats = QUICK_LATENCY_REPEATS if self.options.quick else LATENCY_REPEATS
        viewer = await self.viewer(session_id, keep_pictures=True, reconnect_after_s=3.0)
        try:
            shape = viewer.video[-1].luma.shape
            mouths, make_threshold, unit = mouths_of(Path(settings.AVATAR_ROOT) / f"avatar_tutor_{self.tutor_id}", shape)
            await asyncio.sleep(2.0)
            drop_pictures(viewer, time.monotonic())
            calibration_start = time.monotonic()
            await asyncio.sleep(CALIBRATION_S)
            idle = [await asyncio.to_thread(mouths.change, v.luma)
                    for v in list(viewer.video) if v.at >= calibration_start and v.luma is not None]
            idle_max = float(np.nanmax(idle))
            threshold = make_threshold(idle_max)
            drop_pictures(viewer, time.monotonic())
            await speak_once(self.api, session_id, viewer, mouths, threshold, "Hello, I am your tutor today.")
            trials = []
            for index in range(repeats):
                trials.append(await speak_once(self.api, session_id, viewer, mouths, threshold,
                                               SENTENCES[index % len(SENTENCES)]))
                progress(f"   utterance {index + 1}: latency {trials[-1].latency}, peak {trials[-1].peak_change:.3f}")
                await asyncio.sleep(0.2 + 0.3 * (index % 3) / 2)
        finally:
            await viewer.close()
        seen = [t.latency for t in trials if t.latency is not None]
        lost = sum(np.isnan(t.peak_change) for t in trials)
        rtts = [t.post_rtt for t in trials]
        say(f"\n3. speak -> moving mouth at the viewer through Janus ({len(seen)} of {repeats} utterances seen, {lost} of them "
            f"not counted: the viewer reconnected during it ({viewer.connections} connections in all); "
            f"silent frames' largest value {idle_max:.3f} {unit} over {len(idle)} frames, threshold {threshold:.3f}):")
        if seen:
            say(f"   median {ms(statistics.median(seen))}, p95 {ms(percentile(seen, 0.95))}, max {ms(max(seen))} "
                f"(goal: median <= 600 ms); of it, the POST's round trip median {ms(statistics.median(rtts))}")
        started = [t.post_rtt + t.started_after_ack for t in trials]
        say(f"   POST sent -> utterance.started on the data channel (no decoding in it): median "
            f"{ms(statistics.median(started))}, p95 {ms(percentile(started, 0.95))}")
        say(f"   peak per utterance: median {np.nanmedian([t.peak_change for t in trials]):.3f} {unit}")
        self.figures["latency"] = seen

    # --- 4 ---

    async def av_offset(self, session_id: str) -> None:
        say = self.report.append
        seconds = self.options.av_seconds
        length = QUICK_AV_WINDOW_S if self.options.quick else AV_WINDOW_S
        # It reconnects by itself after 5 s without media, as the staff page does (counted below).
        viewer = await self.viewer(session_id, reconnect_after_s=5.0)
        windows = []
        try:
            async with KeepSpeaking(self.api, session_id) as speaking:
                await asyncio.sleep(1.0)
                start = time.monotonic()
                while time.monotonic() - start < seconds - 1e-6:
                    window_start = time.monotonic()
                    await asyncio.sleep(min(length, seconds - (window_start - start)))
                    speaking.check()
                    end = time.monotonic()
                    offset, late, counts = lateness_offset_ms(viewer, window_start, end)
                    windows.append((window_start - start, end - start, offset, counts, rtp_fps(viewer, window_start, end),
                                    viewer.connections))
                    progress(f"   window {len(windows)}: offset {offset:+.1f} ms")
                overall = viewer.offset_ms(since=start)
        finally:
            await viewer.close()
        offsets = [w[2] for w in windows]
        say(f"\n4. A/V offset at the viewer (RTP packet arrivals; video lateness - audio lateness, + = video later), "
            f"{seconds:g} s speaking, {length:g} s windows:")
        say("   | window (s) | offset (ms) | audio / video packets | video frames delivered per s | connections so far |")
        say("   |---|---|---|---|---|")
        for first, last, offset, counts, fps, connections in windows:
            say(f"   | {first:.0f}-{last:.0f} | {offset:+.1f} | {counts['audio']} / {counts['video']} | {fps:.1f} | "
                f"{connections} |")
        say(f"   max |offset| {max(abs(o) for o in offsets):.1f} ms, drift (last - first) {offsets[-1] - offsets[0]:+.1f} ms, "
            f"whole run {overall:+.1f} ms (goal: |offset| <= 40 ms, no drift)")
        self.figures["av"] = (max(abs(o) for o in offsets), offsets[-1] - offsets[0])

    # --- 5 ---

    async def kill_recovery(self, session_id: str) -> None:
        say = self.report.append
        viewer = await self.viewer(session_id, reconnect_after_s=10.0)
        rows = []
        try:
            for repeat in range(KILL_REPEATS):
                holder = (await self.placed(session_id))["worker"]
                await asyncio.to_thread(self.api.interrupt, session_id)
                ids = []
                for text in ("This first sentence is a long one, so that it is still being said when the worker dies.",
                             "The second waits in the queue.", "And the third one waits too."):
                    ids.append(self.api.speak(session_id, text)[0]["utterance_id"])
                since = 0
                await wait_event(viewer, utterance("utterance.started", ids[0]), since)
                await asyncio.sleep(1.0)
                pid = self.worker_pid(holder)
                killed = time.monotonic()
                os.kill(pid, signal.SIGKILL)
                moved = await self.placed(session_id, not_on=holder)
                placed_s = time.monotonic() - killed
                deadline = time.monotonic() + 30
                back = None
                while back is None and time.monotonic() < deadline:
                    arrivals = [at for at, _, _ in viewer.packets["video"] if at > killed - 0.05]
                    for before, after in zip(arrivals, arrivals[1:]):
                        if after - before > GAP_S and after > killed:
                            back = after - killed
                            break
                    await asyncio.sleep(0.05)
                rows.append((holder, moved["worker"], placed_s, back, viewer.connections))
                progress(f"   kill {repeat + 1}: {holder} -> {moved['worker']} placed {placed_s:.2f} s, media {back}")
                await asyncio.sleep(2.0)
                started = await asyncio.to_thread(self.cluster.start_worker, holder)
                if started.returncode != 0:
                    raise RuntimeError(f"{holder} did not start again: {started.stderr}")
                await asyncio.sleep(3.0)  # its heartbeat registered, so it can take the next failover
        finally:
            await viewer.close()
        say(f"\n5. kill -9 of the stage worker holding a speaking session, one viewer, {KILL_REPEATS} times:")
        say("   | # | killed | placed on | kill -> placed (s) | kill -> media again at the viewer (s) | viewer connections |")
        say("   |---|---|---|---|---|---|")
        for index, (holder, new, placed_s, back, connections) in enumerate(rows, 1):
            say(f"   | {index} | {holder} | {new} | {placed_s:.2f} | {'none' if back is None else f'{back:.2f}'} | "
                f"{connections} |")
        self.figures["kill"] = rows

    # --- 6 ---

    async def relayed_stream(self, session_id: str) -> None:
        """The session stream (WebSocket) served by a web process while the stage runs on a worker:
        what one stream viewer costs the worker (JPEG for the relay), the web process and Redis
        (one channel-layer message a tick), against the same speaking session with a Janus viewer
        alone."""
        import websockets

        say = self.report.append
        stage = await self.placed(session_id)
        web = self.cluster.web[1]
        pids = {"stage worker": self.worker_pid(stage["worker"]), "web process": self.cluster.pid("web-2"),
                "redis": self.cluster.redis_pid()}
        viewers = [await self.viewer(session_id)]
        received = {"V": 0, "A": 0}
        try:
            async with KeepSpeaking(self.api, session_id) as speaking:
                await asyncio.sleep(2.0)
                without = await self.cpu_window(pids, viewers)
                url = f"{web.replace('http', 'ws')}/ws/sessions/{session_id}/?api_key={self.api.key}"
                async with websockets.connect(url, max_size=None, compression=None) as socket:
                    async def read():
                        async for message in socket:
                            if isinstance(message, bytes):
                                received[chr(message[0])] += 1
                    reader = asyncio.create_task(read())
                    await asyncio.sleep(3.0)  # the relay starts within WATCH_EVERY_S
                    counted = dict(received)
                    started = time.monotonic()
                    relayed = await self.cpu_window(pids, viewers)
                    ws_fps = (received["V"] - counted["V"]) / (time.monotonic() - started)
                    reader.cancel()
                speaking.check()
        finally:
            await asyncio.gather(*(viewer.close() for viewer in viewers), return_exceptions=True)
        say(f"6. the session stream (WebSocket) relayed from the stage worker through Redis to web process B, "
            f"{self.window:g} s windows (cores):")
        say("   | stream viewers on B | stage worker | web process B | Redis | machine total |")
        say("   |---|---|---|---|---|")
        for count, (used, _, total) in ((0, without), (1, relayed)):
            say(f"   | {count} | {used['stage worker']:.3f} | {used['web process']:.3f} | {used['redis']:.3f} | "
                f"{total:.2f} |")
        extra = {name: relayed[0][name] - without[0][name] for name in pids}
        say(f"   one relayed stream: worker {extra['stage worker']:+.3f}, web {extra['web process']:+.3f}, "
            f"Redis {extra['redis']:+.3f} core; the socket received {ws_fps:.1f} video frames/s")
        self.figures["relay"] = extra

    async def run(self) -> list[str]:
        # No offer_only(127.0.0.1) here (as bench/webrtc_bench.py has): Janus lives in its own network
        # namespace at 10.<n>.0.2 and reaches the viewer on the host's end of its veth pair.
        self.figures: dict = {}
        main_session = await asyncio.to_thread(self.session)
        sections = [(f"1. CPU per extra viewer ({self.window:g} s windows)", self.per_viewer),
                    ("2. CPU per speaking session on one worker", self.per_session),
                    ("3. speak -> moving mouth", self.latency),
                    (f"4. A/V offset over {self.options.av_seconds:g} s", self.av_offset),
                    ("5. kill -9 recovery", self.kill_recovery),
                    ("6. the session stream relayed to a web process", self.relayed_stream)]
        for number, (title, section) in enumerate(sections, 1):
            if number not in self.options.sections:
                continue
            progress(title)
            try:
                await section(main_session)
            except Exception as exc:  # the report says so; the other sections still run
                traceback.print_exc()
                self.report.append(f"\n{title}: FAILED: {type(exc).__name__}: {exc}")
        await asyncio.to_thread(self.api.call, "POST", f"/v1/sessions/{main_session}/end")
        return self.report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("video", nargs="?", type=Path,
                        help="the tutor's video (default: 30 s of the real talking test video at 720p25)")
    parser.add_argument("--quick", action="store_true",
                        help=f"shorter windows ({QUICK_WINDOW_S:g} s), {QUICK_LATENCY_REPEATS} utterances, "
                             f"--av-seconds {QUICK_AV_SECONDS:g}")
    parser.add_argument("--av-seconds", type=float, default=None, help=f"A/V offset run (default {AV_SECONDS:g} s)")
    parser.add_argument("--sections", type=lambda text: {int(n) for n in text.split(",")}, default={1, 2, 3, 4, 5, 6},
                        help="which measures to run, e.g. 3,5 (default all)")
    options = parser.parse_args()
    if options.av_seconds is None:
        options.av_seconds = QUICK_AV_SECONDS if options.quick else AV_SECONDS

    import logging

    from testsupport.cluster import LocalCluster

    # aioice says when it closes a connection itself ("Consent to send expired"): shown, as it
    # explains a viewer that reconnected.
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aioice").setLevel(logging.INFO)

    reason = LocalCluster.why_not()
    if reason:
        sys.exit(f"cannot start a local cluster: {reason}")
    began = time.monotonic()
    load = os.getloadavg()
    video = options.video
    if video is None:
        from testsupport.talking_footage import talking_clip

        video = talking_clip(95, 30, scale=2.5, pad_to=(1280, 720), fps=25.0)
    cluster = LocalCluster(**PORTS)
    progress(f"starting a local cluster on port {cluster.port} (load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})")
    try:
        cluster.start()
        # This process takes the cluster's settings (it reads the prepared avatar from its data folder).
        for line in (cluster.run_dir / "cluster.env").read_text().splitlines():
            name, _, value = line.partition("=")
            if name:
                os.environ[name] = value
        os.environ["DJANGO_SETTINGS_MODULE"] = "tutorplatform.settings"
        import django

        django.setup()
        api = Api(cluster.lb, cluster.api_key("cluster-bench"))
        progress(f"cluster up; preparing a tutor from {video}")
        tutor_id = cluster.tutor_with_avatar(api.key, video, "Bench")
        progress(f"tutor {tutor_id} ready ({time.monotonic() - began:.0f} s)")
        report = asyncio.run(Bench(cluster, api, tutor_id, options).run())
    except BaseException:
        kept = Path(tempfile.mkdtemp(prefix="cluster-bench-logs-"))
        shutil.copytree(cluster.run_dir / "logs", kept, dirs_exist_ok=True)
        print(f"\nthe benchmark failed; the cluster's logs are kept in {kept}", file=sys.stderr)
        raise
    finally:
        progress("stopping the cluster")
        cluster.stop()
    print(f"\n=== cluster benchmark report{' (--quick)' if options.quick else ''} ===")
    print(f"machine: {machine()}; load average at the start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          "(1, 5, 15 min; the machine is shared)")
    print(f"tutor video: {video}")
    for line in report:
        print(line)
    print(f"total time: {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
