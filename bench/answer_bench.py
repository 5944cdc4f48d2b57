"""Answers that start at once: how soon a long answer, or one that arrives in pieces, is heard.

    .venv/bin/python bench/answer_bench.py        (or: bash scripts/bench.sh answer)

A real server (as bench/speak_bench.py starts it: a 10 s 720p avatar prepared through the API),
one viewer on the session's WebSocket stream (the `websockets` client), every time on the client's
clock:

1. Long answer: POST /speak with ~60 s of text (8 long sentences) -> the first received video frame
   whose mouth differs from the idle frame (the speak bench's calibrated mouth-box measure), split
   into the POST's round trip (which makes the first sentence) and the rest; then interrupt.
2. Answer in pieces: POST /speak {"final": false} with half a sentence, 0.5 s later an append that
   completes the first sentence -> the first received audio message with sound, and the first
   received frame with a moved mouth, from the moment the append was sent; then the last piece
   (final) and the utterance's end.

Goals: 1. median <= 0.4 s (the whole text was made first before: ~4 s); 2. <= 0.4 s.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.speak_bench import Mouths, Viewer, bench_main, calibrate, ms, open_session, percentile, utterance  # noqa: E402

REPEATS = 7
SIXTY_SECONDS = " ".join([
    "Today we are going to learn about fractions, which describe a part of a whole thing, like a slice of cake.",
    "The number on the bottom of a fraction tells us how many equal parts the whole has been divided into.",
    "The number on the top tells us how many of those equal parts we are talking about at the moment.",
    "For example, if you cut a pizza into eight slices and eat three of them, you have eaten three eighths of it.",
    "If you eat four of the eight slices instead, you have eaten four eighths, which is the same as one half.",
    "That is because four is exactly half of eight, so the two fractions describe the same amount of pizza.",
    "We call fractions like these equivalent fractions, and you can find them by multiplying or dividing.",
    "Multiply the top and the bottom by the same number, and the fraction still describes the same amount.",
    "Next time we will learn how to add two fractions that have different numbers on the bottom of them.",
    "Before then, try to find three fractions that are equivalent to one third, and write them down for me.",
])
PIECES = [("So, let us", False), (" see what a half is. It", False), (" is one of two equal parts.", True)]


async def run(server, api, tutor_id: int) -> list[str]:
    from django.conf import settings

    report: list[str] = []
    session = open_session(api, tutor_id)
    sid = session["session_id"]
    viewer = await Viewer(server.url.replace("http", "ws", 1) + session["stream_url"] + f"?api_key={api.key}").open()
    try:
        mouths = Mouths(Path(settings.AVATAR_ROOT) / "bench", viewer.header)
        viewer.record = True
        await asyncio.sleep(2.0)
        idle = [m for m in viewer.take_recording() if m.kind == "V"]
        threshold = calibrate(mouths, idle)[2]
        report.append(f"avatar {viewer.header['width']}x{viewer.header['height']} at {mouths.fps:g} fps; "
                      f"mouth threshold {threshold:.2f} grey levels")

        def first_moving(since: float):
            for item in viewer.recorded:
                if item.kind == "V" and item.received >= since and mouths.difference(item.payload, item.pts_us) > threshold:
                    return item.received
            return None

        def first_sound(since: float):
            return next((item.received for item in viewer.recorded if item.kind == "A" and item.received >= since
                         and np.frombuffer(item.payload, "<i2").any()), None)

        # Warm the voice (the first synthesis after start-up), not counted.
        body, _, _ = await asyncio.to_thread(api.speak, sid, "Hello.")
        await viewer.wait_event(utterance("utterance.ended", body["utterance_id"]))

        long_trials = []
        for _ in range(REPEATS):
            viewer.take_recording()
            viewer.record = True
            since = len(viewer.events)
            body, sent, answered = await asyncio.to_thread(api.speak, sid, SIXTY_SECONDS)
            await viewer.wait_event(utterance("utterance.started", body["utterance_id"]), since)
            moved = None
            deadline = time.monotonic() + 10
            while moved is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                moved = first_moving(sent)
            await asyncio.to_thread(api.interrupt, sid)
            await viewer.wait_event(utterance("utterance.ended", body["utterance_id"]), since)
            long_trials.append((answered - sent, None if moved is None else moved - sent))
            await asyncio.sleep(0.3)

        piece_trials = []
        for _ in range(REPEATS):
            viewer.take_recording()
            viewer.record = True
            since = len(viewer.events)
            status, opened, _, _ = await asyncio.to_thread(api.call, "POST", f"/v1/sessions/{sid}/speak",
                                                           {"text": PIECES[0][0], "final": False})
            assert status == 202, opened
            await asyncio.sleep(0.5)
            times = []
            for text, final in PIECES[1:]:
                status, grown, sent, _ = await asyncio.to_thread(
                    api.call, "POST", f"/v1/sessions/{sid}/utterances/{opened['utterance_id']}/append",
                    {"text": text, "final": final})
                assert status == 200, grown
                times.append(sent)
                if not final:
                    await asyncio.sleep(1.0)  # an LLM's next sentence comes later
            await viewer.wait_event(utterance("utterance.ended", opened["utterance_id"]), since)
            sound, moved = first_sound(times[0]), first_moving(times[0])
            piece_trials.append((None if sound is None else sound - times[0], None if moved is None else moved - times[0],
                                 sound is not None and sound < times[1]))
            await asyncio.sleep(0.3)
    finally:
        await viewer.close()

    seen = [latency for _, latency in long_trials if latency is not None]
    report.append(f"\n1. speak with {len(SIXTY_SECONDS)} characters (~60 s of speech) -> first received moving mouth "
                  f"({len(seen)}/{len(long_trials)}):")
    if seen:
        report.append(f"   median {ms(statistics.median(seen))}, p95 {ms(percentile(seen, 0.95))}, max {ms(max(seen))}; "
                      f"POST round trip (makes the first sentence) median {ms(statistics.median(r for r, _ in long_trials))}")
    sounds = [s for s, _, _ in piece_trials if s is not None]
    moves = [m for _, m, _ in piece_trials if m is not None]
    report.append(f"\n2. answer in pieces: the append that completes the first sentence -> first received sound "
                  f"({len(sounds)}/{len(piece_trials)}):")
    if sounds:
        report.append(f"   median {ms(statistics.median(sounds))}, max {ms(max(sounds))}; first moving mouth median "
                      f"{ms(statistics.median(moves)) if moves else 'none'}; heard before the last piece was sent: "
                      f"{sum(1 for *_, early in piece_trials if early)}/{len(piece_trials)}")
    return report


def main() -> None:
    bench_main("answer benchmark report", run, "answer-bench-", {"SESSION_SPEAK_MAX_CHARS": "2000"})


if __name__ == "__main__":
    main()
