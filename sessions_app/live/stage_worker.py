"""A stage-worker process (`manage.py stage_worker`): the stages of the sessions placed on it, each
encoded once and sent as RTP to the session's Janus Streaming mountpoint.

Every STAGE_WORKER_HEARTBEAT_S the worker writes its heartbeat, takes its share of the sessions
nobody runs (new ones, a dead worker's, a stopping worker's: sessions_app/live/placement.py), and
starts or stops a SessionOnWorker for each session it holds. A SessionOnWorker:

- ends what a dead stage left playing (`interrupted`: the utterances queued behind it play here);
- makes the session's mountpoint if Janus has none (after a Janus restart too: checked every
  MOUNTPOINT_CHECK_S; the ports it got go in the placement);
- runs the session's watcher with a JanusPublisher as its viewer: the stage, its renderer, its
  utterances, the avatar switches and the end, as in a web process; commands reach it through
  the session's channel-layer group (speak, interrupt, ended, avatar changed);
- keeps its WebRTC viewers' Janus sessions alive (a long poll each, which also hears their
  hang-ups) and marks the session active while it has viewers;
- at the session's end removes the mountpoint, its viewers and its placement.

SIGTERM: the worker stops taking sessions, lets each stage finish the utterance it is saying
(at most STAGE_WORKER_HANDOVER_S; nothing new is started), then hands the sessions over (another
worker takes them within one heartbeat) and exits. `kill -9`: its heartbeat ages, and after
STAGE_WORKER_DEAD_AFTER_S the other workers take its sessions.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time

import httpx
from django.conf import settings

from common.db_threads import in_worker_thread
from sessions_app import services, speaking
from sessions_app.errors import JanusError, JanusUnavailable
from sessions_app.live import media_viewers, placement
from sessions_app.live.publisher import JanusPublisher
from sessions_app.live.relay import StreamRelay, hear_message
from sessions_app.live.watcher import ENDED, SessionWatcher
from sessions_app.models import MediaViewer

logger = logging.getLogger(__name__)

MOUNTPOINT_CHECK_S = 1.0  # how often a session's mountpoint is checked (a restarted Janus has none)
VIEWER_SYNC_S = 1.0  # how often the session's viewer rows are read (new answers, leaves)
TOUCH_EVERY_S = 30.0  # a session with viewers is marked active this often (it does not end as idle)
IDLE_SWEEP_S = 10.0  # how often the worker ends idle sessions (no web request needed for it)
RETRY_AFTER_S = 2.0  # a session whose stage failed here starts again this long after
HEADER_EVERY_S = 2.5  # the stream's header is sent again this often (publisher.py says why)


class SessionOnWorker:
    """One session held by this worker: its mountpoint, its stage through the watcher, its viewers."""

    def __init__(self, worker_pk: int, session_id: str, mountpoint_id: int, known_ports: dict | None = None) -> None:
        self.worker_pk = worker_pk
        self.session_id = session_id
        self.mountpoint_id = mountpoint_id
        self.known_ports = known_ports  # the ports its mountpoint was made with, when it was
        self.task: asyncio.Task | None = None
        self.publisher: JanusPublisher | None = None
        self.draining = False
        self.watcher: SessionWatcher | None = None
        self.relay: StreamRelay | None = None
        self.header: dict | None = None
        self.ports: dict | None = None
        self._polls: dict[str, asyncio.Task] = {}

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"session-{self.session_id}")

    @property
    def stage(self):
        """Its stage while the avatar streams (None while it waits, or between avatars)."""
        return self.watcher.stage if self.watcher is not None else None

    async def _run(self) -> None:
        tasks: list[asyncio.Task] = []
        ended = False
        try:
            # Whatever a dead stage of this session left playing cannot be resumed: it ends
            # interrupted, and the utterances queued behind it play here.
            await in_worker_thread(speaking.end_orphaned)(self.session_id)
            self.ports = await asyncio.to_thread(self._ensure_mountpoint, False)
            await in_worker_thread(placement.set_ports)(self.worker_pk, self.session_id, self.ports)
            self.publisher = JanusPublisher(self.session_id, settings.JANUS_RTP_HOST, self.ports,
                                            settings.SESSION_AUDIO_RATE, on_header=self._header_sent)
            # Its watcher runs the stage here, counts no viewer place and no activity (its viewers'
            # are counted where they are), and hears the stage group (the relay, the microphone).
            self.watcher = SessionWatcher(self.session_id, self.publisher, takes_place=False, marks_active=False,
                                          runs_stage=True, also_hears=self._stage_message, name="publisher")
            tasks = [asyncio.create_task(self._watch_mountpoint()), asyncio.create_task(self._keep_viewers()),
                     asyncio.create_task(self._tend())]
            self.watcher.start()
            await self.watcher.task
            ended = self.publisher.closed == ENDED
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("session %s: its stage failed on this worker; trying again in %s s", self.session_id,
                             RETRY_AFTER_S)
            # The worker starts it again at its next heartbeat once this ends: not at once, so that
            # a lasting fault (Janus down as the stage starts) is not retried twice a second.
            await asyncio.sleep(RETRY_AFTER_S)
        finally:
            if self.watcher is not None:
                await self.watcher.stop()
            if self.relay is not None:
                self.relay.close()
            for task in [*tasks, *self._polls.values()]:
                task.cancel()
            await asyncio.gather(*tasks, *self._polls.values(), return_exceptions=True)
            if self.publisher is not None:
                self.publisher.stop()
            if ended:
                await asyncio.to_thread(self._tidy_up)

    # --- the stream's header, and the relay to web processes' stream viewers ----------------------
    def _header_sent(self, header: dict) -> None:
        """A stage started streaming (or the avatar switched): its header goes in the placement
        (new viewers' offers carry it), and the relay, if wanted, moves to the new stage."""
        self.header = header
        asyncio.get_running_loop().create_task(
            in_worker_thread(placement.set_header)(self.worker_pk, self.session_id, header))
        self._attach_relay()

    def _stage_message(self, message: dict) -> None:
        kind = message.get("type")
        if kind == "stage.watch":  # a web process has stream viewers of this session
            if self.relay is None:
                self.relay = StreamRelay(self.session_id)
            self.relay.watched(bool(message.get("media", True)))
            self._attach_relay()
        elif kind == "stage.hear" and self.watcher is not None:
            self.watcher.hear(*hear_message(message))

    def _attach_relay(self) -> None:
        stage = self.stage
        if self.relay is not None and self.relay.wanted and stage is not None and self.relay not in stage.viewers:
            stage.add(self.relay)

    async def _tend(self) -> None:
        """Every HEADER_EVERY_S: the header again; the relay dropped once no web process wants it;
        the stage held (it takes no new utterance) while the worker hands its sessions over."""
        while True:
            await asyncio.sleep(HEADER_EVERY_S)
            if self.header is not None and self.stage is not None:
                self.publisher.event(self.header)
            stage = self.stage
            if stage is not None:
                stage.holding = self.draining
                if self.relay is not None and not self.relay.wanted and self.relay in stage.viewers:
                    stage.remove(self.relay)

    def _ensure_mountpoint(self, check_only: bool) -> dict | None:
        """The mountpoint's ports: made now when Janus has none (None when `check_only` and it exists)."""
        client = media_viewers.janus_client()
        try:
            if client.mountpoint_exists(self.mountpoint_id):
                if check_only:
                    return None
                # Made by this session's last worker: its ports are in the placement (made again
                # when they are not known).
                if self.known_ports:
                    return self.known_ports
                client.destroy_mountpoint(self.mountpoint_id)
            return client.create_mountpoint(self.mountpoint_id, f"session {self.session_id}",
                                            video=True, audio=True, data=True)
        finally:
            client.close()

    async def _watch_mountpoint(self) -> None:
        """Janus restarted (its mountpoints are gone): make this one again; viewers reconnect."""
        while True:
            await asyncio.sleep(MOUNTPOINT_CHECK_S)
            try:
                ports = await asyncio.to_thread(self._ensure_mountpoint, True)
            except (JanusError, JanusUnavailable) as exc:
                logger.warning("session %s: Janus not reachable (%s); trying again", self.session_id, exc)
                continue
            if ports is not None:
                logger.info("session %s: mountpoint %s made again (Janus restarted)", self.session_id, self.mountpoint_id)
                self.ports = ports
                await in_worker_thread(placement.set_ports)(self.worker_pk, self.session_id, ports)
                self.publisher.retarget(settings.JANUS_RTP_HOST, ports)

    async def _keep_viewers(self) -> None:
        """Long-poll each answered viewer's Janus session (which keeps it alive and hears it hang
        up); drop viewers that never answered; mark the session active while it has viewers."""
        next_touch = time.monotonic()
        while True:
            rows = await in_worker_thread(_viewer_rows)(self.session_id)
            known = {str(row.pk): row for row in rows}
            for viewer_id, task in list(self._polls.items()):
                if viewer_id not in known or task.done():
                    task.cancel()
                    del self._polls[viewer_id]
            for viewer_id, row in known.items():
                if viewer_id not in self._polls and row.answered_at is not None:
                    self._polls[viewer_id] = asyncio.create_task(self._poll(row))
                elif row.answered_at is None and (time.time() - row.created_at.timestamp()
                                                  > settings.SESSION_WEBRTC_CONNECT_TIMEOUT_S):
                    await in_worker_thread(media_viewers.remove_viewer)(row)
            if known and time.monotonic() >= next_touch:
                next_touch = time.monotonic() + TOUCH_EVERY_S
                await in_worker_thread(_touch)(self.session_id)
            await asyncio.sleep(VIEWER_SYNC_S)

    async def _poll(self, row: MediaViewer) -> None:
        url = f"{settings.JANUS_URL.rstrip('/')}/{row.janus_session}?maxev=10"
        async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=40.0)) as client:
            while True:
                try:
                    answer = (await client.get(url)).json()
                except (httpx.HTTPError, ValueError):
                    await asyncio.sleep(1.0)  # Janus down or restarting: its answer decides
                    continue
                events = answer if isinstance(answer, list) else [answer]
                if any(e.get("janus") in ("hangup", "detached") or
                       (e.get("janus") == "error" and (e.get("error") or {}).get("code") == 458) for e in events):
                    logger.info("session %s: viewer %s gone (%s)", self.session_id, row.pk,
                                ", ".join(str(e.get("janus")) for e in events))
                    await in_worker_thread(media_viewers.remove_viewer)(row)
                    return

    def _tidy_up(self) -> None:
        """The session ended: its viewers, mountpoint and placement go."""
        for row in MediaViewer.objects.filter(session_id=self.session_id):
            media_viewers.remove_viewer(row)
        _destroy_mountpoints([self.mountpoint_id])
        placement.remove(self.worker_pk, self.session_id)


def _viewer_rows(session_id: str) -> list[MediaViewer]:
    return list(MediaViewer.objects.filter(session_id=session_id))


def _touch(session_id: str) -> None:
    session = services.session_or_none(session_id)
    if session is not None:
        services.touch(session)


class StageWorkerRuntime:
    def __init__(self, name: str, max_sessions: int) -> None:
        self.name = name
        self.max_sessions = max_sessions
        self.sessions: dict[str, SessionOnWorker] = {}
        self.stopping = asyncio.Event()
        self.worker_pk: int | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stopping.set)
        worker = await in_worker_thread(placement.register)(self.name, self.max_sessions)
        self.worker_pk = worker.pk
        logger.info("stage worker %s (pk %s) started", self.name, worker.pk)
        next_sweep = time.monotonic()
        try:
            while not self.stopping.is_set():
                if not await in_worker_thread(placement.beat)(worker.pk):
                    logger.warning("stage worker %s: its row was deleted; stopping", self.name)
                    break
                taken = await in_worker_thread(placement.take)(worker.pk)
                if taken:
                    logger.info("stage worker %s took %s", self.name, ", ".join(taken))
                await self._follow(await in_worker_thread(placement.held)(worker.pk))
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + IDLE_SWEEP_S
                    await in_worker_thread(services.end_idle_sessions)()
                    await self._tidy_orphans()
                try:
                    async with asyncio.timeout(settings.STAGE_WORKER_HEARTBEAT_S):
                        await self.stopping.wait()
                except TimeoutError:
                    pass
            await self._hand_over()
        finally:
            for held in self.sessions.values():
                if held.task is not None:
                    held.task.cancel()
            await asyncio.gather(*(h.task for h in self.sessions.values() if h.task), return_exceptions=True)
            await in_worker_thread(placement.leave)(worker.pk)
            logger.info("stage worker %s stopped", self.name)

    async def _tidy_orphans(self) -> None:
        """Sessions that ended while their worker was dead: their mountpoints and viewers go."""
        mountpoints = await in_worker_thread(placement.take_ended_orphans)(self.worker_pk)
        if mountpoints:
            await asyncio.to_thread(_destroy_mountpoints, mountpoints)
            logger.info("stage worker %s removed %d mountpoint(s) of sessions that ended meanwhile",
                        self.name, len(mountpoints))

    async def _follow(self, held: dict) -> None:
        for session_id, where in held.items():
            running = self.sessions.get(session_id)
            if running is None or (running.task is not None and running.task.done()):
                ports = ({"video": where.video_port, "video_rtcp": where.video_rtcp_port, "audio": where.audio_port,
                          "data": where.data_port} if where.video_port else None)
                self.sessions[session_id] = SessionOnWorker(self.worker_pk, session_id, where.mountpoint_id, ports)
                self.sessions[session_id].start()
        for session_id in list(self.sessions):
            if session_id not in held:  # moved away (this worker was taken for dead), or ended and tidied
                gone = self.sessions.pop(session_id)
                if gone.task is not None and not gone.task.done():
                    logger.warning("session %s: no longer placed on %s; its stage stops here", session_id, self.name)
                    gone.task.cancel()

    async def _hand_over(self) -> None:
        """Stop cleanly: take nothing new, let each stage finish what it says, then hand over."""
        await in_worker_thread(placement.stop_accepting)(self.worker_pk)
        for held in self.sessions.values():
            held.draining = True
            if held.stage is not None:
                held.stage.holding = True
            logger.info("stage worker %s: session %s holds (stage %s, playing %s)", self.name, held.session_id,
                        held.stage is not None, held.stage is not None and held.stage.playing is not None)
        deadline = time.monotonic() + settings.STAGE_WORKER_HANDOVER_S
        next_beat = 0.0
        while time.monotonic() < deadline and any(_speaking(held) for held in self.sessions.values()):
            if time.monotonic() >= next_beat:  # still alive: nobody takes its sessions before it lets go
                next_beat = time.monotonic() + settings.STAGE_WORKER_HEARTBEAT_S
                await in_worker_thread(placement.beat)(self.worker_pk)
            await asyncio.sleep(0.1)
        for session_id, held in self.sessions.items():
            if held.task is not None:
                held.task.cancel()
            await in_worker_thread(placement.release)(self.worker_pk, session_id)
        logger.info("stage worker %s handed over %d session(s)", self.name, len(self.sessions))


def _destroy_mountpoints(mountpoint_ids: list[int]) -> None:
    client = media_viewers.janus_client()
    try:
        for mountpoint_id in mountpoint_ids:
            try:
                client.destroy_mountpoint(mountpoint_id)
            except (JanusError, JanusUnavailable):
                pass  # gone already (Janus restarted meanwhile)
    finally:
        client.close()


def _speaking(held: SessionOnWorker) -> bool:
    stage = getattr(held, "stage", None)
    return stage is not None and (stage.playing is not None or stage.finishing)
