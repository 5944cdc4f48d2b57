"""Run `prepare` in a child process, with the same callbacks as running it in this one.

The pipeline keeps both cores busy and, between OpenCV calls, holds Python's GIL; inside the
server process that made the API's p99 latency 3-4x worse while a job ran (measured with
bench/load_bench.py), and lowering the job threads' priority did not cure it, because the GIL is
not scheduled by priority. In a child process, at low priority, the pipeline cannot hold up a
request: measured with niceness 10, p99 while a job ran was ~2x idle; in Linux's SCHED_IDLE
class, ~1.6x. Its priority is a setting (AVATAR_JOB_PRIORITY, `_lower_priority` below). Progress comes back over a pipe;
the cancel flag goes the other way as an event.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
from pathlib import Path

from avatars.pipeline.errors import ChildProcessDied, PipelineCancelled, PipelineError
from avatars.pipeline.prepare import CancelCheck, PreparedAvatar, PrepareOptions, ProgressCallback, prepare

# "idle": Linux's SCHED_IDLE class, only CPU time nothing else wants; a number: SCHED_BATCH at
# that niceness, a share of the CPU however busy the machine (see `_lower_priority`).
IDLE = "idle"
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Linux: if the server is killed, its preparation processes die with it rather than go on alone.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _lower_priority(priority: int | str) -> None:
    """Put this process (and the threads it starts, which inherit it) below the server.

    SCHED_IDLE gives the API the best latency, but a job in it gets nothing while any other
    process wants the CPU: with both cores busy elsewhere, preparation fell to a third of its
    quiet speed, and on a machine that also streams sessions it could stop altogether. SCHED_BATCH
    at a niceness keeps a share however busy the machine is (Linux's weights: niceness 10 gets
    ~1/10 of a core against each normal process, 15 ~1/28, 19 ~1/70) while still yielding to
    requests. The figures that chose the default are in bench/priority_bench.py's docstring."""
    if priority == IDLE:
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return
        except (AttributeError, OSError):
            priority = 19
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (AttributeError, OSError):
        pass
    try:
        os.nice(max(0, int(priority)) - os.nice(0))
    except OSError:
        pass


def _child_main(video_path: str, out_dir: str, options: PrepareOptions, connection, cancel_event,
                priority: int | str) -> None:
    _die_with_parent()
    _lower_priority(priority)

    def report(stage: str, done: int, total: int) -> None:
        connection.send(("progress", stage, done, total))

    try:
        result = prepare(video_path, out_dir, options, on_progress=report, cancelled=cancel_event.is_set)
    except PipelineCancelled:
        connection.send(("cancelled",))
    except PipelineError as exc:
        connection.send(("error", exc.code, exc.message, exc.details))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which decides
        connection.send(("crash", f"{type(exc).__name__}: {exc}"))
    else:
        connection.send(("done", result))
    finally:
        connection.close()


def prepare_in_child(
    video_path: str | Path,
    out_dir: str | Path,
    options: PrepareOptions,
    on_progress: ProgressCallback,
    cancelled: CancelCheck,
    poll_s: float = 0.1,
    priority: int | str = 10,
) -> PreparedAvatar:
    """`prepare(...)` in a fresh process at `priority` (a niceness, or "idle"); raises what it
    would raise, or ChildProcessDied."""
    context = multiprocessing.get_context("spawn")  # never fork a threaded server
    receiver, sender = context.Pipe(duplex=False)
    cancel_event = context.Event()
    process = context.Process(
        target=_child_main, args=(str(video_path), str(out_dir), options, sender, cancel_event, priority),
        name="avatar-prepare", daemon=True,
    )
    process.start()
    sender.close()
    try:
        while True:
            if cancelled():
                cancel_event.set()
            if not receiver.poll(poll_s):
                if not process.is_alive() and not receiver.poll(0):
                    raise ChildProcessDied(f"the preparation process ended without a result (exit code {process.exitcode})")
                continue
            try:
                message = receiver.recv()
            except EOFError as exc:
                raise ChildProcessDied(f"the preparation process ended without a result (exit code {process.exitcode})") from exc
            kind = message[0]
            if kind == "progress":
                on_progress(*message[1:])
            elif kind == "done":
                return message[1]
            elif kind == "cancelled":
                raise PipelineCancelled()
            elif kind == "error":
                raise PipelineError(message[1], message[2], message[3])
            else:
                raise ChildProcessDied(f"the preparation process failed: {message[1]}")
    finally:
        receiver.close()
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join()
