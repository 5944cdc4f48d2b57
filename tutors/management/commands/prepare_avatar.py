"""Prepare an avatar from a video file on this machine, with a terminal progress bar.

Goes through the same service as the API (the row, the stored source, the job runner); the job
runs in this process. Exits 0 when the avatar is ready, 1 with the named error when the video is
refused or the job fails, 130 when interrupted (the job is cancelled and leaves nothing).

It lives in the tutors app because `--tutor` names the tutor who switches to the new avatar and
reports that switch: the avatars app imports nothing from the tutors app.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from avatars import jobs, services, storage
from avatars.models import FINAL_STATES, Avatar, AvatarSource, AvatarState
from common.errors import ServiceError
from tutors.models import Tutor


class ProgressBar:
    """One line, redrawn in place on a terminal; a line every few seconds otherwise."""

    def __init__(self, stream, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.interactive = stream.isatty()
        self._last_line = ""
        self._last_print = 0.0
        self.frames_started: tuple[float, int] | None = None
        self.rate: float | None = None

    def show(self, avatar: Avatar, final: bool = False) -> None:
        done, total = avatar.frames_done, avatar.frames_total
        now = time.monotonic()
        if avatar.stage == "frames":
            if self.frames_started is None:
                self.frames_started = (now, done)
            # The rate over the frames stage alone, kept once it is over (not 0.0 at the end).
            seconds = now - self.frames_started[0]
            if seconds > 0.5:
                self.rate = (done - self.frames_started[1]) / seconds
        rate = self.rate
        eta = f"ETA {((total - done) / rate):4.0f} s" if avatar.stage == "frames" and rate and total > done else ""
        filled = int(self.width * avatar.progress / 100)
        speed = f"{rate:5.1f} fps" if rate else ""
        line = (f"[{'#' * filled}{'.' * (self.width - filled)}] {avatar.progress:5.1f}%  "
                f"{avatar.stage or avatar.state:<8}  frames {done}/{total}  {speed}  {eta}").rstrip()
        if self.interactive:
            self.stream.write("\r" + line.ljust(len(self._last_line)))
            self.stream.flush()
        elif final or (line != self._last_line and time.monotonic() - self._last_print >= 2):
            self.stream.write(line + "\n")
            self._last_print = time.monotonic()
        self._last_line = line

    def close(self) -> None:
        if self.interactive:
            self.stream.write("\n")


class Command(BaseCommand):
    help = "Prepare an avatar from a local video file, showing progress; exits non-zero if it is refused."

    def add_arguments(self, parser):
        parser.add_argument("video", help="path of the video file")
        parser.add_argument("--avatar-id", required=True, help="id of the new avatar, e.g. avatar_tutor_5")
        parser.add_argument("--blur", action="store_true", help="blur the background behind the tutor")
        parser.add_argument("--tutor", type=int, default=None,
                            help="id of the tutor who switches to this avatar when it is ready (it keeps its "
                                 "current one until then)")

    def handle(self, *args, video: str, avatar_id: str, blur: bool, tutor: int | None, **options):
        path = Path(video).expanduser().resolve()
        if not path.is_file():
            raise CommandError(f"not_found: no video file at {video}")
        try:
            avatar = services.create_avatar(
                avatar_id=avatar_id, local_path=path, original_name=path.name,
                source=AvatarSource.PATH, apply_blur=blur, tutor_id=tutor,
            )
        except ServiceError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        before = Tutor.objects.filter(pk=tutor).values_list("avatar_id", flat=True).first() if tutor else None
        if tutor:
            self.stdout.write(f"Tutor {tutor} keeps avatar '{before or 'none'}' until '{avatar_id}' is ready, "
                              "then switches to it.")
        bar = ProgressBar(self.stderr._out)
        try:
            while avatar.state not in FINAL_STATES:
                bar.show(avatar)
                time.sleep(0.2)
                avatar.refresh_from_db()
        except KeyboardInterrupt:
            bar.close()
            services.cancel_job(avatar_id, wait_s=10)
            self.stderr.write(f"interrupted: avatar '{avatar_id}' cancelled")
            sys.exit(130)
        bar.show(avatar, final=True)
        bar.close()
        # The row turns final inside the job; what follows it (the tutor's switch, the replaced
        # avatar's deletion) runs when the job's transaction commits: a job run in this process is
        # waited for, so the report below says what happened (it read "kept" while the deletion ran).
        wait_idle = getattr(jobs.backend(), "wait_idle", None)
        if wait_idle is not None:
            wait_idle(30)
        if avatar.state != AvatarState.READY:
            raise CommandError(f"{avatar.error_code or avatar.state}: {avatar.error_message or 'the job did not finish'}")
        video_facts = avatar.video or {}
        self.stdout.write(
            f"Avatar '{avatar_id}' is ready: {video_facts.get('frame_count')} frames at {video_facts.get('fps')} fps, "
            f"in {storage.backend().avatar_path(avatar_id)}"
        )
        if tutor:
            now = Tutor.objects.filter(pk=tutor).values_list("avatar_id", flat=True).first()
            if now != avatar_id:
                self.stdout.write(f"Tutor {tutor} did not switch: it shows '{now or 'none'}' (a newer video is pending).")
            elif before and before != avatar_id:
                gone = not Avatar.objects.filter(avatar_id=before).exists()
                self.stdout.write(f"Tutor {tutor} now shows '{avatar_id}' instead of '{before}' "
                                  f"({'deleted' if gone else 'kept'}).")
            else:
                self.stdout.write(f"Tutor {tutor} now shows '{avatar_id}'.")
