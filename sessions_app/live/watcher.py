"""Watching a session live, whatever carries it: one SessionWatcher per viewer, and what every
watcher of the session shares (its viewer places, the session's look, joining its stage).

A SessionWatcher runs the session for one viewer: it looks at the session (look_at), waits while
its avatar is prepared (a still of the tutor and "waiting" events), streams from the session's
stage once the avatar is ready (the header event, then the stage's ticks and events), moves to the
tutor's new avatar when it switches (a new header, a new clock), and ends: "ended" when the
session ends, or it closes the viewer when its key is revoked, when it is too slow, or when the
stage fails. It marks the session active (at once when streaming starts, then every
TOUCH_EVERY_S), re-reads it every CHECK_EVERY_S (an "ended" message can be missed), follows the
session's channel-layer group (session.ended, session.avatar_changed, session.speak,
session.interrupt) and holds the viewer's place (SESSION_MAX_VIEWERS) until it ends.

How a transport plugs in: subclass LiveViewer (what the watcher calls: `frame`, `event`,
`still`, `new_clock`, `close`, and the attributes `wants_jpeg`, `wants_i420`, `still_fps`,
`too_slow`), make a SessionWatcher over it, then
- `await watcher.open()` where the transport must refuse before it accepts (a WebSocket's close
  codes): None, or why not ("revoked", "not_found", "too_many_viewers"); else `start()` alone,
  whose first look ends a session that is gone with an "ended" event and `close("ended")`;
- `watcher.start()` once the viewer can receive; `watcher.hear(pts_us, samples, rate)` with the
  student's microphone audio, if the transport carries any;
- `await watcher.stop()` when the viewer went away by itself (idempotent; `close` is then not
  called).
The parameters say what the transport's viewer is: `allowed` (asked at every look: False closes
it with "revoked"; None: always allowed, e.g. a server-side publisher with no API key),
`takes_place` (whether it counts against SESSION_MAX_VIEWERS; a publisher that feeds a media
server does not) and `place_taken` (its place was taken already, by the request that made it:
the watcher frees it when it ends). All of it runs on one event loop, the transport's.

The WebSocket stream (live/websocket.py) and the WebRTC peer (live/webrtc/peers.py) are two such
transports. One that publishes the session to a media server from a worker process of its own
(no socket, no key, no place; I420 and audio to an RTP encoder, events to a data channel, the
still as frames while the avatar is prepared) would be, in outline:

    class Publisher(LiveViewer):
        wants_i420 = True
        still_fps = 5

        def frame(self, first_sample, pts, jpeg, i420, audio): ...  # to the encoder, queued
        def event(self, event): ...  # json.dumps(event) to the data channel
        def new_clock(self): ...  # keep the RTP timeline going forward (see webrtc/media.py)
        async def close(self, reason): ...  # stop publishing

    watcher = SessionWatcher(session_id, Publisher(), takes_place=False, name="publisher")
    watcher.start()  # on the worker's event loop; `await watcher.stop()` when it stops
"""

from __future__ import annotations

import abc
import asyncio
import logging
import threading
import uuid
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np
from channels.layers import get_channel_layer
from django.conf import settings

from avatars import storage
from avatars.models import ACTIVE_STATES, Avatar, AvatarState
from common.db_threads import in_worker_thread
from sessions_app import services
from sessions_app.errors import KeyRevoked
from sessions_app.live.frames import AvatarFrames, avatar_material, frames_version
from sessions_app.live import placement
from sessions_app.live.relay import RemoteStage, remote_stages, stage_group
from sessions_app.live.stage import Stage, i420_of, stages
from sessions_app.models import SessionState
from sessions_app.speech.clock import frame_samples, pts_us
from sessions_app.speech.renderer import load_renderer

logger = logging.getLogger(__name__)

# While watching: how often the session is marked active, and how often its state is re-read
# (in case the "ended" message was missed, e.g. sent from another process on the in-memory layer).
TOUCH_EVERY_S = 30.0
CHECK_EVERY_S = 5.0
WAIT_LOOK_EVERY_S = 1.0  # while waiting for the avatar: how often its state is read again
WAITING_SIZE = (640, 360)  # the black picture's size, when the tutor has no ready avatar to show

# Why a watcher closes its viewer (LiveViewer.close's reason).
ENDED = "ended"  # the session ended (its "ended" event went first)
REVOKED = "revoked"  # the API key it was let in with was revoked
TOO_SLOW = "too_slow"  # it could not take the media as fast as it plays
FAILED = "failed"  # the stage or the watcher failed
# Why `open()` refuses a viewer.
NOT_FOUND = "not_found"  # no such session, or it has ended
TOO_MANY_VIEWERS = "too_many_viewers"  # SESSION_MAX_VIEWERS watch it already


class Touches:
    """When a viewer marks its session active (which keeps it from ending as idle): every
    TOUCH_EVERY_S; `due(now)` says yes once each time."""

    def __init__(self, now: float, at_once: bool = False) -> None:
        self._next = now if at_once else now + TOUCH_EVERY_S

    def due(self, now: float) -> bool:
        if now < self._next:
            return False
        self._next = now + TOUCH_EVERY_S
        return True


class Viewers:
    """Viewers per session in this process, WebSocket streams and WebRTC peers together, at most
    SESSION_MAX_VIEWERS each: every viewer costs the server a paced stream of media."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def join(self, session_id: str) -> bool:
        with self._lock:
            count = self._counts.get(session_id, 0)
            if count >= settings.SESSION_MAX_VIEWERS:
                return False
            self._counts[session_id] = count + 1
            return True

    def leave(self, session_id: str) -> None:
        with self._lock:
            left = self._counts.get(session_id, 1) - 1
            if left > 0:
                self._counts[session_id] = left
            else:
                self._counts.pop(session_id, None)

    def count(self, session_id: str) -> int:
        with self._lock:
            return self._counts.get(session_id, 0)


viewers = Viewers()


def canonical_id(session_id: str) -> str:
    """A session id as the database writes it (lower case, with dashes), so that every viewer of a
    session, however its URL spelled the id, counts against one limit and joins one stage."""
    try:
        return str(uuid.UUID(session_id))
    except ValueError:
        return session_id  # not a session: refused as unknown


@dataclass(frozen=True)
class Look:
    ready: Avatar | None = None
    waiting: dict | None = None
    still_of: str | None = None
    ended_reason: str | None = None
    closed: bool = False


def look_at(session_id: str, touch: bool, allowed: Callable[[], bool]) -> Look | None:
    """The session as it stands (blocking: call it from a database thread): None when unknown; its
    end; its avatar when ready; else what it waits for. Ends the session when its avatar will
    never be ready. Raises KeyRevoked when `allowed()` no longer holds."""
    if not allowed():
        raise KeyRevoked()
    session = services.session_or_none(session_id)
    if session is None:
        return None
    if session.state != SessionState.ACTIVE:
        return Look(ended_reason=session.end_reason or "ended")
    if touch:
        services.touch(session)
        services.end_idle_sessions()
    avatar = Avatar.objects.filter(avatar_id=session.avatar_id).first()
    if avatar is None or avatar.state not in (AvatarState.READY, *ACTIVE_STATES):
        services.end_session(session.session_id, reason="avatar_failed" if avatar else "avatar_deleted")
        return Look(ended_reason="avatar_failed" if avatar else "avatar_deleted")
    if avatar.state == AvatarState.READY:
        return Look(ready=avatar)
    return Look(waiting={"avatar_id": avatar.avatar_id, "avatar_state": avatar.state, "stage": avatar.stage,
                         "progress": round(avatar.progress, 1)},
                still_of=_still_of(session.tutor_id, avatar.avatar_id))


def _still_of(tutor_id: int, waiting_for: str) -> str | None:
    """A ready avatar of the tutor whose preview can stand in while the session waits, if any."""
    ready = Avatar.objects.filter(tutor_id=tutor_id, state=AvatarState.READY).exclude(avatar_id=waiting_for)
    return ready.order_by("-ready_at").values_list("avatar_id", flat=True).first()


def renderer_description(renderer) -> dict:
    """What draws the session's mouth, for its header: the renderer's name, whether it is the
    fallback and why, and whether the mouth rests during silence."""
    return dict(getattr(renderer, "description", None) or {"name": type(renderer).__name__, "fallback": False})


def make_renderer(frames: AvatarFrames):
    """The SESSION_RENDERER for the avatar (reads its prepared material: blocking)."""
    return load_renderer(settings.SESSION_RENDERER, avatar_material(frames))


async def join_stage(session_id: str, frames: AvatarFrames, viewer, *, here: bool = False) -> Stage:
    """The session's stage for `frames`, with `viewer` added: the running one, or a new one whose
    renderer is made here (only the viewer that starts a stage reads the avatar's material). When
    stages run in stage workers (and this is not one: `here`), the session's stage on its worker,
    relayed to this process (sessions_app/live/relay.py)."""
    if placement.scaled_out() and not here:
        return await remote_stages.join(session_id, frames, viewer)
    renderer = None
    if stages.running(session_id, frames) is None:
        renderer = await in_worker_thread(make_renderer)(frames)
    # No await between the look above (when a stage ran) and join: it is still running.
    return stages.join(session_id, frames, renderer, settings.SESSION_AUDIO_RATE, viewer)


def leave_stage(stage, viewer) -> None:
    """`viewer` leaves the stage join_stage gave it."""
    if isinstance(stage, RemoteStage):
        remote_stages.leave(stage, viewer)
    else:
        stages.leave(stage, viewer)


class LiveViewer(abc.ABC):
    """What a transport gives its SessionWatcher: where the session's media and events go. Every
    call comes on the watcher's event loop and must not block (queue what cannot go at once)."""

    wants_jpeg = False  # frame() gets the picture as JPEG bytes
    wants_i420 = False  # frame() gets the picture as a YUV 4:2:0 (I420) array, as video encoders take it
    # While the avatar is prepared: 0, the still is given once to still(); above 0, it also comes
    # to frame() this many times a second, with silence (media that must keep flowing: RTP tracks).
    still_fps = 0
    # Set when the viewer has fallen too far behind the media (its backlog is full): the watcher
    # then closes it with TOO_SLOW as soon as it passes it the next frame or event.
    too_slow = False

    @abc.abstractmethod
    def frame(self, first_sample: int, pts: int, jpeg: bytes | None, i420: np.ndarray | None,
              audio: np.ndarray) -> None:
        """One tick of the session's clock: the picture at `pts` (µs) in the forms the viewer wants
        and the 16-bit mono audio samples it covers (SESSION_AUDIO_RATE), the first of them sample
        `first_sample` of the clock."""

    @abc.abstractmethod
    def event(self, event: dict) -> None:
        """A JSON event for the viewer (docs/api.md: session, waiting, utterance.*, student.*,
        transcript, ended), its "session_id" included."""

    def still(self, jpeg: bytes | None) -> None:
        """The avatar is being prepared: the preview of another ready avatar of the tutor (JPEG),
        or None when it has none. Called as each wait starts, before its "waiting" event."""

    def new_clock(self) -> None:
        """A new clock starts (a wait, or a stage after the avatar switched): the times of the
        frames that follow start again at 0."""

    @abc.abstractmethod
    async def close(self, reason: str) -> None:
        """The watcher is done with the viewer (ENDED, REVOKED, TOO_SLOW, FAILED): close it, after
        what was given to it, unless TOO_SLOW (it is not reading: close without waiting on it)."""


class SessionWatcher:
    """One viewer's watch of a session: look → wait → stream → switch → end (module docstring).
    It is also the viewer its stage sees (wants_jpeg, wants_i420, frame, put)."""

    def __init__(self, session_id: str, viewer: LiveViewer, *, allowed: Callable[[], bool] | None = None,
                 takes_place: bool = True, place_taken: bool = False, marks_active: bool = True,
                 runs_stage: bool = False, also_hears: Callable[[dict], None] | None = None,
                 name: str = "viewer") -> None:
        self.session_id = canonical_id(session_id)
        self.viewer = viewer
        self.allowed = allowed or _always
        self.takes_place = takes_place
        self.placed = place_taken  # holds a place in `viewers`, to free when it ends
        # Whether watching counts as the session's activity (a publisher in a stage worker watches
        # every session it holds: its viewers' activity is counted where they are).
        self.marks_active = marks_active
        # Runs the session's stage in this process even when stages run in stage workers (it is the
        # stage worker's own watcher).
        self.runs_stage = runs_stage
        # Messages of the session's stage group (sessions_app/live/relay.py) go to this, when given:
        # the watcher then joins that group too (a stage worker's watcher).
        self.also_hears = also_hears
        self.name = name  # for the log: "stream", "WebRTC viewer", ...
        self.stage: Stage | None = None  # the stage streaming to it now: the student's audio goes to it
        self.stage_stopped: str | None = None  # "gone" or "failed": the stage's clock stopped
        self.woken = asyncio.Event()  # look again now (the avatar changed, the stage stopped)
        self.done = False
        self.task: asyncio.Task | None = None
        self.listener: asyncio.Task | None = None
        self.finisher: asyncio.Task | None = None
        self.layer_channel: str | None = None
        self._first_look: Look | None = None

    # --- for the transport ---------------------------------------------------------------------
    async def open(self) -> str | None:
        """Let the viewer in (marks the session active): None, or why not: REVOKED, NOT_FOUND,
        TOO_MANY_VIEWERS (then nothing is held)."""
        try:
            look = await self._look(touch=self.marks_active)
        except KeyRevoked:
            return REVOKED
        if look is None or look.ended_reason is not None:
            return NOT_FOUND
        if self.takes_place and not self.placed:
            if not viewers.join(self.session_id):
                return TOO_MANY_VIEWERS
            self.placed = True
        self._first_look = look
        return None

    def start(self) -> None:
        """Run the watch (a task on the running loop) until the session ends or the viewer goes."""
        if self.task is None and not self.done:
            self.task = asyncio.create_task(self._run())

    def hear(self, sender_pts_us: int, samples: np.ndarray, rate: int) -> None:
        """The student's microphone (mono int16 at `rate`), timed on the sender's clock: to the
        stage streaming now; before the avatar streams there is nobody to talk to."""
        stage = self.stage
        if stage is None or not settings.SESSION_LISTEN:
            return
        try:
            stage.hear(sender_pts_us, samples, rate)
        except Exception:  # hearing failed: the stream goes on
            logger.exception("%s of session %s: the student's audio could not be heard", self.name, self.session_id)

    async def stop(self) -> None:
        """The viewer went: stop watching, leave the stage and the group, free the place (idempotent)."""
        self.done = True
        await self._release()

    # --- for the stage (its Viewer) --------------------------------------------------------------
    @property
    def wants_jpeg(self) -> bool:
        return self.viewer.wants_jpeg

    @property
    def wants_i420(self) -> bool:
        return self.viewer.wants_i420

    def frame(self, first_sample: int, pts: int, jpeg: bytes | None, i420: np.ndarray | None,
              audio: np.ndarray) -> None:
        self.viewer.frame(first_sample, pts, jpeg, i420, audio)
        self._keep_pace()

    def put(self, item: tuple) -> None:
        kind, body = item
        if kind == "event":
            self._event(body)
        else:  # "gone" or "failed": the stage's clock stopped
            self.stage_stopped = kind
            self.woken.set()

    # --- the watch -----------------------------------------------------------------------------
    def _event(self, event: dict) -> None:
        self.viewer.event({"type": event["type"], "session_id": self.session_id, **event})
        self._keep_pace()

    def _keep_pace(self) -> None:
        if self.viewer.too_slow and not self.done and self.finisher is None:
            self.finisher = asyncio.get_running_loop().create_task(self._fell_behind())

    async def _fell_behind(self) -> None:
        logger.info("%s of session %s closed: the viewer fell behind", self.name, self.session_id)
        await self._finish(TOO_SLOW)

    async def _look(self, touch: bool) -> Look | None:
        return await in_worker_thread(look_at)(self.session_id, touch, self.allowed)

    async def _run(self) -> None:
        try:
            await self._listen()
            look = self._first_look or await self._look(touch=self.marks_active)
            while not self.done:
                if look is None or look.ended_reason is not None:
                    await self._finish(ENDED, look.ended_reason if look else "ended")
                    return
                if look.ready is None:
                    look = await self._wait(look)
                else:
                    look = await self._stream(await in_worker_thread(AvatarFrames.of)(look.ready))
        except asyncio.CancelledError:
            raise
        except KeyRevoked:
            logger.info("%s of session %s closed: its API key was revoked", self.name, self.session_id)
            await self._finish(REVOKED)
        except Exception:
            logger.exception("%s of session %s failed", self.name, self.session_id)
            await self._finish(FAILED)

    async def _listen(self) -> None:
        """Join the session's group: ended, avatar changes, speak and interrupt reach this watcher."""
        layer = get_channel_layer()
        if layer is None:
            return
        self.layer_channel = await layer.new_channel()
        await layer.group_add(services.group_name(self.session_id), self.layer_channel)
        if self.also_hears is not None:
            await layer.group_add(stage_group(self.session_id), self.layer_channel)
        self.listener = asyncio.create_task(self._receive(layer, self.layer_channel))

    async def _receive(self, layer, channel: str) -> None:
        while True:
            message = await layer.receive(channel)
            kind = message.get("type")
            if kind == "session.ended":
                await self._finish(ENDED, message.get("reason", "ended"))
                return
            if kind == "session.avatar_changed":
                self.woken.set()  # the avatar became ready, or the tutor switched: look now
            elif kind == "session.speak":
                stages.speak(self.session_id)
            elif kind == "session.interrupt":
                stages.interrupt(self.session_id, int(message["up_to"]))
            elif self.also_hears is not None and kind.startswith("stage."):
                self.also_hears(message)

    async def _sleep_unless_woken(self, seconds: float) -> None:
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation
            # that lands as the wait ends, and a watch then ran on after its viewer had gone
            # (seen: a test's event loop never finished closing).
            async with asyncio.timeout(seconds):
                await self.woken.wait()
        except TimeoutError:
            pass

    async def _wait(self, look: Look) -> Look:
        """While the avatar is being prepared: the tutor's still, and a "waiting" event on every
        change, until it is ready, fails, or the session ends. A viewer with still_fps gets the
        still (or black) as frames with silence, on a clock of the wait's own."""
        self.viewer.new_clock()
        still = await in_worker_thread(_read_still)(look.still_of) if look.still_of else None
        self.viewer.still(still)
        fps = self.viewer.still_fps
        if fps > 0:
            jpeg, i420 = await in_worker_thread(_still_picture)(still, self.viewer.wants_jpeg, self.viewer.wants_i420)
        rate = settings.SESSION_AUDIO_RATE
        loop = asyncio.get_running_loop()
        start = loop.time()
        next_look = start + WAIT_LOOK_EVERY_S
        touches = Touches(start)
        shown = None
        index = 0
        while look.ready is None and look.ended_reason is None:
            if look.waiting != shown:
                shown = look.waiting
                self._event({"type": "waiting", **shown})
            if fps > 0:
                first, end = frame_samples(index, rate, fps)
                self.frame(first, pts_us(first, rate), jpeg, i420, np.zeros(end - first, np.int16))
                index += 1
                delay = start + index / fps - loop.time()
            else:
                delay = next_look - loop.time()
            await self._sleep_unless_woken(max(0.0, delay))
            if self.woken.is_set() or loop.time() >= next_look:
                self.woken.clear()
                next_look = loop.time() + WAIT_LOOK_EVERY_S
                look = await self._look(touch=self.marks_active and touches.due(loop.time())) or Look(
                    ended_reason="ended")
        return look

    async def _stream(self, frames: AvatarFrames) -> Look:
        """The session's stage feeds the viewer until the session ends or shows another avatar;
        what was then seen."""
        self.viewer.new_clock()
        self.stage_stopped = None
        # Joined first, so the header can say what draws the mouth; no await between the join and
        # the header, so the header comes before the stage's first tick.
        stage = self.stage = await join_stage(self.session_id, frames, self, here=self.runs_stage)
        self._event({"type": "session", "avatar_id": frames.avatar_id, "fps": frames.fps, "width": frames.width,
                     "height": frames.height, "frame_count": frames.frame_count,
                     "audio_rate": settings.SESSION_AUDIO_RATE, "renderer": renderer_description(stage.renderer)})
        loop = asyncio.get_running_loop()
        touches = Touches(loop.time(), at_once=True)  # a viewer that starts streaming is activity
        next_check = loop.time()
        try:
            while True:
                await self._sleep_unless_woken(max(0.0, next_check - loop.time()))
                self.woken.clear()
                now = loop.time()
                next_check = now + CHECK_EVERY_S
                look = await self._look(touch=self.marks_active and touches.due(now))
                if look is None or look.ready is None or frames_version(look.ready) != frames.version:
                    return look or Look(ended_reason="ended")
                if self.stage_stopped == "failed":
                    raise RuntimeError("the session's stage failed")
                if self.stage_stopped == "gone":
                    raise RuntimeError("the avatar's frames cannot be read")
        finally:
            self.stage = None
            leave_stage(stage, self)

    async def _finish(self, reason: str, ended_reason: str | None = None) -> None:
        """Done: tell the viewer the session ended (ENDED), let go of everything, close it."""
        if self.done:
            return
        self.done = True
        if reason == ENDED:
            self._event({"type": "ended", "reason": ended_reason or "ended"})
        await self._release()
        await self.viewer.close(reason)

    async def _release(self) -> None:
        if self.placed:  # first: a new viewer may take the place at once
            self.placed = False
            viewers.leave(self.session_id)
        current = asyncio.current_task()
        tasks = [task for task in (self.task, self.listener) if task is not None and task is not current]
        for task in tasks:
            task.cancel()
        # Let them unwind (the stage is left as the stream's loop unwinds) before going on: a
        # channel layer's receive still pending on this loop would hold the layer (channels_redis
        # lets one event loop receive at a time).
        await asyncio.gather(*tasks, return_exceptions=True)
        channel, self.layer_channel = self.layer_channel, None
        if channel is not None:
            try:
                await get_channel_layer().group_discard(services.group_name(self.session_id), channel)
                if self.also_hears is not None:
                    await get_channel_layer().group_discard(stage_group(self.session_id), channel)
            except Exception:  # a broken layer must not keep the viewer open
                logger.exception("could not leave the group of session %s", self.session_id)


def _always() -> bool:
    return True


def _read_still(avatar_id: str) -> bytes | None:
    try:
        return storage.read_prepared(avatar_id, "preview.jpg")
    except OSError:  # deleted meanwhile: no still
        return None


def _still_picture(jpeg: bytes | None, want_jpeg: bool, want_i420: bool) -> tuple[bytes | None, np.ndarray | None]:
    """The still as the viewer wants its frames: the tutor's preview, or a black picture."""
    picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR) if jpeg else None
    if picture is None:
        width, height = WAITING_SIZE
        picture = np.zeros((height, width, 3), np.uint8)
        jpeg = cv2.imencode(".jpg", picture)[1].tobytes() if want_jpeg else None
    return (jpeg if want_jpeg else None), (i420_of(picture) if want_i420 else None)
