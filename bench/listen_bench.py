"""Hearing the student: barge-in, transcripts, word errors and CPU, against a real server.

    .venv/bin/python bench/listen_bench.py        (or: bash scripts/bench.sh listen)

A real server (as bench/speak_bench.py starts it: a 10 s 720p avatar prepared through the API),
one viewer on the session's WebSocket stream (the `websockets` client) that also sends the
student's microphone up it (binary `A` messages, 40 ms each, in real time), real read speech from
the moonshine-voice wheel (beckett.wav, 10 s; two_cities.wav, 44 s). Times on the client's clock.

1. Barge-in: the tutor says a long answer; 1 s into it the student starts talking (beckett.wav):
   from sending the message that holds the student's first word to the first received all-silent
   audio message of the tutor.
2. Transcripts: two_cities.wav then beckett.wav, in real time: per student turn, from sending the
   message that holds its last speech (its `end_pts_us`, mapped from the stream's clock to the
   sender's by the stream time received when the first message went: within a frame) to the
   `transcript` event; word errors of everything recognised against the texts read.
3. CPU: the server's CPU time per second while it hears the 54 s of speech, against the same
   session streaming with nobody talking.

Goals: 1. median <= 300 ms; 2. median <= 0.8 s for 3-5 s turns (SESSION_LISTEN_END_SILENCE_S,
0.6 s, is part of it: a turn is over only after that much silence).
"""

from __future__ import annotations

import asyncio
import re
import statistics
import struct
import sys
import time
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.answer_bench import SIXTY_SECONDS  # noqa: E402
from bench.speak_bench import CpuWindow, Viewer, bench_main, ms, open_session, percentile, utterance  # noqa: E402

RATE = 24000
CHUNK = 960
BARGE_INS = 7
TWO_CITIES = ("It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
              "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, "
              "it was the season of Darkness, it was the spring of hope, it was the winter of despair, we had "
              "everything before us, we had nothing before us, we were all going direct to Heaven, we were all "
              "going direct the other way - in short, the period was so far like the present period, that some of "
              "its noisiest authorities insisted on its being received, for good or for evil, in the superlative "
              "degree of comparison only.")
BECKETT = "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better."


def recording(name: str) -> np.ndarray:
    from sessions_app.speech.audio import resample
    from testsupport.talking_footage import speech_recording

    with wave.open(str(speech_recording(name))) as source:
        samples = np.frombuffer(source.readframes(source.getnframes()), "<i2")
        return resample(samples, source.getframerate(), RATE)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def word_errors(said: list[str], heard: list[str]) -> int:
    """Substitutions, deletions and insertions (Levenshtein distance over words)."""
    row = list(range(len(heard) + 1))
    for i, word in enumerate(said, 1):
        previous, row[0] = row[0], i
        for j, other in enumerate(heard, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (word != other))
    return row[-1]


async def stream(viewer: Viewer, samples: np.ndarray, first_pts: int = 0) -> list[float]:
    """Send the samples as 40 ms `A` messages in real time; when each went."""
    sent, began = [], time.monotonic()
    for index in range(len(samples) // CHUNK):
        wait = began + index * 0.04 - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        await viewer._socket.send(b"A" + struct.pack(">Q", first_pts + index * 40_000)
                                  + samples[index * CHUNK:(index + 1) * CHUNK].astype("<i2").tobytes())
        sent.append(time.monotonic())
    return sent


async def run(server, api, tutor_id: int) -> list[str]:
    report: list[str] = []
    session = open_session(api, tutor_id)
    sid = session["session_id"]
    viewer = await Viewer(server.url.replace("http", "ws", 1) + session["stream_url"] + f"?api_key={api.key}").open()
    beckett, cities = recording("beckett.wav"), recording("two_cities.wav")
    began = time.monotonic()

    def clock() -> int:  # the sender's clock (µs): wall time, so gaps between phases keep the mapping
        return int((time.monotonic() - began) * 1e6)

    try:
        await asyncio.sleep(1.0)
        # Warm-up, not counted: the first turn loads the VAD and the recogniser. The server maps
        # the sender's clock onto the stream's at its first message: the stream time then.
        viewer.record = True
        await asyncio.sleep(0.3)
        first = clock()
        anchor = max(m.pts_us for m in viewer.take_recording() if m.kind == "A") - first
        since = len(viewer.events)
        await stream(viewer, np.concatenate([beckett[:3 * RATE], np.zeros(RATE, np.int16)]), first)
        await viewer.wait_event(lambda e: e.get("type") == "transcript", since)

        cuts, talking_fps = [], []
        for _ in range(BARGE_INS):
            since = len(viewer.events)
            body, _, _ = await asyncio.to_thread(api.speak, sid, SIXTY_SECONDS)
            await viewer.wait_event(utterance("utterance.started", body["utterance_id"]), since)
            await asyncio.sleep(1.0)
            viewer.take_recording()
            viewer.record = True
            speech = beckett[int(0.2 * RATE):int(1.7 * RATE)]  # its first word 0.13 s in
            sent = await stream(viewer, np.concatenate([speech, np.zeros(RATE, np.int16)]), clock())
            first_word = sent[int(0.13 / 0.04)]
            talking_fps.append(sum(1 for t in viewer.video_times if sent[0] <= t <= sent[-1]) / (sent[-1] - sent[0]))
            silent = next((m.received for m in viewer.take_recording() if m.kind == "A" and m.received > first_word
                           and not np.frombuffer(m.payload, "<i2").any()), None)
            ended = await viewer.wait_event(utterance("utterance.ended", body["utterance_id"]), since)
            cuts.append((None if silent is None else silent - first_word, ended.get("reason")))
            await viewer.wait_event(lambda e: e.get("type") == "transcript", since)  # let its turn finish
            await asyncio.sleep(0.5)

        # Idle CPU, then the recordings in real time.
        cpu = CpuWindow(server.process.pid)
        await asyncio.sleep(10.0)
        idle = cpu.stop()
        since = len(viewer.events)
        speech = np.concatenate([cities, np.zeros(RATE, np.int16), beckett, np.zeros(2 * RATE, np.int16)])
        cpu = CpuWindow(server.process.pid)
        first_sent_pts = clock()
        sent = await stream(viewer, speech, first_sent_pts)
        listening = cpu.stop()
        listening_fps = sum(1 for t in viewer.video_times if sent[0] <= t <= sent[-1]) / (sent[-1] - sent[0])
        await asyncio.sleep(3.0)
        transcripts = [e for e in viewer.events[since:] if e.get("type") == "transcript"]
    finally:
        await viewer.close()

    seen = [cut for cut, _ in cuts if cut is not None]
    report.append(f"1. barge-in, the student's first word sent -> the tutor's first silent audio received "
                  f"({len(seen)}/{len(cuts)}; reasons {sorted(set(r for _, r in cuts))}):")
    if seen:
        report.append(f"   median {ms(statistics.median(seen))}, p95 {ms(percentile(seen, 0.95))}, max {ms(max(seen))}; "
                      f"720p video received while both talked: {min(talking_fps):.1f}-{max(talking_fps):.1f} fps")
    delays, lengths = [], []
    for event in transcripts:
        index = int((event["end_pts_us"] - anchor - first_sent_pts) // 40_000)
        if 0 <= index < len(sent):
            delays.append(event["received"] - sent[index])
            lengths.append((event["end_pts_us"] - event["start_pts_us"]) / 1e6)
    report.append(f"\n2. {len(transcripts)} student turns (two_cities.wav, beckett.wav), the student's last word sent "
                  f"-> transcript event received:")
    if delays:
        short = [d for d, length in zip(delays, lengths) if 3.0 <= length <= 5.0]
        report.append(f"   all turns ({min(lengths):.1f}-{max(lengths):.1f} s long): median {ms(statistics.median(delays))}, "
                      f"max {ms(max(delays))}; 3-5 s turns ({len(short)}): "
                      f"{ms(statistics.median(short)) if short else 'none'}")
    heard = words(" ".join(e["text"] for e in transcripts))
    reference = words(TWO_CITIES) + words(BECKETT)
    errors = word_errors(reference, heard)
    report.append(f"   word errors: {errors}/{len(reference)} ({100 * errors / len(reference):.1f}%)")
    report.append(f"\n3. server CPU: {listening.server:.2f} cores while hearing the student (and streaming), "
                  f"{idle.server:.2f} streaming alone: hearing costs {listening.server - idle.server:.2f} of a core "
                  f"(others on the machine: {listening.others:.2f} cores); 720p video received meanwhile {listening_fps:.1f} fps")
    return report


def main() -> None:
    bench_main("listen benchmark report", run, "listen-bench-", {"SESSION_SPEAK_MAX_CHARS": "2000"})


if __name__ == "__main__":
    main()
