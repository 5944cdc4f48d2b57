"""Session streaming benchmark: frame delivery rate to one and to four viewers, and server memory.

    .venv/bin/python bench/stream_bench.py        (or: bash scripts/bench.sh stream)

Starts a real server (uvicorn, as scripts/serve.sh does) on a free loopback port with its own data
folder, prepares an avatar from a 10 s 720p clip through the API, opens a session, and watches
/ws/sessions/<id>/ with one viewer, then four at once, for a fixed time each. Prints frames per
second per viewer against the avatar's fps, and the server's RSS. Loopback only, bounded in time.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WATCH_S = 10.0


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def viewer(url: str, seconds: float) -> tuple[float, int]:
    import websockets

    async with websockets.connect(url, max_size=None) as socket:
        header = json.loads(await socket.recv())
        frames, started = 0, time.monotonic()
        while time.monotonic() - started < seconds:
            message = await socket.recv()
            if isinstance(message, bytes) and message[:1] == b"V":  # video; b"A" audio comes with each
                frames += 1
        return frames / (time.monotonic() - started), header["fps"]


async def watch(url: str, viewers: int, seconds: float) -> list[tuple[float, int]]:
    return await asyncio.gather(*(viewer(url, seconds) for _ in range(viewers)))


def main() -> None:
    from testsupport.live_server import start_live_server
    from testsupport.videos import drifting, write_face_video

    data_dir = Path(tempfile.mkdtemp(prefix="stream-bench-"))
    clip = data_dir / "tutor.mp4"
    write_face_video(clip, width=1280, height=720, seconds=10, motion=drifting(1280, 720))
    server = start_live_server(data_dir)
    try:
        key = server.api_key()
        server.upload_ready_avatar(key, clip, "bench", wait_s=120)
        tutor_id = server.create_tutor(key, "Bench")
        request = urllib.request.Request(f"{server.url}/v1/sessions", method="POST",
                                         data=json.dumps({"tutor_id": int(tutor_id), "student_id": 1, "avatar_id": "bench"}).encode(),
                                         headers={"X-API-Key": key, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            session = json.loads(response.read())
        url = server.url.replace("http", "ws") + session["stream_url"] + f"?api_key={key}"
        idle_rss, _ = rss_mb(server.process.pid)
        one = asyncio.run(watch(url, 1, WATCH_S))
        four = asyncio.run(watch(url, 4, WATCH_S))
        rss_now, rss_peak = rss_mb(server.process.pid)
        fps = one[0][1]
        print(f"avatar: 1280x720, 250 frames at {fps:g} fps; each viewer watched {WATCH_S:g} s")
        print(f"one viewer:   {one[0][0]:5.1f} frames/s  ({one[0][0] / fps:.0%} of fps)")
        print("four viewers: " + ", ".join(f"{rate:5.1f}" for rate, _ in four) + " frames/s  "
              f"(lowest {min(rate for rate, _ in four) / fps:.0%} of fps)")
        print(f"server RSS: {idle_rss:.0f} MB before viewers, {rss_now:.0f} MB after four viewers (peak {rss_peak:.0f} MB)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
