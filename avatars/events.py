"""Progress of a running job: turned into the row's progress fields, at most a few writes a second."""

from __future__ import annotations

import time

from django.utils import timezone

from avatars.models import Avatar
from avatars.pipeline.prepare import overall_progress


class ProgressRecorder:
    """The pipeline's `on_progress` callback for one run of one avatar.

    Writes go to the database only at a stage change or when `min_interval_s` has passed: SQLite
    serialises writers, and the API's readers must not wait behind a progress bar. Progress never
    goes down within a run. Each write names the run, so a stale worker cannot overwrite a newer run.
    """

    def __init__(self, avatar_pk: int, run: int, min_interval_s: float = 0.5) -> None:
        self.avatar_pk = avatar_pk
        self.run = run
        self.min_interval_s = min_interval_s
        self.progress = 0.0
        self.stage: str | None = None
        self._last_write = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.progress = max(self.progress, overall_progress(stage, done, total))
        now = time.monotonic()
        if stage == self.stage and now - self._last_write < self.min_interval_s:
            return
        self.stage = stage
        self._last_write = now
        Avatar.objects.filter(pk=self.avatar_pk, run=self.run).update(
            stage=stage, progress=self.progress, frames_done=done, frames_total=max(total, done),
            updated_at=timezone.now(),
        )
