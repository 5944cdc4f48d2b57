"""The server's memory while it takes the largest audio body the speak endpoint allows (120 s of
16-bit mono at 192 kHz, 46 MB), one at a time and four at once, against a real server: its
resident memory (VmRSS, sampled every 10 ms) before and at its peak.

Measured on a 2-core machine: with the whole-utterance float64 FFT and no bound on bodies decoded
at once, +792 MB for one body and +3167 MB for four at once; read in place, resampled in chunks
and at most SESSION_SPEAK_AUDIO_AT_ONCE (2) at once, +69 MB and +210 MB.

    python bench/speak_memory_bench.py [work folder]
"""

import json
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import numpy as np
from testsupport.live_server import start_live_server
from testsupport.videos import drifting, write_face_video
from testsupport.audio import wav_bytes

folder = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="speak-memory-"))
folder.mkdir(parents=True, exist_ok=True)
clip = folder / "t.mp4"
write_face_video(clip, width=640, height=360, seconds=2.0, motion=drifting(640, 360, period_s=2.0))
(folder / "data").mkdir(exist_ok=True)
server = start_live_server(folder / "data", extra_env={"SESSION_MAX_QUEUED_UTTERANCES": "50"})
try:
    key = server.api_key()
    server.upload_ready_avatar(key, clip, "a1")
    tutor = server.create_tutor(key, "T")
    req = urllib.request.Request(f"{server.url}/v1/sessions", method="POST", data=json.dumps({"tutor_id": tutor, "student_id": 1, "avatar_id": "a1"}).encode(), headers={"X-API-Key": key, "Content-Type": "application/json"})
    sid = json.loads(urllib.request.urlopen(req).read())["session_id"]
    rate = 192000
    body = wav_bytes(np.tile((np.sin(2*np.pi*440*np.arange(rate)/rate)*8000).astype(np.int16), 120), rate)
    pid = server.process.pid
    def rss():
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS"): return int(line.split()[1]) * 1024
    def speak():
        r = urllib.request.Request(f"{server.url}/v1/sessions/{sid}/speak", method="POST", data=body, headers={"X-API-Key": key, "Content-Type": "audio/wav"})
        try:
            with urllib.request.urlopen(r, timeout=300) as resp: return resp.status
        except urllib.error.HTTPError as e: return e.code
    for parallel in (1, 4):
        time.sleep(2)
        base = rss(); peak = base; results = []
        threads = [threading.Thread(target=lambda: results.append(speak())) for _ in range(parallel)]
        for t in threads: t.start()
        while any(t.is_alive() for t in threads):
            peak = max(peak, rss()); time.sleep(0.01)
        print(f"{parallel} at once: answers {sorted(results)}, RSS {base/2**20:.0f} MB -> peak {peak/2**20:.0f} MB (+{(peak-base)/2**20:.0f} MB), after {rss()/2**20:.0f} MB", flush=True)
finally:
    server.stop()
