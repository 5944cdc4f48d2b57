"""Speaking-session benchmark: speak latency, lip-sync, concurrent speaking sessions, interrupt.

    .venv/bin/python bench/speak_bench.py        (or: bash scripts/bench.sh speak)

Starts one real server (uvicorn, as scripts/serve.sh does) on a free loopback port with its own
data folder, prepares an avatar from a 10 s 720p clip through the API, opens sessions on it, and
watches /ws/sessions/<id>/ with the `websockets` client. Everything is measured from the client's
side of the socket, on the client's clock (time.monotonic), in one run of a few minutes:

1. Latency: POST /speak (a short sentence, one at a time, waiting for utterance.ended) to the
   first *received* video frame whose mouth differs from the idle frame. "Differs" is the mean
   absolute grey-level difference inside a mouth box (placed by the avatar's landmarks.npy at the
   frame's avatar index, ping_pong(round(pts * fps), frame_count)) from the same box of the
   prepared idle frame (full_imgs/), above a threshold calibrated first: the idle stream is
   compared with full_imgs (the server sends those bytes as they are: expected 0), and idle frames
   re-encoded at the speaking frames' JPEG quality give the noise a re-encode alone makes; the
   threshold is well above both. Split: the POST's round trip (which includes the synthesis) and
   the rest. The received time is what is measured: a player shows the frame about
   LEAD_FRAMES/fps later (the server sends media that far ahead).
2. Lip-sync, without a sync model (testsupport/lipsync.py): per received speaking frame, its
   mouth box's difference from the idle frame at the same index (how far the mouth is drawn open;
   the idle loop's head motion cancels out, which a frame-to-frame difference would not) against
   the RMS of the audio message with the same presentation time; Pearson correlation over lags
   -5..+5 frames, pooled over the latency run's utterances. Then the audio is shifted by 3 frames
   either way on purpose, to show the measure finds that (best lag moves to -3 / +3).
3. Concurrency: N = 1..4 sessions speak at once (sessions share the avatar; each has its own
   stage), one viewer each, utterances kept queued for a WINDOW_S window. Per session: received
   video fps, the share of frame intervals longer than 1.5/fps (stutter), video bit rate; the
   server process's CPU time over the window (/proc/<pid>/stat, all its threads) per second of
   speaking media delivered (the sessions' received frames / fps: per session and second while
   every session holds its fps). The largest N whose sessions all hold MIN_FPS is reported.
   The client runs on the same machine and takes CPU too: its own CPU time is printed beside, and
   what every other process used (/proc/stat), since a busy machine lowers every figure here.
   The sweep runs as browsers connect, offering permessage-deflate (the websockets client's
   default). The server declines it (deflating JPEG and PCM cost 0.35-0.45 of a core per 720p
   viewer and saved almost nothing); should a server accept it, a second sweep with a client
   offering no compression shows the limit without that cost (it stops at the first N that
   fails), and a silent session's stream is measured both ways for comparison.
4. Interrupt: a long utterance, interrupted 0.6-1.5 s after utterance.started arrived; time from
   sending POST /interrupt to (a) the first received audio message of the all-zero run that
   follows and (b) the first received video frame of the run of idle mouths (at most the
   threshold) that follows. A trial counts when at least 3 moved-mouth frames arrived before the POST.

Goals: latency median <= 0.6 s and p95 <= 1 s; lip-sync correlation >= 0.3 at a lag within +-1
frame; >= 24 fps per session at 720p; interrupt <= 200 ms.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import shutil
import statistics
import struct
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testsupport import lipsync  # noqa: E402

LATENCY_REPEATS = 15
LIPSYNC_MAX_LAG = 5
LIPSYNC_SHIFT = 3
CONCURRENCY = (1, 2, 3, 4)
WINDOW_S = 15.0
IDLE_WINDOW_S = 6.0
QUEUED_AHEAD = 3  # utterances each concurrent session keeps waiting, so it never falls silent
INTERRUPT_REPEATS = 8
MIN_FPS = 24.0
EVENT_TIMEOUT_S = 30.0
# Other processes using more than this many cores during a phase make its figures doubtful (the
# machine has few cores, and the server competes with them): the report says so.
BUSY_MACHINE_CORES = 0.25
RNG = random.Random(7)  # pauses and sentence order vary, the same way every run

SENTENCES = [
    "Let's look at the next problem together.",
    "Great job, that answer is exactly right.",
    "What do you think happens if we double the radius?",
    "Remember to carry the one before you add the tens.",
    "Take your time and read the question once more.",
    "A noun is a person, a place, or a thing.",
    "Photosynthesis turns sunlight into chemical energy.",
    "Can you explain how you got that number?",
    "Almost there, check the sign on the second term.",
    "Seven times eight is fifty six.",
    "The capital of France is Paris.",
    "Let's try a harder one now.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "Draw a picture first, it often helps.",
    "Why might the author have chosen that word?",
]
LONG_TEXT = ("Today we are going to learn about fractions. A fraction describes a part of a whole. "
             "The number on the bottom tells us how many equal parts the whole is divided into, and "
             "the number on the top tells us how many of those parts we have. For example, if you cut "
             "a pizza into eight slices and eat three of them, you have eaten three eighths of the pizza.")


# --- The server and its API --------------------------------------------------------------------

@dataclass
class Api:
    url: str
    key: str

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict, float, float]:
        """(status, JSON body, time sent, time answered): times on time.monotonic()."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                         headers={"X-API-Key": self.key, "Content-Type": "application/json"})
        sent = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        answered = time.monotonic()
        return status, json.loads(raw) if raw else {}, sent, answered

    def speak(self, session_id: str, text: str) -> tuple[dict, float, float]:
        status, body, sent, answered = self.call("POST", f"/v1/sessions/{session_id}/speak", {"text": text})
        if status != 202:
            raise RuntimeError(f"POST speak answered {status}: {body}")
        return body, sent, answered

    def interrupt(self, session_id: str) -> tuple[float, float]:
        status, body, sent, answered = self.call("POST", f"/v1/sessions/{session_id}/interrupt")
        if status != 200:
            raise RuntimeError(f"POST interrupt answered {status}: {body}")
        return sent, answered


def open_session(api: Api, tutor_id: int) -> dict:
    status, session, _, _ = api.call("POST", "/v1/sessions", {"tutor_id": tutor_id, "student_id": 1, "avatar_id": "bench"})
    if status != 201:
        raise RuntimeError(f"POST /v1/sessions answered {status}: {session}")
    return session


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def machine_cpu_seconds() -> float:
    """CPU time all processes of the machine have used (every core), from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class Cpu:
    """CPU seconds per second of wall time over a window: the server, this client, the rest."""

    server: float
    client: float
    others: float


class CpuWindow:
    def __init__(self, server_pid: int) -> None:
        self.pid = server_pid
        self.start = (time.monotonic(), cpu_seconds(server_pid), own_cpu_seconds(), machine_cpu_seconds())

    def stop(self) -> Cpu:
        end = (time.monotonic(), cpu_seconds(self.pid), own_cpu_seconds(), machine_cpu_seconds())
        wall, server, client, machine = (b - a for a, b in zip(self.start, end))
        return Cpu(server / wall, client / wall, max(0.0, machine - server - client) / wall)


# --- One viewer of a session's stream ----------------------------------------------------------

@dataclass
class Media:
    received: float
    kind: str  # "V" or "A"
    pts_us: int
    payload: bytes


class Viewer:
    """A websocket on a session's stream, read in the background: every video frame's arrival
    time, every JSON event (with its arrival time in "received"), and, while `record` is on, the
    media messages themselves."""

    def __init__(self, url: str, compression: str | None = "deflate") -> None:
        self.url = url
        # The websockets client, like browsers, offers permessage-deflate unless told not to.
        self.compression = compression
        self.deflate = False  # whether the server accepted it
        self.header: dict = {}
        self.video_times: list[float] = []
        self.video_bytes: list[int] = []  # the size of each of those messages
        self.events: list[dict] = []
        self.recorded: list[Media] = []
        self.record = False
        self.error: BaseException | None = None
        self.close_code: int | None = None  # set when the stream ends
        self._arrived = asyncio.Event()
        self._socket = None
        self._task: asyncio.Task | None = None

    async def open(self) -> "Viewer":
        import websockets

        self._socket = await websockets.connect(self.url, max_size=None, compression=self.compression)
        self.deflate = any(type(extension).__name__ == "PerMessageDeflate" for extension in self._socket.protocol.extensions)
        self.header = json.loads(await asyncio.wait_for(self._socket.recv(), 10))
        if self.header.get("type") != "session":
            raise RuntimeError(f"the stream began with {self.header}, not the session header")
        self._task = asyncio.create_task(self._read())
        return self

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._socket is not None:
            await self._socket.close()

    async def _read(self) -> None:
        try:
            async for message in self._socket:
                now = time.monotonic()
                if isinstance(message, bytes):
                    kind = message[:1].decode()
                    if kind == "V":
                        self.video_times.append(now)
                        self.video_bytes.append(len(message))
                    if self.record:
                        self.recorded.append(Media(now, kind, struct.unpack(">Q", message[1:9])[0], message[9:]))
                else:
                    event = json.loads(message)
                    event["received"] = now
                    self.events.append(event)
                    self._arrived.set()
            self.error = RuntimeError(f"the stream closed (code {self._socket.close_code})")
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - reported to whoever waits
            self.error = error
        self.close_code = self._socket.close_code
        self._arrived.set()

    async def wait_event(self, match, since: int = 0, timeout: float = EVENT_TIMEOUT_S) -> dict:
        """The first event from index `since` on that `match(event)` accepts."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events[since:]:
                if match(event):
                    return event
            since = len(self.events)
            if self.error is not None:
                raise RuntimeError(f"viewer of {self.url.split('?')[0]}: {self.error}")
            self._arrived.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no such event within {timeout:g} s on {self.url.split('?')[0]}")
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                pass

    def take_recording(self) -> list[Media]:
        self.record = False
        taken, self.recorded = self.recorded, []
        return taken


def utterance(kind: str, utterance_id: str):
    return lambda event: event.get("type") == kind and event.get("utterance_id") == utterance_id


# --- Mouth regions -----------------------------------------------------------------------------

class Mouths:
    """The prepared avatar's idle frames and facial points: where the mouth is in a received frame,
    and how far that region differs from the idle frame at the same index.

    An avatar that speaks with the tutor's own mouth (its files hold lip shapes, lips.npy) shows a
    composited resting mouth in its silent frames, not the recorded one, and a real mouth opening
    changes fewer grey levels than a drawn one: there `difference` is the mouth's opening measured
    by the face mesh on the received frame (the inner lips' gap / the mouth's width), which
    measures the same for the rest and for speech."""

    def __init__(self, avatar_dir: Path, header: dict) -> None:
        self.fps = float(header["fps"])
        self.frame_count = int(header["frame_count"])
        self.shape = (int(header["height"]), int(header["width"]))
        self.names = sorted((path.name for path in (avatar_dir / "full_imgs").iterdir()), key=lambda n: int(Path(n).stem))
        self.avatar_dir = avatar_dir
        self.landmarks = np.load(avatar_dir / "landmarks.npy")
        if len(self.names) != self.frame_count or len(self.landmarks) != self.frame_count:
            raise RuntimeError(f"{avatar_dir}: {len(self.names)} frames and {len(self.landmarks)} landmarks "
                               f"for {self.frame_count} frames")
        self._idle: dict[int, np.ndarray | None] = {}
        from avatars.pipeline import lips

        self.by_opening = (avatar_dir / lips.POINTS_FILE).exists() and lips.available()
        self.unit = "of the mouth's width open" if self.by_opening else "grey levels"
        self._landmarker = lips.LipLandmarker() if self.by_opening else None

    def index(self, pts_us: int) -> int:
        from sessions_app.live.frames import ping_pong

        return ping_pong(round(pts_us * self.fps / 1e6), self.frame_count)

    def box(self, index: int):
        return lipsync.mouth_box(self.landmarks[index], self.shape)

    def idle_image(self, index: int, flags: int = cv2.IMREAD_GRAYSCALE) -> np.ndarray:
        return cv2.imread(str(self.avatar_dir / "full_imgs" / self.names[index]), flags)

    def idle_crop(self, index: int) -> np.ndarray | None:
        if index not in self._idle:
            box = self.box(index)
            self._idle[index] = None if box is None else lipsync.crop(self.idle_image(index), box).copy()
        return self._idle[index]

    def crop(self, jpeg: bytes, pts_us: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(the received frame's mouth crop, the idle frame's) at the frame's avatar index."""
        index = self.index(pts_us)
        box = self.box(index)
        if box is None:
            return None, None
        # Grey levels only: decoding skips the chroma planes, and an opening mouth shows in luma.
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
        return lipsync.crop(image, box), self.idle_crop(index)

    def difference(self, jpeg: bytes, pts_us: int) -> float:
        if self.by_opening:
            shape = self._landmarker.measure(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR),
                                             self.landmarks[self.index(pts_us)])
            return float("nan") if shape is None else float(shape.features[0])
        current, idle = self.crop(jpeg, pts_us)
        return float(lipsync.mouth_motion([current], [idle])[0])


def calibrate(mouths: Mouths, idle_frames: list[Media]) -> tuple[float, float, float]:
    """(largest difference of received idle frames from full_imgs, largest difference a re-encode at
    the speaking quality makes, the threshold for "the mouth differs")."""
    from sessions_app.live.stage import SPEAKING_JPEG_QUALITY

    received = [mouths.difference(frame.payload, frame.pts_us) for frame in idle_frames]
    if mouths.by_opening:
        # The resting mouth's largest opening, plus a visible parting of the lips (0.03 of the
        # mouth's width; the mesh's jitter on a still mouth is ~0.004).
        resting = float(np.nanmax(received)) if received else float("nan")
        return resting, float("nan"), np.nan_to_num(resting) + 0.03
    reencoded = []
    for frame in idle_frames[:25]:
        index = mouths.index(frame.pts_us)
        box = mouths.box(index)
        if box is None:
            continue
        again = cv2.imencode(".jpg", mouths.idle_image(index, cv2.IMREAD_COLOR),
                             [cv2.IMWRITE_JPEG_QUALITY, SPEAKING_JPEG_QUALITY])[1]
        grey = cv2.imdecode(again, cv2.IMREAD_GRAYSCALE)
        reencoded.append(float(lipsync.mouth_motion([lipsync.crop(grey, box)], [mouths.idle_crop(index)])[0]))
    received_max = float(np.nanmax(received)) if received else float("nan")
    reencoded_max = float(np.nanmax(reencoded)) if reencoded else float("nan")
    # Well over both noises, and at least one grey level: a visible change of the mouth, not JPEG.
    threshold = max(1.0, 4 * np.nan_to_num(reencoded_max), 4 * np.nan_to_num(received_max))
    return received_max, reencoded_max, threshold


# --- 1 and 2: latency and lip-sync -------------------------------------------------------------

@dataclass
class SpokenTrial:
    post_rtt: float
    started_after_ack: float  # utterance.started received, after the 202
    latency: float | None  # POST sent to the first received frame with a moved mouth
    motion: np.ndarray = field(repr=False)  # per clock frame over the padded utterance; NaN outside it
    envelope: np.ndarray = field(repr=False)  # RMS of each frame's audio (the padding included)


def analyse_utterance(mouths: Mouths, recorded: list[Media], started: dict, ended: dict, sent: float,
                      threshold: float, pad: int) -> tuple[float | None, np.ndarray, np.ndarray]:
    """(latency, motion, envelope) of one recorded utterance: motion and envelope per clock frame
    from `pad` frames before the utterance's first frame to `pad` after its last; motion is NaN
    outside the utterance, so correlation only looks at speaking frames."""
    first = round(started["pts_us"] * mouths.fps / 1e6)
    # utterance.ended's time is that of the sample after its last one: the frame holding that last
    # sample is its last frame.
    last = int((ended["pts_us"] - 1) * mouths.fps // 1_000_000)
    video = {round(m.pts_us * mouths.fps / 1e6): m for m in recorded if m.kind == "V"}
    audio = {round(m.pts_us * mouths.fps / 1e6): np.frombuffer(m.payload, "<i2") for m in recorded if m.kind == "A"}
    span = range(first - pad, last + pad + 1)
    motion = np.full(len(span), np.nan)
    for position, clock in enumerate(span):
        if first <= clock <= last and clock in video:
            motion[position] = mouths.difference(video[clock].payload, video[clock].pts_us)
    envelope = lipsync.envelope_per_frame([audio.get(clock) for clock in span])
    latency = None
    for frame in sorted((m for m in recorded if m.kind == "V" and m.received >= sent), key=lambda m: m.received):
        if mouths.difference(frame.payload, frame.pts_us) > threshold:
            latency = frame.received - sent
            break
    return latency, motion, envelope


async def latency_run(api: Api, session_id: str, viewer: Viewer, mouths: Mouths, threshold: float,
                      texts: list[str]) -> list[SpokenTrial]:
    pad = LIPSYNC_MAX_LAG + LIPSYNC_SHIFT  # room to shift the audio and still pair every speaking frame
    trials = []
    for text in texts:
        viewer.take_recording()
        viewer.record = True
        # Record a little before the POST: the audio frames before the utterance are the padding.
        await asyncio.sleep(pad / mouths.fps + 0.1)
        since = len(viewer.events)
        body, sent, answered = await asyncio.to_thread(api.speak, session_id, text)
        started = await viewer.wait_event(utterance("utterance.started", body["utterance_id"]), since)
        ended = await viewer.wait_event(utterance("utterance.ended", body["utterance_id"]), since)
        await asyncio.sleep(pad / mouths.fps + 0.1)
        recorded = viewer.take_recording()
        latency, motion, envelope = analyse_utterance(mouths, recorded, started, ended, sent, threshold, pad)
        trials.append(SpokenTrial(answered - sent, started["received"] - answered, latency, motion, envelope))
        await asyncio.sleep(RNG.uniform(0.1, 0.5))  # vary where in a frame period the next POST lands
    return trials


def lipsync_figures(trials: list[SpokenTrial]) -> dict:
    """Best lag and correlation, as streamed and with the audio moved LIPSYNC_SHIFT frames later
    and earlier (pairs each frame's motion with the audio of LIPSYNC_SHIFT frames before / after)."""
    figures = {}
    for name, shift in (("as streamed", 0), (f"audio delayed {LIPSYNC_SHIFT} frames", LIPSYNC_SHIFT),
                        (f"audio advanced {LIPSYNC_SHIFT} frames", -LIPSYNC_SHIFT)):
        motions, envelopes = [], []
        for trial in trials:
            envelope = np.full(len(trial.envelope), np.nan)
            if shift > 0:
                envelope[shift:] = trial.envelope[:-shift]
            elif shift < 0:
                envelope[:shift] = trial.envelope[-shift:]
            else:
                envelope = trial.envelope
            # Cut the padding that the shift emptied; the rest keeps every speaking frame paired
            # at every lag, and NaN motion there keeps utterances apart.
            motions.append(trial.motion[LIPSYNC_SHIFT:len(trial.motion) - LIPSYNC_SHIFT])
            envelopes.append(envelope[LIPSYNC_SHIFT:len(envelope) - LIPSYNC_SHIFT])
        motion, envelope = np.concatenate(motions), np.concatenate(envelopes)
        lag, corr = lipsync.best_lag(motion, envelope, LIPSYNC_MAX_LAG)
        figures[name] = (lag, corr, lipsync.correlation_at(motion, envelope, 0))
    figures["frames"] = int(sum(np.count_nonzero(~np.isnan(t.motion)) for t in trials))
    return figures


# --- 3: concurrency ----------------------------------------------------------------------------

@dataclass
class SessionWindow:
    fps: float
    stutter: float  # share of frame intervals longer than 1.5 frame periods
    worst_gap_ms: float
    speaking: float  # share of the window's frames received while an utterance played
    mbit_s: float  # video received, megabits per second
    closed: str | None  # why the stream ended before the window did, if it did


async def keep_speaking(api: Api, session_id: str, viewer: Viewer, texts: list[str]) -> None:
    """Queue the next sentence each time one ends, so QUEUED_AHEAD stay waiting."""
    since, turn = 0, 0
    while True:
        try:
            event = await viewer.wait_event(lambda e: e.get("type") == "utterance.ended", since, timeout=3600)
        except RuntimeError:  # the server closed the stream: the window reports it
            return
        since = viewer.events.index(event) + 1
        status, body, _, _ = await asyncio.to_thread(api.call, "POST", f"/v1/sessions/{session_id}/speak",
                                                      {"text": texts[turn % len(texts)]})
        turn += 1
        if status not in (202, 429):  # 429: the queue is full, which is what was wanted
            raise RuntimeError(f"POST speak answered {status}: {body}")


def window_of(viewer: Viewer, start: float, end: float, fps: float) -> SessionWindow:
    times = [t for t in viewer.video_times if start <= t <= end]
    size = sum(n for t, n in zip(viewer.video_times, viewer.video_bytes) if start <= t <= end)
    gaps = np.diff(times) if len(times) > 1 else np.array([])
    marks = sorted((e["received"], e["type"] == "utterance.started") for e in viewer.events
                   if e.get("type") in ("utterance.started", "utterance.ended"))
    speaking, state, position = 0, False, 0
    for t in times:
        while position < len(marks) and marks[position][0] <= t:
            state = marks[position][1]
            position += 1
        speaking += state
    return SessionWindow(len(times) / (end - start), float(np.mean(gaps > 1.5 / fps)) if len(gaps) else 1.0,
                         float(gaps.max() * 1000) if len(gaps) else float("nan"), speaking / max(1, len(times)),
                         size * 8 / 1e6 / (end - start),
                         None if viewer.close_code is None else
                         f"close code {viewer.close_code}" + (": it had fallen behind" if viewer.close_code == 1013 else ""))


async def concurrency_run(api: Api, server_pid: int, sessions: list[dict], stream_url, fps: float, count: int,
                          compression: str | None) -> tuple[list[SessionWindow], Cpu]:
    """N sessions speaking at once for WINDOW_S: each one's window, and the CPU used."""
    viewers = [await Viewer(stream_url(session), compression).open() for session in sessions[:count]]
    refills: list[asyncio.Task] = []
    try:
        await asyncio.sleep(0.5)
        texts = SENTENCES[:]
        RNG.shuffle(texts)
        firsts = await asyncio.gather(*(asyncio.to_thread(api.speak, session["session_id"], texts[(i * 5) % len(texts)])
                                        for i, session in enumerate(sessions[:count])))
        for viewer, (body, _, _) in zip(viewers, firsts):
            try:
                await viewer.wait_event(utterance("utterance.started", body["utterance_id"]))
            except RuntimeError:  # the server closed this stream already: its window says so
                pass
        for i, session in enumerate(sessions[:count]):
            for turn in range(QUEUED_AHEAD):
                await asyncio.to_thread(api.speak, session["session_id"], texts[(i * 5 + turn + 1) % len(texts)])
        refills = [asyncio.create_task(keep_speaking(api, session["session_id"], viewer, texts))
                   for session, viewer in zip(sessions, viewers)]
        await asyncio.sleep(0.5)
        start, cpu = time.monotonic(), CpuWindow(server_pid)
        await asyncio.sleep(WINDOW_S)
        end, used = time.monotonic(), cpu.stop()
        for refill in refills:
            if refill.done() and refill.exception():
                raise refill.exception()
        return [window_of(viewer, start, end, fps) for viewer in viewers], used
    finally:
        for refill in refills:
            refill.cancel()
        for session in sessions[:count]:  # drop what is still queued, so the next run starts silent
            await asyncio.to_thread(api.interrupt, session["session_id"])
        for viewer in viewers:
            await viewer.close()


async def idle_cpu(server_pid: int, url: str, compression: str | None, fps: float) -> tuple[Cpu, SessionWindow, bool]:
    """The CPU one silent session's stream costs over IDLE_WINDOW_S, its window, and whether the
    server accepted permessage-deflate."""
    viewer = await Viewer(url, compression).open()
    try:
        await asyncio.sleep(0.5)
        start, cpu = time.monotonic(), CpuWindow(server_pid)
        await asyncio.sleep(IDLE_WINDOW_S)
        end, used = time.monotonic(), cpu.stop()
        return used, window_of(viewer, start, end, fps), viewer.deflate
    finally:
        await viewer.close()


# --- 4: interrupt ------------------------------------------------------------------------------

def start_of_trailing_run(items: list[tuple[float, bool]]) -> float | None:
    """The time of the first item of the run of True items that lasts to the end."""
    start = None
    for received, quiet in items:
        if quiet and start is None:
            start = received
        elif not quiet:
            start = None
    return start


async def interrupt_run(api: Api, session_id: str, viewer: Viewer, mouths: Mouths, threshold: float) -> list[dict]:
    trials = []
    for _ in range(INTERRUPT_REPEATS):
        since = len(viewer.events)
        viewer.take_recording()
        viewer.record = True
        body, _, _ = await asyncio.to_thread(api.speak, session_id, LONG_TEXT)
        await viewer.wait_event(utterance("utterance.started", body["utterance_id"]), since)
        await asyncio.sleep(RNG.uniform(0.6, 1.5))
        sent, answered = await asyncio.to_thread(api.interrupt, session_id)
        ended = await viewer.wait_event(utterance("utterance.ended", body["utterance_id"]), since)
        await asyncio.sleep(0.6)
        recorded = viewer.take_recording()
        before = [m for m in recorded if m.kind == "V" and m.received < sent]
        speaking_before = sum(mouths.difference(m.payload, m.pts_us) > threshold for m in before)
        after = [m for m in recorded if m.received >= sent]
        silent = start_of_trailing_run([(m.received, not np.frombuffer(m.payload, "<i2").any())
                                        for m in after if m.kind == "A"])
        idle = start_of_trailing_run([(m.received, mouths.difference(m.payload, m.pts_us) <= threshold)
                                      for m in after if m.kind == "V"])
        trials.append({"rtt": answered - sent, "speaking_frames_before": speaking_before,
                       "reason": ended.get("reason"),
                       "audio": None if silent is None else silent - sent,
                       "video": None if idle is None else idle - sent})
        await asyncio.sleep(RNG.uniform(0.2, 0.5))
    return trials


# --- The report --------------------------------------------------------------------------------

def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(np.ceil(share * len(ordered))) - 1))]


def ms(value: float) -> str:
    return f"{value * 1000:.0f} ms"


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown CPU")
    return f"{len(os.sched_getaffinity(0))} CPUs (nproc), {model}, Python {platform.python_version()}"


async def run(server, api: Api, tutor_id: int) -> list[str]:
    from django.conf import settings
    from sessions_app.live.stage import LEAD_FRAMES, SPEAKING_JPEG_QUALITY

    report: list[str] = []
    others: dict[str, float] = {}  # phase -> cores other processes used meanwhile

    def say(line: str = "") -> None:  # a line of the report, printed at the end
        report.append(line)

    def progress(line: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)

    sessions = [open_session(api, tutor_id) for _ in range(max(CONCURRENCY))]

    def stream_url(session: dict) -> str:
        return server.url.replace("http", "ws", 1) + session["stream_url"] + f"?api_key={api.key}"

    main_session = sessions[0]["session_id"]
    viewer = await Viewer(stream_url(sessions[0])).open()
    try:
        mouths = Mouths(Path(settings.AVATAR_ROOT) / "bench", viewer.header)
        fps = mouths.fps
        say(f"avatar: {viewer.header['width']}x{viewer.header['height']}, {mouths.frame_count} frames at {fps:g} fps, "
            f"audio {viewer.header['audio_rate']} Hz; permessage-deflate on the stream: {'yes' if viewer.deflate else 'no'}")

        # Calibration: two seconds of the idle stream.
        viewer.record = True
        await asyncio.sleep(2.0)
        idle_frames = [m for m in viewer.take_recording() if m.kind == "V"]
        received_noise, reencode_noise, threshold = calibrate(mouths, idle_frames)
        if mouths.by_opening:
            say(f"the tutor's own mouth: opening measured by the face mesh on each received frame; resting "
                f"({len(idle_frames)} idle frames) max {received_noise:.3f} -> threshold {threshold:.3f} {mouths.unit}")
        else:
            say(f"mouth-box noise ({len(idle_frames)} idle frames): received vs full_imgs max {received_noise:.2f}, "
                f"re-encoded at q{SPEAKING_JPEG_QUALITY} max {reencode_noise:.2f} grey levels -> threshold {threshold:.2f}")

        progress(f"1-2. latency and lip-sync: {LATENCY_REPEATS} utterances, one at a time")
        # A first utterance, not counted: the first synthesis after start-up warms the voice model.
        warm = (await latency_run(api, main_session, viewer, mouths, threshold, ["Hello, I am your tutor today."]))[0]
        say(f"warm-up utterance (not counted): POST round trip {ms(warm.post_rtt)}, "
            f"latency {ms(warm.latency) if warm.latency is not None else 'none'}")
        cpu = CpuWindow(server.process.pid)
        trials = await latency_run(api, main_session, viewer, mouths, threshold, SENTENCES[:LATENCY_REPEATS])
        others["latency"] = cpu.stop().others
    finally:
        await viewer.close()

    seen = [t for t in trials if t.latency is not None]
    say(f"\n1. speak latency, POST sent -> first received frame with a moved mouth ({len(seen)}/{len(trials)} utterances):")
    if seen:
        latencies = [t.latency for t in seen]
        rtts = [t.post_rtt for t in seen]
        rest = [t.latency - t.post_rtt for t in seen]
        started = [t.started_after_ack for t in seen]
        say(f"   median {ms(statistics.median(latencies))}, p95 {ms(percentile(latencies, 0.95))}, "
            f"max {ms(max(latencies))}   (goal: median <= 600 ms, p95 <= 1000 ms)")
        say(f"   POST round trip (includes the synthesis): median {ms(statistics.median(rtts))}, p95 {ms(percentile(rtts, 0.95))}")
        say(f"   rest (202 -> moved mouth received):      median {ms(statistics.median(rest))}, p95 {ms(percentile(rest, 0.95))}; "
            f"of it, 202 -> utterance.started received: median {ms(statistics.median(started))}")
        say(f"   (a player shows each frame ~{ms(LEAD_FRAMES / fps)} after it arrives: the server sends that far ahead)")

    figures = lipsync_figures(trials)
    say(f"\n2. lip-sync: mouth box vs idle frame against audio RMS, per frame ({figures['frames']} speaking frames, "
        f"{len(trials)} utterances; lag > 0: mouth after sound):")
    for name in ("as streamed", f"audio delayed {LIPSYNC_SHIFT} frames", f"audio advanced {LIPSYNC_SHIFT} frames"):
        lag, corr, at_zero = figures[name]
        say(f"   {name:24s} best lag {lag:+d} frames, correlation {corr:.2f} (at lag 0: {at_zero:.2f})")
    say(f"   (goal as streamed: correlation >= 0.3 at a lag within +-1; shifting the audio {LIPSYNC_SHIFT} frames "
        f"should move the best lag by {LIPSYNC_SHIFT})")

    say(f"\n3. concurrent speaking sessions at {mouths.shape[1]}x{mouths.shape[0]}, {WINDOW_S:g} s window each; per session: "
        f"received fps, stutter (intervals > {1.5 / fps * 1000:.0f} ms); CPU in core-seconds per second")
    accepted = True
    for compression, label in (("deflate", "client offers permessage-deflate, as browsers do"),
                               (None, "client offers no compression")):
        if compression is None and not accepted:
            break  # the server declined compression: the same sweep again would measure nothing new
        idle, silent, deflate = await idle_cpu(server.process.pid, stream_url(sessions[0]), compression, fps)
        accepted = deflate
        say(f"   {label} (the server accepted it: {'yes' if deflate else 'no'}):")
        say(f"     one silent session, for comparison: {silent.fps:.1f} fps, video {silent.mbit_s:.0f} Mbit/s, "
            f"server CPU {idle.server:.2f}")
        held = 0
        for count in CONCURRENCY:
            progress(f"3. concurrency: {count} speaking session(s), {label.split(',')[0]}")
            windows, cpu = await concurrency_run(api, server.process.pid, sessions, stream_url, fps, count, compression)
            if min(w.fps for w in windows) >= MIN_FPS and held == count - 1:
                held = count
            closed = [w.closed for w in windows if w.closed]
            others[f"concurrency N={count}" + ("" if compression else " without deflate")] = cpu.others
            say(f"     N={count}: fps " + ", ".join(f"{w.fps:4.1f}" for w in windows)
                + " (stutter " + ", ".join(f"{w.stutter:.0%}" for w in windows)
                + f"; worst gap {max(w.worst_gap_ms for w in windows):.0f} ms)"
                + f"; speaking >= {min(w.speaking for w in windows):.0%} of frames"
                + f"; video {statistics.mean(w.mbit_s for w in windows):.0f} Mbit/s each"
                + (f"; {len(closed)} stream(s) closed by the server ({closed[0]})" if closed else ""))
            media = sum(w.fps for w in windows) / fps  # seconds of media delivered per second, all sessions
            say(f"          server CPU {cpu.server:.2f} = {cpu.server / max(media, 1e-9):.2f} per second of speaking "
                f"media delivered; client {cpu.client:.2f}; other processes {cpu.others:.2f}")
            if held < count and compression is None:
                break  # this sweep only looks for the limit: past it, more sessions only fail more
        say(f"     largest N with every session >= {MIN_FPS:g} fps: {held}")

    progress(f"4. interrupt: {INTERRUPT_REPEATS} trials")
    viewer = await Viewer(stream_url(sessions[0])).open()
    try:
        await asyncio.sleep(0.5)
        cpu = CpuWindow(server.process.pid)
        interrupts = await interrupt_run(api, main_session, viewer, mouths, threshold)
        others["interrupt"] = cpu.stop().others
    finally:
        await viewer.close()
    valid = [t for t in interrupts if t["speaking_frames_before"] >= 3 and t["audio"] is not None and t["video"] is not None]
    say(f"\n4. interrupt, POST sent -> ... ({len(valid)}/{len(interrupts)} trials had speaking frames before the POST; "
        f"utterance.ended reasons: {', '.join(sorted({str(t['reason']) for t in interrupts}))}):")
    if valid:
        audio, video, rtt = [t["audio"] for t in valid], [t["video"] for t in valid], [t["rtt"] for t in valid]
        say(f"   (a) first all-zero audio message received: median {ms(statistics.median(audio))}, max {ms(max(audio))}"
            "   (goal: <= 200 ms)")
        say(f"   (b) first idle-mouth video frame received: median {ms(statistics.median(video))}, max {ms(max(video))}"
            "   (goal: <= 200 ms)")
        say(f"   of which the POST /interrupt round trip:   median {ms(statistics.median(rtt))}, max {ms(max(rtt))}")
    busy = {phase: cores for phase, cores in others.items() if cores > BUSY_MACHINE_CORES}
    if busy:
        say("\nWARNING: other processes were busy during " + ", ".join(f"{phase} ({cores:.2f} cores)" for phase, cores in busy.items())
            + ": those figures understate the server; run again on a quiet machine.")
    else:
        say(f"\nother processes stayed under {BUSY_MACHINE_CORES:g} cores in every phase "
            f"(at most {max(others.values()):.2f})")
    return report


def bench_main(title: str, measure, prefix: str, extra_env: dict[str, str] | None = None,
               video: Path | None = None) -> None:
    """What a speaking-session bench does around its measures: a 10 s 720p clip (or `video`), a
    real server in a data folder of its own, the clip prepared through the API; then `await
    measure(server, api, tutor_id)` (its report lines), printed under `title`. The data folder is
    kept when it fails."""
    from testsupport.live_server import start_live_server
    from testsupport.videos import drifting, write_face_video

    began = time.monotonic()
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    # The server's own settings in this process too (its data folder, so AVATAR_ROOT is where the
    # server writes): the bench reads the prepared avatar and the stage's constants from them.
    os.environ.update({"DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "tutorplatform.settings"})
    import django

    django.setup()
    if video is None:
        print("writing a 10 s 720p clip, starting a server, preparing an avatar from the clip ...", flush=True)
        clip = data_dir / "tutor.mp4"
        write_face_video(clip, width=1280, height=720, seconds=10, motion=drifting(1280, 720))
    else:
        print(f"starting a server, preparing an avatar from {video} ...", flush=True)
        clip = video
    server = start_live_server(data_dir, extra_env=extra_env)
    try:
        api = Api(server.url, server.api_key())
        server.upload_ready_avatar(api.key, clip, "bench")
        print(f"server up and avatar prepared in {time.monotonic() - began:.0f} s (data: {data_dir})", flush=True)
        report = asyncio.run(measure(server, api, server.create_tutor(api.key, "Bench")))
    except BaseException:
        print(f"\nthe benchmark failed; the server's log is {data_dir / 'server.log'}", file=sys.stderr)
        raise
    finally:
        server.stop()
    shutil.rmtree(data_dir, ignore_errors=True)  # kept only when the run failed, for its server log
    print(f"\n=== {title} ===")
    print(f"machine: {machine()}")
    for line in report:
        print(line)
    print(f"total time: {time.monotonic() - began:.0f} s")


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Speaking sessions: latency, lip-sync, concurrency, interrupt.")
    parser.add_argument("--video", type=Path, help="the tutor's video (default: a generated 10 s 720p face, "
                        "which has no mouth to speak from: the animator draws it)")
    parser.add_argument("--talking", action="store_true",
                        help="a real talking tutor: 30 s of the talking test video at 720p (fetched when needed)")
    args = parser.parse_args()
    video = args.video
    if args.talking:
        from testsupport.talking_footage import talking_clip

        video = talking_clip(95, 30, scale=2.5, pad_to=(1280, 720), fps=25.0)
    bench_main("speak benchmark report", run, "speak-bench-", video=video)


if __name__ == "__main__":
    main()
