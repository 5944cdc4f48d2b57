"""Where sessions' stages run when live sessions scale out (SESSION_MEDIA_SERVER="janus"): the
stage workers, their heartbeats, and which worker holds which session.

The database is the truth every process sees. A worker writes its heartbeat every
STAGE_WORKER_HEARTBEAT_S; one whose heartbeat is older than STAGE_WORKER_DEAD_AFTER_S is dead.
Every active session has at most one placement row; a worker takes a session by one conditional
write (creating the row: its primary key lets one creator win; or moving it from a dead or
released worker: `update ... where worker = <the one seen>`), so two workers never both think they
hold it. Workers share the sessions evenly: each takes at most its share of what is to be placed.
"""

from __future__ import annotations

import math
import os
import random
import socket
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from sessions_app.errors import NameTaken
from sessions_app.models import SessionState, StagePlacement, StageWorker, TutoringSession


def scaled_out() -> bool:
    """Stages run in stage workers and media goes through Janus (not in the web processes)."""
    return settings.SESSION_MEDIA_SERVER == "janus"


def dead_before():
    """Heartbeats older than this are dead workers'."""
    return timezone.now() - timedelta(seconds=settings.STAGE_WORKER_DEAD_AFTER_S)


def register(name: str, max_sessions: int) -> StageWorker:
    """This process as the worker `name` (a name a dead worker had is taken over, with its
    sessions moved by the usual failover; a live one's is refused)."""
    now = timezone.now()
    fields = dict(host=socket.gethostname(), pid=os.getpid(), started_at=now, heartbeat_at=now, accepting=True,
                  max_sessions=max_sessions)
    if StageWorker.objects.filter(name=name, heartbeat_at__lt=dead_before()).update(**fields):
        worker = StageWorker.objects.get(name=name)
        # Its old self died: what it held is placed again like any dead worker's.
        StagePlacement.objects.filter(worker=worker).update(worker=None)
        return worker
    try:
        return StageWorker.objects.create(name=name, **fields)
    except IntegrityError:
        raise NameTaken(f"A stage worker named {name!r} is running (its heartbeat is fresh).") from None


def beat(worker_pk: int) -> bool:
    """Write the heartbeat; False when the row is gone (deleted by staff: stop)."""
    return bool(StageWorker.objects.filter(pk=worker_pk).update(heartbeat_at=timezone.now()))


def stop_accepting(worker_pk: int) -> None:
    StageWorker.objects.filter(pk=worker_pk).update(accepting=False)


def leave(worker_pk: int) -> None:
    """The worker stops: its sessions are placed again at once (no wait for its heartbeat to age)."""
    StagePlacement.objects.filter(worker_id=worker_pk).update(worker=None)
    StageWorker.objects.filter(pk=worker_pk).delete()


def live_workers():
    return StageWorker.objects.filter(heartbeat_at__gte=dead_before(), accepting=True)


def _free_placements():
    """Placements of active sessions that no live worker holds."""
    return StagePlacement.objects.filter(session__state=SessionState.ACTIVE).filter(
        Q(worker__isnull=True) | Q(worker__heartbeat_at__lt=dead_before()))


def take(worker_pk: int) -> list[str]:
    """Sessions this worker takes now, up to its share: active sessions not placed yet, and those
    of dead or stopped workers. Returns their ids."""
    worker = StageWorker.objects.filter(pk=worker_pk, accepting=True).first()
    if worker is None:
        return []
    unplaced = list(TutoringSession.objects.filter(state=SessionState.ACTIVE, placement__isnull=True)
                    .order_by("created_at").values_list("session_id", flat=True)[:100])
    free = list(_free_placements().order_by("placed_at").values_list("session_id", "worker_id")[:100])
    if not unplaced and not free:
        return []
    workers = live_workers().count() or 1
    held = (StagePlacement.objects.filter(worker__in=live_workers(), session__state=SessionState.ACTIVE)
            .values("worker_id").annotate(n=Count("pk")))
    counts = {row["worker_id"]: row["n"] for row in held}
    total = sum(counts.values()) + len(unplaced) + len(free)
    share = math.ceil(total / workers) - counts.get(worker_pk, 0)
    if worker.max_sessions:
        share = min(share, worker.max_sessions - counts.get(worker_pk, 0))
    taken: list[str] = []
    now = timezone.now()
    for session_id, old_worker in free:
        if len(taken) >= share:
            return taken
        moved = StagePlacement.objects.filter(pk=session_id, worker_id=old_worker).filter(
            Q(worker__isnull=True) | Q(worker__heartbeat_at__lt=dead_before())).update(
                worker=worker_pk, placed_at=now, moves=F("moves") + 1)
        if moved:
            taken.append(str(session_id))
    for session_id in unplaced:
        if len(taken) >= share:
            break
        try:
            with transaction.atomic():
                StagePlacement.objects.create(session_id=session_id, worker_id=worker_pk, placed_at=now,
                                              mountpoint_id=_new_mountpoint_id())
        except IntegrityError:  # another worker placed it first (or the id clashed: next time)
            continue
        taken.append(str(session_id))
    return taken


def _new_mountpoint_id() -> int:
    return random.randrange(1, 2**31)


def held(worker_pk: int) -> dict[str, StagePlacement]:
    """The placements this worker holds, by session id (ended sessions' too: it tidies them up)."""
    return {str(p.session_id): p for p in StagePlacement.objects.filter(worker_id=worker_pk).select_related("session")}


def release(worker_pk: int, session_id: str) -> bool:
    """Hand the session over: another worker takes it at its next look."""
    return bool(StagePlacement.objects.filter(pk=session_id, worker_id=worker_pk).update(worker=None))


def set_ports(worker_pk: int, session_id: str, ports: dict) -> bool:
    return bool(StagePlacement.objects.filter(pk=session_id, worker_id=worker_pk).update(
        video_port=ports.get("video", 0), video_rtcp_port=ports.get("video_rtcp", 0), audio_port=ports.get("audio", 0),
        data_port=ports.get("data", 0)))


def set_header(worker_pk: int, session_id: str, header: dict) -> None:
    StagePlacement.objects.filter(pk=session_id, worker_id=worker_pk).update(header=header)


def remove(worker_pk: int, session_id: str) -> None:
    """The session ended and its mountpoint is gone: its placement goes."""
    StagePlacement.objects.filter(pk=session_id, worker_id=worker_pk).delete()


def take_ended_orphans(worker_pk: int) -> list[int]:
    """Placements of ended sessions that no live worker holds (their worker died before it could
    tidy up): removed here, one conditional delete each; their mountpoint ids, for the caller to
    remove from Janus."""
    taken = []
    for session_id, mountpoint_id, old_worker in StagePlacement.objects.filter(
            session__state=SessionState.ENDED).filter(
            Q(worker__isnull=True) | Q(worker__heartbeat_at__lt=dead_before())).values_list(
            "session_id", "mountpoint_id", "worker_id")[:100]:
        if StagePlacement.objects.filter(pk=session_id, worker_id=old_worker).delete()[0]:
            taken.append(mountpoint_id)
    return taken


def placement_of(session_id) -> StagePlacement | None:
    return StagePlacement.objects.filter(pk=session_id).select_related("worker").first()


def worker_alive(placement: StagePlacement | None) -> bool:
    return bool(placement and placement.worker and placement.worker.heartbeat_at >= dead_before())
