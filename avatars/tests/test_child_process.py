"""Preparation in a child process: same results and errors as in this one, and it runs below the
server: SCHED_BATCH at a niceness (a share of the CPU however busy), or SCHED_IDLE."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from avatars.pipeline import PipelineError, PrepareOptions
from avatars.pipeline.child_process import IDLE, _lower_priority, prepare_in_child


def _policy_after_lowering(priority) -> tuple[int, int]:
    _lower_priority(priority)
    return os.sched_getscheduler(0), os.nice(0)


@pytest.mark.parametrize("priority, policy, niceness", [(10, os.SCHED_BATCH, 10), (15, os.SCHED_BATCH, 15),
                                                        (IDLE, os.SCHED_IDLE, None)])
def test_the_child_runs_below_the_server(priority, policy, niceness):
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        got_policy, got_niceness = pool.apply(_policy_after_lowering, (priority,))
    assert got_policy == policy
    if niceness is not None:
        assert got_niceness == niceness


def test_a_child_prepares_the_avatar_and_reports_progress(face_video, tmp_path):
    reports = []
    result = prepare_in_child(face_video[0], tmp_path / "out", PrepareOptions(),
                              on_progress=lambda *report: reports.append(report), cancelled=lambda: False)
    assert result.frame_count == len(face_video[1])
    assert len(list((tmp_path / "out" / "face_imgs").iterdir())) == result.frame_count
    assert reports[0][0] == "probe" and reports[-1] == ("finalize", 1, 1)


def test_a_refusal_in_the_child_is_raised_here_and_leaves_nothing(no_face_video, tmp_path):
    with pytest.raises(PipelineError) as refused:
        prepare_in_child(no_face_video, tmp_path / "out", PrepareOptions(),
                         on_progress=lambda *report: None, cancelled=lambda: False)
    assert refused.value.code == "no_face"
    assert not (tmp_path / "out").exists()
