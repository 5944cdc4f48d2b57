"""Preparation in a child process: same results and errors as in this one, and it runs only on
CPU time the server leaves."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from avatars.pipeline import PipelineError, PrepareOptions
from avatars.pipeline.child_process import _yield_to_the_server, prepare_in_child


def _policy_after_yielding() -> int:
    _yield_to_the_server()
    return os.sched_getscheduler(0)


def test_the_child_runs_in_the_idle_scheduling_class():
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(_policy_after_yielding) == os.SCHED_IDLE


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
