"""The session's media for the media server, from a stage worker: a transport of SessionWatcher.

A JanusPublisher is the LiveViewer of the one watcher a stage worker runs per session: every tick's
picture (I420) and audio are encoded once (VP8 + Opus, sessions_app/live/rtp.py) and sent as RTP to
the session's Janus mountpoint, which forwards them to every WebRTC viewer; the JSON events go to
the mountpoint's data port (Janus relays them on the viewers' data channels). While the avatar is
prepared the watcher gives it the tutor's still as frames (still_fps), so viewers see the still
and RTP keeps flowing. Encoding runs in a thread of its own (8.2 ms of CPU per 720p frame,
rtp.py), so the stage's clock never waits for it; a frame that finds ENCODE_BACKLOG_FRAMES waiting
is sent as the previous picture again (its audio is never dropped: a gap would put the tracks out
of step).

Janus relays data to a viewer only from the moment it joined, so a viewer that joined after the
header was sent would never see it: the stage worker sends it again every few seconds, and puts it
in the placement, which new viewers' offers carry (sessions_app/live/stage_worker.py).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from typing import Callable

import numpy as np

from sessions_app.live.rtp import RtpPublisher
from sessions_app.live.watcher import LiveViewer

logger = logging.getLogger(__name__)

ENCODE_BACKLOG_FRAMES = 5
# Frames per second of the still while the avatar is prepared: what keeps RTP (and Janus's
# viewers' connections) alive then, for little encoding.
STILL_FPS = 5


def rtp_publisher(host: str, ports: dict, audio_rate: int) -> RtpPublisher:
    # Janus asks for a keyframe through the video RTCP port when a viewer joins, so the viewer's
    # first picture comes at once rather than at the next scheduled keyframe (up to 2 s: rtp.py).
    return RtpPublisher(host, ports["video"], ports["audio"], ports.get("data") or None, audio_rate, 25.0,
                        video_rtcp_port=ports.get("video_rtcp") or None)


class JanusPublisher(LiveViewer):
    wants_i420 = True
    still_fps = STILL_FPS

    def __init__(self, session_id: str, host: str, ports: dict, audio_rate: int,
                 on_header: Callable[[dict], None] | None = None) -> None:
        self.session_id = session_id
        self.audio_rate = audio_rate
        self.on_header = on_header  # called with each stream header (a stage started streaming)
        self.closed: str | None = None  # why the watcher closed it
        self._work: queue.Queue = queue.Queue()
        self._rtp = rtp_publisher(host, ports, audio_rate)
        self._thread = threading.Thread(target=self._encode, name=f"rtp-{session_id[:8]}", daemon=True)
        self._thread.start()

    # --- the watcher's calls (on the event loop) -----------------------------------------------
    def frame(self, first_sample: int, pts: int, jpeg, i420: np.ndarray | None, audio: np.ndarray) -> None:
        if self._work.qsize() >= ENCODE_BACKLOG_FRAMES:
            i420 = None  # the encoder is behind: this frame's picture is skipped, its sound is not
        self._work.put(("frame", i420, audio))

    def event(self, event: dict) -> None:
        self._work.put(("event", json.dumps(event), None))
        if event.get("type") == "session" and self.on_header is not None:
            self.on_header(event)

    async def close(self, reason: str) -> None:
        self.closed = reason

    # --- the stage worker's ----------------------------------------------------------------------
    def retarget(self, host: str, ports: dict) -> None:
        """Janus was restarted: the mountpoint was made again, maybe on other ports."""
        self._work.put(("retarget", host, ports))

    def stop(self) -> None:
        self._work.put(None)

    # --- the encoder thread --------------------------------------------------------------------
    def _encode(self) -> None:
        last_picture = None
        while True:
            item = self._work.get()
            if item is None:
                break
            try:
                if item[0] == "frame":
                    _, picture, audio = item
                    if picture is None:
                        picture = last_picture
                    else:
                        last_picture = picture
                    if picture is not None:
                        self._rtp.send_frame(picture, audio)
                elif item[0] == "event":
                    self._rtp.send_event(item[1])
                elif item[0] == "retarget":
                    _, host, ports = item
                    self._rtp.close()
                    self._rtp = rtp_publisher(host, ports, self.audio_rate)
            except Exception:
                logger.exception("session %s: RTP publishing failed", self.session_id)
        self._rtp.close()
