"""Probing: what is refused before decoding the whole video, and with which code."""

from __future__ import annotations

import pytest

from avatars.pipeline import PipelineError, VideoLimits, probe
from avatars.pipeline.video import sniff_container


def test_probe_reads_the_facts_of_a_video(face_video):
    info = probe(face_video[0], VideoLimits())
    assert (info.width, info.height, info.fps, info.frame_count) == (640, 360, 25.0, 50)
    assert info.duration_s == 2.0 and info.container == "mp4"


@pytest.mark.parametrize(
    "fixture, code",
    [
        ("not_a_video", "not_a_video"),
        ("picture_named_mp4", "not_a_video"),
        ("short_video", "too_short"),
        ("low_res_video", "resolution_too_low"),
    ],
)
def test_probe_refuses_with_a_named_code(request, fixture, code):
    with pytest.raises(PipelineError) as caught:
        probe(request.getfixturevalue(fixture), VideoLimits())
    assert caught.value.code == code
    assert caught.value.message


def test_too_long_uses_the_configured_limit(face_video):
    with pytest.raises(PipelineError) as caught:
        probe(face_video[0], VideoLimits(max_duration_s=1.0))
    assert caught.value.code == "too_long"


def test_truncated_mp4_is_unreadable(face_video, tmp_path):
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(face_video[0].read_bytes()[:2000])
    with pytest.raises(PipelineError) as caught:
        probe(truncated, VideoLimits())
    assert caught.value.code == "unreadable_video"


def test_empty_file_is_not_a_video(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(PipelineError) as caught:
        probe(empty, VideoLimits())
    assert caught.value.code == "not_a_video"


def test_sniff_recognises_common_containers():
    assert sniff_container(b"\x00\x00\x00\x20ftypisom" + b"\x00" * 8) == "mp4"
    assert sniff_container(b"\x1a\x45\xdf\xa3" + b"\x00" * 8) == "matroska"
    assert sniff_container(b"RIFF\x00\x00\x00\x00AVI LIST") == "avi"
    assert sniff_container(b"\x89PNG\r\n\x1a\n" + b"\x00" * 8) is None
    assert sniff_container(b"%PDF-1.7") is None


def test_a_streamed_mkv_without_a_count_is_held_to_the_pixel_budget_by_what_it_decodes(tmp_path):
    """Its header gives no frame count (OpenCV reads a huge negative number): the count is
    unknown (0), never negative, and the frames decoded are counted against the budget."""
    from avatars.pipeline import PipelineError, PrepareOptions, VideoLimits, prepare, probe
    from testsupport.bad_files import streamed_mkv

    video = streamed_mkv(tmp_path / "live.mkv", frames=60)
    info = probe(video, VideoLimits())
    assert info.frame_count == 0 and info.container == "matroska"
    budget = VideoLimits(max_total_pixels=640 * 360 * 40)  # 40 frames' worth: the clip has 60
    with pytest.raises(PipelineError) as refused:
        prepare(video, tmp_path / "out", PrepareOptions(limits=budget))
    assert refused.value.code == "video_too_large"
    assert refused.value.details["frame_count"] == 41


def test_a_variable_frame_rate_video_plays_for_as_long_as_it_lasts(tmp_path):
    """The header says 25 fps; the frames' clock says 100 frames over 8 s. Played at the header's
    rate it would last 4 s: the prepared avatar takes the clock's rate."""
    from avatars.pipeline import PrepareOptions, prepare
    from testsupport.videos import write_variable_rate_video

    video = tmp_path / "phone.mkv"
    seconds = write_variable_rate_video(video)
    prepared = prepare(video, tmp_path / "out", PrepareOptions(min_face_px=48))
    assert prepared.frame_count == 100
    assert abs(prepared.frame_count / prepared.fps - seconds) < 0.25, (prepared.fps, seconds)
    assert abs(prepared.video.duration_s - seconds) < 0.25


def test_a_file_cut_short_while_it_was_copied_is_incomplete_not_ready(tmp_path):
    """Its header announces 4 s; the bytes that arrived hold about one."""
    from avatars.pipeline import PrepareOptions, prepare
    from testsupport.videos import write_face_video

    whole = tmp_path / "whole.mkv"
    write_face_video(whole, seconds=4.0, fourcc="MJPG")
    data = whole.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(PipelineError) as refused:
        prepare(cut, tmp_path / "out", PrepareOptions())
    assert refused.value.code == "incomplete_video"
    assert refused.value.details["header_s"] == pytest.approx(4.0, abs=0.1)
