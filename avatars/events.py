"""Progress of an avatar job: recorded on the row (throttled) and pushed to watching browsers.

The worker threads publish through the channel layer (common/channels.py) to the group of the
avatar; `/ws/avatars/<id>/` consumers forward what they receive.
"""

from __future__ import annotations

import logging
import time

from django.utils import timezone

from avatars.models import FINAL_STATES, Avatar, AvatarState
from avatars.pipeline.prepare import overall_progress
from common.channels import send_to_group

logger = logging.getLogger(__name__)

def group_name(avatar_id: str) -> str:
    return f"avatar.{avatar_id}"


def progress_message(avatar: Avatar) -> dict:
    """The contract's progress message for the row as it stands."""
    return {
        "type": "progress",
        "avatar_id": avatar.avatar_id,
        "state": avatar.state,
        "stage": avatar.stage,
        "progress": round(avatar.progress, 1),
        "error": avatar.error,
        "frames_done": avatar.frames_done,
        "frames_total": avatar.frames_total,
    }


def publish(message: dict) -> None:
    """Send a progress message to everyone watching that avatar."""
    send_to_group(group_name(message["avatar_id"]), {"type": "avatar.progress", "message": message})


def publish_row(avatar_pk: int) -> None:
    avatar = Avatar.objects.filter(pk=avatar_pk).first()
    if avatar is not None:
        publish(progress_message(avatar))


class ProgressRecorder:
    """The pipeline's `on_progress` callback for one run of one avatar.

    Writes and broadcasts at a stage change or when `min_interval_s` has passed, not more often:
    SQLite serialises writers, and the API's readers must not wait behind a progress bar. Progress
    never goes down within a run. Each write names the run, so a stale worker cannot overwrite a
    newer run.
    """

    def __init__(self, avatar_pk: int, avatar_id: str, run: int, min_interval_s: float = 0.5) -> None:
        self.avatar_pk = avatar_pk
        self.avatar_id = avatar_id
        self.run = run
        self.min_interval_s = min_interval_s
        self.progress = 0.0
        self.stage: str | None = None
        self.frames_done = self.frames_total = 0
        self._last_write = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.progress = max(self.progress, overall_progress(stage, done, total))
        now = time.monotonic()
        if stage == self.stage and now - self._last_write < self.min_interval_s:
            return
        self.stage = stage
        self._last_write = now
        if stage == "frames":
            # Only this stage counts frames; the others count their own steps (0 of 1, ...), which
            # a viewer would read as "0/1 frames".
            self.frames_done, self.frames_total = done, max(total, done)
        updated = Avatar.objects.filter(pk=self.avatar_pk, run=self.run, state=AvatarState.PROCESSING).update(
            stage=stage, progress=self.progress, frames_done=self.frames_done, frames_total=self.frames_total,
            updated_at=timezone.now(),
        )
        if updated:
            publish({
                "type": "progress", "avatar_id": self.avatar_id, "state": AvatarState.PROCESSING, "stage": stage,
                "progress": self.progress, "error": None, "frames_done": self.frames_done,
                "frames_total": self.frames_total,
            })


def is_final(message: dict) -> bool:
    return message["state"] in FINAL_STATES
