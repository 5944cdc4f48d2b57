"""A real server for browser and server tests: `python -m tutorplatform.server` (uvicorn) on a free
loopback port, in its own process, with its own data folder, database and staff user, exactly as
scripts/serve.sh would start it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class LiveServer:
    url: str
    data_dir: Path
    username: str
    password: str
    process: subprocess.Popen
    env: dict[str, str]

    def api_key(self) -> str:
        """A new API key of this server (the command prints it alone on the last line)."""
        result = subprocess.run([sys.executable, str(ROOT / "manage.py"), "create_api_key", "browser-test"],
                                env=self.env,
                                cwd=ROOT, check=True, capture_output=True, text=True)
        return result.stdout.strip().splitlines()[-1]

    def upload_ready_avatar(self, key: str, clip: Path, avatar_id: str, wait_s: int = 180) -> dict:
        """Upload `clip` through POST /v1/avatars/upload?wait= and return the avatar, ready."""
        boundary = "liveserverboundary"
        body = b"".join([
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"avatar_id\"\r\n\r\n{avatar_id}\r\n".encode(),
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"video_file\"; filename=\"{clip.name}\"\r\n"
            "Content-Type: video/mp4\r\n\r\n".encode(), clip.read_bytes(), f"\r\n--{boundary}--\r\n".encode(),
        ])
        request = urllib.request.Request(f"{self.url}/v1/avatars/upload?wait={wait_s}", data=body, method="POST",
                                         headers={"X-API-Key": key,
                                                  "Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(request, timeout=wait_s + 30) as response:
            avatar = json.loads(response.read())
        if avatar.get("state") != "ready":
            raise RuntimeError(f"the avatar is not ready: {avatar}")
        return avatar

    def create_tutor(self, key: str, name: str) -> int:
        """A tutor made through POST /v1/tutors; its id."""
        request = urllib.request.Request(f"{self.url}/v1/tutors", method="POST", data=json.dumps({"name": name}).encode(),
                                         headers={"X-API-Key": key, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(json.loads(response.read())["tutor_id"])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def server_environment(data_dir: Path) -> dict[str, str]:
    """The environment of a real server: this one's, but with the server's own data folder and
    the production defaults (the test settings turn start-up work off in the test process)."""
    env = {**os.environ, "DATA_DIR": str(data_dir), "DJANGO_SETTINGS_MODULE": "tutorplatform.settings"}
    for name in ("AVATAR_REQUEUE_ON_START", "SESSION_IDLE_SWEEP"):
        env.pop(name, None)
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_live_server(data_dir: Path, username: str = "staff", password: str = "staff-pass-123",
                      extra_env: dict[str, str] | None = None) -> LiveServer:
    env = {**server_environment(data_dir), **(extra_env or {})}
    env["DJANGO_SUPERUSER_PASSWORD"] = password
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run(manage + ["migrate", "--noinput", "-v0"], env=env, check=True, cwd=ROOT)
    subprocess.run(manage + ["collectstatic", "--noinput", "-v0"], env=env, check=True, cwd=ROOT)
    made = subprocess.run(manage + ["createsuperuser", "--noinput", "--username", username, "--email", "staff@example.com"],
                          env=env, cwd=ROOT, capture_output=True, text=True)
    if made.returncode != 0 and "already taken" not in made.stderr:  # a restart finds its user there
        raise RuntimeError(f"createsuperuser failed: {made.stderr}")
    port = free_port()
    log = open(data_dir / "server.log", "a")
    process = subprocess.Popen(
        [sys.executable, "-m", "tutorplatform.server"],
        env={**env, "HOST": "127.0.0.1", "PORT": str(port)}, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {(data_dir / 'server.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                if response.status == 200:
                    return LiveServer(url, data_dir, username, password, process, env)
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the server did not answer /health within 30 s")
