"""WebRTC delivery benchmark: speak latency, audio/video offset and drift, CPU per viewer, viewers
per machine.

    .venv/bin/python bench/webrtc_bench.py [--quick] [--soak-s S]    (or: bash scripts/bench.sh webrtc)

Starts one real server as bench/speak_bench.py does (its own data folder, a free loopback port),
prepares an avatar from a 10 s 1280x720 25 fps clip through the API and watches sessions through
POST /v1/sessions/{id}/webrtc with the aiortc viewer of testsupport/webrtc_viewer.py. All media
stays on loopback: the server offers 127.0.0.1 alone (SESSION_WEBRTC_HOST_ADDRESSES), so does this
process (offer_only), and the viewers' peer connections are given no STUN server. Everything is
measured on the client's clock (time.monotonic):

1. The codecs the server's answer chose.
2. Speak latency: short utterances one at a time (the next after utterance.ended arrived on the
   data channel); time from sending POST /speak to the first *decoded* video frame whose mouth
   differs from the prepared idle frame it shows (which one: the nearest by thumbnail) by more than
   a threshold. The difference is the mean absolute grey level in a box below the mouth corners
   (the avatar's landmarks.npy), as sessions_app/tests/test_webrtc.py measures it; the threshold
   is calibrated on ~2 s of idle video first (the codec's loss alone). The POST's round trip
   (which includes the synthesis) is split out.
3. Audio/video offset at the receiver and its drift: one viewer (no pictures kept) for --soak-s
   seconds while utterances follow one another; per 30 s window, from the RTP packets that arrived
   in it, each track's lateness (median of arrival - media time) and offset = video - audio.
4. CPU per viewer: one session speaking continuously, N = 1, 2, 4 viewers, WINDOW_S each: the
   server process's CPU (/proc/<pid>/stat, all threads) per second, per viewer; received fps per
   viewer; this client's CPU and the machine's total beside it (the client decodes every viewer's
   VP8 on the same machine, which lowers every figure here).
5. Viewers per machine at 720p 25 fps: N = 1, 2, 3, ... viewers of one speaking session until one
   receives < MIN_FPS over a window (at most MAX_VIEWERS); the largest N where all held it. Then
   the same with one viewer per separate speaking session (each session has its own stage).

6. The codecs' cost: one viewer offering VP8 alone, then H.264 alone, on a new session, silent
   then speaking: the server's CPU, received fps and the video's bit rate.

Goals: latency median <= 0.6 s; |offset| <= 40 ms and no drift; >= 24 fps per viewer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.speak_bench import (  # noqa: E402
    SENTENCES,
    Api,
    CpuWindow,
    bench_main,
    machine_cpu_seconds,
    ms,
    open_session,
    own_cpu_seconds,
    percentile,
)

LATENCY_REPEATS = 15
QUICK_LATENCY_REPEATS = 6
SOAK_S = 300.0
QUICK_SOAK_S = 60.0
SOAK_WINDOW_S = 30.0
QUICK_SOAK_WINDOW_S = 15.0
CALIBRATION_S = 2.0
WINDOW_S = 15.0
CPU_VIEWERS = (1, 2, 4)
MAX_VIEWERS = 12
MIN_FPS = 24.0
QUEUED_AHEAD = 2  # utterances a continuously speaking session keeps waiting
EVENT_TIMEOUT_S = 30.0
# Other processes using more than this many cores during a window make its figures doubtful.
BUSY_MACHINE_CORES = 0.25
SERVER_ENV = {"SESSION_WEBRTC_HOST_ADDRESSES": "127.0.0.1", "SESSION_MAX_VIEWERS": "64", "SESSION_MAX_ACTIVE": "64"}


def progress(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


# --- Viewers -----------------------------------------------------------------------------------

async def open_viewer(api: Api, session_id: str, keep_pictures: bool, frames: int = 5, video_codec: str | None = None):
    """A connected WebRTC viewer of the session that has received `frames` video frames
    (`video_codec` "VP8" or "H264": offered alone)."""
    from testsupport.webrtc_viewer import WebRTCViewer

    viewer = WebRTCViewer(api.url, session_id, api.key, keep_pictures=keep_pictures)
    try:
        await viewer.start(video_codec=video_codec)
        await viewer.wait_for_video(frames, timeout=30)
    except BaseException:
        await viewer.close()
        raise
    return viewer


async def close_all(viewers) -> None:
    await asyncio.gather(*(viewer.close() for viewer in viewers), return_exceptions=True)


async def wait_event(viewer, match, since: int = 0, timeout: float = EVENT_TIMEOUT_S) -> tuple[float, dict]:
    """The first (arrival, event) of the data channel from index `since` on that `match` accepts."""
    deadline = time.monotonic() + timeout
    while True:
        for arrival in viewer.events[since:]:
            if match(arrival[1]):
                return arrival
        since = len(viewer.events)
        if viewer.pc.connectionState in ("failed", "closed"):
            raise RuntimeError(f"the peer connection is {viewer.pc.connectionState}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no such event within {timeout:g} s")
        await asyncio.sleep(0.01)


def utterance(kind: str, utterance_id: str):
    return lambda event: event.get("type") == kind and event.get("utterance_id") == utterance_id


def fps_in(viewer, start: float, end: float) -> float:
    return sum(start <= video.at < end for video in viewer.video) / (end - start)


def video_mbit_s(viewer, start: float, end: float) -> float:
    """The video's payload rate over the RTP packets that arrived in [start, end)."""
    return sum(size for at, _, size in viewer.packets["video"] if start <= at < end) * 8 / (end - start) / 1e6


def lateness_offset_ms(viewer, start: float, end: float) -> tuple[float, dict[str, float], dict[str, int]]:
    """(video lateness - audio lateness in ms, each track's lateness in ms, each track's packets)
    over the RTP packets that arrived in [start, end): lateness = median(arrival - media time),
    on an origin of its own (only differences between windows and tracks mean something)."""
    lateness, counts = {}, {}
    for kind, packets in viewer.packets.items():
        late = [at - media for at, media, _ in packets if start <= at < end]
        counts[kind] = len(late)
        lateness[kind] = float(np.median(late)) if late else float("nan")
    return (lateness["video"] - lateness["audio"]) * 1000, {k: v * 1000 for k, v in lateness.items()}, counts


# --- Mouths ------------------------------------------------------------------------------------

class Mouths:
    """The prepared idle frames: which one a received picture shows, and how far the received
    picture's mouth (a box below the mouth corners) differs from it, in grey levels."""

    def __init__(self, avatar_dir: Path, shape: tuple[int, int]) -> None:
        from testsupport.webrtc_viewer import idle_thumbnails

        names = sorted((avatar_dir / "full_imgs").iterdir(), key=lambda path: int(path.stem))
        lumas = [cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) for path in names]
        landmarks = np.load(avatar_dir / "landmarks.npy").astype(np.float64)
        height, width = lumas[0].shape
        if (height, width) != shape:  # the received size differs from the prepared: scale to it
            landmarks = landmarks * np.array([shape[1] / width, shape[0] / height])
            lumas = [cv2.resize(luma, (shape[1], shape[0]), interpolation=cv2.INTER_AREA) for luma in lumas]
        self.lumas, self.landmarks = lumas, landmarks
        self.thumbnails = idle_thumbnails(lumas)

    def change(self, luma: np.ndarray) -> float:
        from testsupport.webrtc_viewer import mouth_change

        return mouth_change(luma, self.lumas, self.thumbnails, self.landmarks)


def drop_pictures(viewer, before: float) -> None:
    """Forget the pictures that arrived before `before` (720p luma is ~0.9 MB a frame)."""
    for video in viewer.video:
        if video.at < before:
            video.luma = None


# --- 2: speak latency --------------------------------------------------------------------------

@dataclass
class Trial:
    post_rtt: float
    started_after_ack: float  # utterance.started arrived, after the 202
    latency: float | None  # POST sent -> first received frame with a moved mouth
    peak_change: float


async def speak_once(api: Api, session_id: str, viewer, mouths: Mouths, threshold: float, text: str) -> Trial:
    since = len(viewer.events)
    body, sent, answered = await asyncio.to_thread(api.speak, session_id, text)
    started_at, _ = await wait_event(viewer, utterance("utterance.started", body["utterance_id"]), since)
    ended_at, _ = await wait_event(viewer, utterance("utterance.ended", body["utterance_id"]), since)
    await asyncio.sleep(0.3)  # the last frames, decoded after the event
    latency, peak = None, 0.0
    for video in viewer.video:
        if video.at < sent or video.luma is None:
            continue
        change = mouths.change(video.luma)
        peak = max(peak, np.nan_to_num(change))
        if latency is None and change > threshold:
            latency = video.at - sent
        if latency is not None and video.at > ended_at:
            break
    drop_pictures(viewer, time.monotonic())
    return Trial(answered - sent, started_at - answered, latency, peak)


# --- speaking all the time ---------------------------------------------------------------------

async def keep_speaking(api: Api, session_id: str, viewer, texts: list[str]) -> None:
    """Queue QUEUED_AHEAD sentences, then a new one each time one ends (seen on `viewer`)."""
    turn = 0

    async def say() -> None:
        nonlocal turn
        status, body, _, _ = await asyncio.to_thread(api.call, "POST", f"/v1/sessions/{session_id}/speak",
                                                      {"text": texts[turn % len(texts)]})
        turn += 1
        if status not in (202, 429):  # 429: the queue is full, which is what was wanted
            raise RuntimeError(f"POST speak answered {status}: {body}")

    since = len(viewer.events)
    for _ in range(QUEUED_AHEAD):
        await say()
    while True:
        _, event = await wait_event(viewer, lambda e: e.get("type") == "utterance.ended", since, timeout=3600)
        since = next(i for i in range(len(viewer.events) - 1, -1, -1) if viewer.events[i][1] is event) + 1
        await say()


class Speaking:
    """A session kept speaking while the block runs (its queue dropped after)."""

    def __init__(self, api: Api, session_id: str, viewer, texts: list[str]) -> None:
        self.api, self.session_id, self.viewer, self.texts = api, session_id, viewer, texts
        self.task: asyncio.Task | None = None

    async def __aenter__(self) -> "Speaking":
        self.task = asyncio.create_task(keep_speaking(self.api, self.session_id, self.viewer, self.texts))
        return self

    def check(self) -> None:
        if self.task.done() and not self.task.cancelled() and self.task.exception():
            raise self.task.exception()

    async def __aexit__(self, *exc) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await asyncio.to_thread(self.api.interrupt, self.session_id)


# --- the run -----------------------------------------------------------------------------------

@dataclass
class Load:
    viewers: int
    fps: list[float]
    server: float  # core-seconds per second
    client: float
    machine: float

    @property
    def others(self) -> float:  # every other process of the machine
        return max(0.0, self.machine - self.server - self.client)


async def viewer_window(server_pid: int, viewers, seconds: float) -> Load:
    start = (time.monotonic(), own_cpu_seconds(), machine_cpu_seconds())
    cpu = CpuWindow(server_pid)
    await asyncio.sleep(seconds)
    end = (time.monotonic(), own_cpu_seconds(), machine_cpu_seconds())
    used = cpu.stop()
    wall = end[0] - start[0]
    return Load(len(viewers), [fps_in(viewer, start[0], end[0]) for viewer in viewers], used.server,
                (end[1] - start[1]) / wall, (end[2] - start[2]) / wall)


async def run(server, api: Api, tutor_id: int, options) -> list[str]:
    from django.conf import settings

    from sessions_app.live.webrtc.addresses import offer_only

    offer_only(["127.0.0.1"])  # this process's peer connections offer loopback alone
    report: list[str] = []
    say = report.append
    repeats = QUICK_LATENCY_REPEATS if options.quick else LATENCY_REPEATS
    soak_window = QUICK_SOAK_WINDOW_S if options.quick else SOAK_WINDOW_S
    pid = server.process.pid
    texts = SENTENCES[:]

    # --- 1 and 2 ---
    session = open_session(api, tutor_id)["session_id"]
    progress("1-2. codec and speak latency")
    viewer = await open_viewer(api, session, keep_pictures=True, frames=25)
    try:
        say(f"1. codecs in the answer: video {viewer.answer['codecs'].get('video')}, audio {viewer.answer['codecs'].get('audio')}")
        _, header = await wait_event(viewer, lambda e: e.get("type") == "session", 0, timeout=10)
        shape = viewer.video[-1].luma.shape
        say(f"   stream: avatar {header['width']}x{header['height']} at {header['fps']} fps, "
            f"received pictures {shape[1]}x{shape[0]}, audio {header['audio_rate']} Hz")
        mouths = Mouths(Path(settings.AVATAR_ROOT) / "bench", shape)
        await asyncio.sleep(2.0)  # the encoder's rate control settles first
        drop_pictures(viewer, time.monotonic())
        calibration_start = time.monotonic()
        await asyncio.sleep(CALIBRATION_S)
        idle = [mouths.change(v.luma) for v in viewer.video if v.at >= calibration_start and v.luma is not None]
        idle_max = float(np.nanmax(idle))
        threshold = max(2.0 * idle_max, idle_max + 3.0)
        drop_pictures(viewer, time.monotonic())
        say(f"   mouth-box change of idle pictures vs the idle frame they show ({len(idle)} frames, "
            f"{CALIBRATION_S:g} s): median {np.nanmedian(idle):.2f}, max {idle_max:.2f} grey levels "
            f"-> threshold max(2 x max, max + 3) = {threshold:.2f}")
        warm = await speak_once(api, session, viewer, mouths, threshold, "Hello, I am your tutor today.")
        say(f"   warm-up utterance (not counted): POST round trip {ms(warm.post_rtt)}, latency "
            f"{ms(warm.latency) if warm.latency is not None else 'none'}")
        trials = []
        for index in range(repeats):
            trials.append(await speak_once(api, session, viewer, mouths, threshold, texts[index % len(texts)]))
            await asyncio.sleep(0.2 + 0.3 * (index % 3) / 2)  # vary where in a frame period the POST lands
    finally:
        await viewer.close()
    seen = [t for t in trials if t.latency is not None]
    say(f"\n2. speak latency, POST sent -> first received video frame with mouth change > {threshold:.2f} "
        f"({len(seen)}/{len(trials)} utterances seen):")
    if seen:
        latencies, rtts = [t.latency for t in seen], [t.post_rtt for t in seen]
        rest = [t.latency - t.post_rtt for t in seen]
        say(f"   median {ms(statistics.median(latencies))}, p95 {ms(percentile(latencies, 0.95))}, "
            f"max {ms(max(latencies))}   (goal: median <= 600 ms)")
        say(f"   POST round trip (includes the synthesis): median {ms(statistics.median(rtts))}, "
            f"p95 {ms(percentile(rtts, 0.95))}, max {ms(max(rtts))}")
        say(f"   rest (202 -> moved mouth received):      median {ms(statistics.median(rest))}, "
            f"p95 {ms(percentile(rest, 0.95))}; of it, 202 -> utterance.started received: "
            f"median {ms(statistics.median(t.started_after_ack for t in seen))}")
    say(f"   peak mouth change per utterance: min {min(t.peak_change for t in trials):.1f}, "
        f"median {statistics.median(t.peak_change for t in trials):.1f} grey levels")

    # --- 3 ---
    progress(f"3. A/V offset: one viewer for {options.soak_s:g} s, speaking throughout")
    viewer = await open_viewer(api, session, keep_pictures=False)
    windows = []
    try:
        async with Speaking(api, session, viewer, texts) as speaking:
            await asyncio.sleep(1.0)
            start = time.monotonic()
            while time.monotonic() - start < options.soak_s - 1e-6:
                length = min(soak_window, options.soak_s - (time.monotonic() - start))
                window_start = time.monotonic()
                await asyncio.sleep(length)
                speaking.check()
                end = time.monotonic()
                offset, late, counts = lateness_offset_ms(viewer, window_start, end)
                windows.append((window_start - start, end - start, offset, late, counts, fps_in(viewer, window_start, end),
                                video_mbit_s(viewer, window_start, end)))
                progress(f"   window {len(windows)}: offset {offset:+.1f} ms")
        overall = viewer.offset_ms(since=start)
        utterances = sum(event.get("type") == "utterance.ended" for at, event in viewer.events if at >= start)
    finally:
        await viewer.close()
    say(f"\n3. A/V offset at the receiver (RTP packet arrival; video lateness - audio lateness, + = video later), "
        f"one viewer, {options.soak_s:g} s, {utterances} utterances ended in it:")
    for first, last, offset, late, counts, fps, mbit in windows:
        say(f"   {first:5.0f}-{last:3.0f} s: offset {offset:+6.1f} ms  (lateness vs the first window: audio "
            f"{late['audio'] - windows[0][3]['audio']:+5.1f} ms, video {late['video'] - windows[0][3]['video']:+5.1f} ms; "
            f"{counts['audio']} audio / {counts['video']} video packets; {fps:.1f} fps decoded; video {mbit:.2f} Mbit/s)")
    offsets = [w[2] for w in windows]
    say(f"   max |offset| {max(abs(o) for o in offsets):.1f} ms; drift (last window - first) "
        f"{offsets[-1] - offsets[0]:+.1f} ms; whole run (viewer.offset_ms) {overall:+.1f} ms   "
        "(goal: |offset| <= 40 ms, no drift)")

    # --- 4 and 5 ---
    progress(f"4-5. viewers of one speaking session, {WINDOW_S:g} s windows")
    loads: list[Load] = []
    held = 0
    viewers = []
    try:
        viewers.append(await open_viewer(api, session, keep_pictures=False))
        async with Speaking(api, session, viewers[0], texts) as speaking:
            await asyncio.sleep(1.0)
            for count in range(1, MAX_VIEWERS + 1):
                while len(viewers) < count:
                    viewers.append(await open_viewer(api, session, keep_pictures=False))
                await asyncio.sleep(1.0)
                load = await viewer_window(pid, viewers, WINDOW_S)
                speaking.check()
                loads.append(load)
                ok = min(load.fps) >= MIN_FPS
                if ok and held == count - 1:
                    held = count
                progress(f"   N={count}: fps {', '.join(f'{f:.1f}' for f in load.fps)}; server CPU {load.server:.2f}")
                if not ok and count >= max(CPU_VIEWERS):
                    break
    finally:
        await close_all(viewers)
    say(f"\n4. CPU per viewer, one session speaking throughout, {WINDOW_S:g} s per N (core-seconds per second; "
        f"{len(os.sched_getaffinity(0))} cores, the client on the same machine):")
    for load in loads:
        if load.viewers in CPU_VIEWERS:
            say(f"   N={load.viewers}: server {load.server:.2f} = {load.server / load.viewers:.2f} per viewer; "
                f"fps per viewer {', '.join(f'{f:.1f}' for f in load.fps)}; client (this process) {load.client:.2f}; "
                f"machine total {load.machine:.2f} (other processes {load.others:.2f})")
    say(f"\n5. viewers of one speaking session at {header['width']}x{header['height']} {header['fps']} fps "
        f"(N = 1, 2, ... up to the first N with a viewer < {MIN_FPS:g} fps, at most {MAX_VIEWERS}):")
    for load in loads:
        say(f"   N={load.viewers:2d}: min fps {min(load.fps):4.1f}, mean {statistics.mean(load.fps):4.1f}; "
            f"server {load.server:.2f}, client {load.client:.2f}, machine {load.machine:.2f} cores")
    say(f"   largest N with every viewer >= {MIN_FPS:g} fps: {held}"
        + ("" if held < MAX_VIEWERS else f" (the sweep stops at {MAX_VIEWERS})"))

    progress(f"5b. one viewer per separate speaking session, {WINDOW_S:g} s windows")
    separate, held_separate = await separate_sessions(api, tutor_id, pid, texts)
    say(f"   one viewer per separate session, each speaking (N sessions, up to the first N with a viewer < {MIN_FPS:g} fps):")
    for load in separate:
        say(f"   N={load.viewers:2d}: fps {', '.join(f'{f:.1f}' for f in load.fps)}; server {load.server:.2f}, "
            f"client {load.client:.2f}, machine {load.machine:.2f} cores")
    say(f"   largest N with every session's viewer >= {MIN_FPS:g} fps: {held_separate}")

    progress(f"6. one viewer per codec, silent and speaking, {WINDOW_S:g} s windows")
    by_codec = await codec_costs(api, tutor_id, pid, texts)
    say(f"\n6. one viewer, each video codec offered alone, {WINDOW_S:g} s silent then {WINDOW_S:g} s speaking:")
    for codec, silent, speaking, silent_mbit, speaking_mbit in by_codec:
        say(f"   {codec:4s}: server {silent.server:.2f} cores silent ({min(silent.fps):.1f} fps, {silent_mbit:.2f} Mbit/s), "
            f"{speaking.server:.2f} speaking ({min(speaking.fps):.1f} fps, {speaking_mbit:.2f} Mbit/s)")

    busy = [f"{name} N={load.viewers} ({load.others:.2f} cores)" for name, group in (("one session", loads),
                                                                                   ("separate sessions", separate))
            for load in group if load.others > BUSY_MACHINE_CORES]
    if busy:
        say("\nWARNING: other processes were busy during " + ", ".join(busy)
            + ": those figures understate the server; run again on a quiet machine.")
    else:
        say(f"\nother processes stayed under {BUSY_MACHINE_CORES:g} cores in every viewer window")
    return report


async def codec_costs(api: Api, tutor_id: int, pid: int, texts: list[str]) -> list[tuple]:
    """Per video codec: one viewer of a new session, silent then speaking; (codec, silent Load,
    speaking Load, silent Mbit/s, speaking Mbit/s)."""
    results = []
    for codec in ("VP8", "H264"):
        session = open_session(api, tutor_id)["session_id"]
        viewer = await open_viewer(api, session, keep_pictures=False, video_codec=codec)
        try:
            await asyncio.sleep(1.0)
            start = time.monotonic()
            silent = await viewer_window(pid, [viewer], WINDOW_S)
            silent_mbit = video_mbit_s(viewer, start, time.monotonic())
            async with Speaking(api, session, viewer, texts) as speaking:
                await asyncio.sleep(1.0)
                start = time.monotonic()
                spoken = await viewer_window(pid, [viewer], WINDOW_S)
                speaking.check()
                spoken_mbit = video_mbit_s(viewer, start, time.monotonic())
            assert viewer.answer["codecs"]["video"] == codec, viewer.answer["codecs"]
            results.append((codec, silent, spoken, silent_mbit, spoken_mbit))
        finally:
            await viewer.close()
            await asyncio.to_thread(api.call, "POST", f"/v1/sessions/{session}/end")
    return results


async def separate_sessions(api: Api, tutor_id: int, pid: int, texts: list[str]) -> tuple[list[Load], int]:
    """N = 1, 2, ... sessions, each speaking with one viewer, until one viewer is short of MIN_FPS."""
    loads, held = [], 0
    async with contextlib.AsyncExitStack() as stack:
        viewers = []
        for count in range(1, MAX_VIEWERS + 1):
            session = open_session(api, tutor_id)["session_id"]
            viewer = await open_viewer(api, session, keep_pictures=False)
            stack.push_async_callback(viewer.close)
            viewers.append(viewer)
            await stack.enter_async_context(Speaking(api, session, viewer, texts[count % len(texts):] + texts))
            await asyncio.sleep(1.0)
            load = await viewer_window(pid, viewers, WINDOW_S)
            loads.append(load)
            progress(f"   N={count}: fps {', '.join(f'{f:.1f}' for f in load.fps)}; server CPU {load.server:.2f}")
            if min(load.fps) < MIN_FPS:
                break
            held = count
    return loads, held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"a fast check: {QUICK_LATENCY_REPEATS} utterances, soak {QUICK_SOAK_S:g} s")
    parser.add_argument("--soak-s", type=float, default=None, help=f"A/V offset soak length (default {SOAK_S:g} s)")
    options = parser.parse_args()
    if options.soak_s is None:
        options.soak_s = QUICK_SOAK_S if options.quick else SOAK_S

    async def measure(server, api: Api, tutor_id: int) -> list[str]:
        return await run(server, api, tutor_id, options)

    bench_main(f"WebRTC benchmark report{' (--quick)' if options.quick else ''}", measure, "webrtc-bench-",
               extra_env=SERVER_ENV)


if __name__ == "__main__":
    main()
