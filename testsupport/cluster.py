"""A whole local cluster for tests and benches (scripts/cluster.sh): PostgreSQL, Redis, Janus in
its network namespace, two web processes behind HAProxy, two stage workers, a Celery worker. Its
ports and Janus's addresses are its own (TEST_CLUSTER_* overrides them), so it runs beside a test
run's PostgreSQL and Redis or another cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass
class LocalCluster:
    port: int = int(os.environ.get("TEST_CLUSTER_PORT", "9310"))  # the load balancer; web processes port+1, port+2
    pg_port: int = int(os.environ.get("TEST_CLUSTER_PG_PORT", "55452"))
    redis_port: int = int(os.environ.get("TEST_CLUSTER_REDIS_PORT", "56399"))
    janus_subnet: int = int(os.environ.get("TEST_CLUSTER_JANUS_SUBNET", "215"))  # Janus at 10.<n>.0.2
    env: dict = field(init=False)

    def __post_init__(self) -> None:
        n = self.janus_subnet
        self.env = {"CLUSTER_PORT": str(self.port), "CLUSTER_WEB_PORTS": f"{self.port + 1} {self.port + 2}",
                    "CLUSTER_PG_PORT": str(self.pg_port), "CLUSTER_REDIS_PORT": str(self.redis_port),
                    "CLUSTER_RUN_DIR": f"/tmp/tp-cluster-test-{self.port}",
                    "JANUS_NETNS": f"tp-janus-t{n}", "JANUS_VETH": f"tpjt{n}", "JANUS_HOST_ADDR": f"10.{n}.0.1",
                    "JANUS_NS_ADDR": f"10.{n}.0.2", "JANUS_ICE_PORTS": "42000-42999",
                    "JANUS_RTP_PORTS": "43000-43999"}

    @property
    def run_dir(self) -> Path:
        return Path(self.env["CLUSTER_RUN_DIR"])

    @property
    def lb(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def web(self) -> tuple[str, str]:
        """Web processes A and B, addressed directly (not through the load balancer)."""
        return f"http://127.0.0.1:{self.port + 1}", f"http://127.0.0.1:{self.port + 2}"

    @staticmethod
    def why_not() -> str | None:
        if os.geteuid() != 0:
            return "needs root (network namespaces for Janus)"
        for tool in ("janus", "haproxy", "redis-server"):
            if not shutil.which(tool):
                return f"{tool} is not installed"
        return None

    def script(self, command: str, timeout: float = 180) -> subprocess.CompletedProcess:
        """Run `command` in bash with scripts/cluster.sh sourced, in this cluster's environment."""
        return subprocess.run(["bash", "-c", f"source scripts/cluster.sh; {command}"], cwd=REPO, capture_output=True,
                              text=True, timeout=timeout, env={**os.environ, **self.env})

    def start(self) -> None:
        self.script("cluster_stop", timeout=60)
        started = self.script("cluster_start", timeout=240)
        settings = (self.run_dir / "cluster.env").read_text() if (self.run_dir / "cluster.env").exists() else ""
        if started.returncode != 0 or "SESSION_MEDIA_SERVER=janus" not in settings:
            logs = "\n".join(f"== {log.name}\n{log.read_text()[-1500:]}" for log in (self.run_dir / "logs").glob("*.log"))
            self.stop()
            raise RuntimeError(f"the cluster did not start:\n{started.stdout}\n{started.stderr}\n{logs}")

    def stop(self) -> None:
        self.script("cluster_stop", timeout=120)

    def manage(self, *args: str, env: dict | None = None) -> str:
        """`manage.py` with the cluster's settings (and `env`'s variables, such as
        DJANGO_SUPERUSER_PASSWORD for createsuperuser --noinput); its output."""
        env = {**os.environ, **(env or {})}
        for line in (self.run_dir / "cluster.env").read_text().splitlines():
            name, _, value = line.partition("=")
            env[name] = value
        env.pop("DJANGO_SETTINGS_MODULE", None)
        return subprocess.run([str(REPO / ".venv/bin/python"), "manage.py", *args], cwd=REPO, env=env, check=True,
                              capture_output=True, text=True, timeout=120).stdout

    def api_key(self, name: str = "cluster-test") -> str:
        return self.manage("create_api_key", name).strip().splitlines()[-1]

    def pid(self, process: str) -> int:
        """The pid of one of its processes: "stage-worker-1", "web-1", ..."""
        return int((self.run_dir / f"{process}.pid").read_text())

    def restart_janus(self) -> subprocess.CompletedProcess:
        return self.script("set -a; source $CLUSTER_RUN_DIR/state.env; set +a; janus_restart", timeout=60)

    def start_worker(self, name: str) -> subprocess.CompletedProcess:
        return self.script(f"_cluster_spawn stage-{name} $CLUSTER_PYTHON manage.py stage_worker --name {name}")

    def _state(self) -> dict:
        # state.env holds `export NAME=value` lines (scripts/cluster.sh's _cluster_save)
        return {name: value.strip("'\"") for name, value in (
            line.removeprefix("export ").split("=", 1)
            for line in (self.run_dir / "state.env").read_text().split("\n") if "=" in line)}

    def janus_pid(self) -> int:
        return int(Path(self._state()["JANUS_DIR"], "janus.pid").read_text())

    def redis_pid(self) -> int:
        return int(Path(self._state()["BACKENDS_DIR"], "redis.pid").read_text())

    def tutor_with_avatar(self, api_key: str, video: Path, name: str = "Ada") -> int:
        """A tutor whose avatar is prepared from `video` (on the cluster's Celery worker); its id."""
        status, body = call("POST", f"{self.lb}/v1/tutors", {"name": name}, api_key)
        assert status == 201, body
        tutor_id = body["tutor_id"] if "tutor_id" in body else body["id"]
        boundary = "----cluster"
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
                 for key, value in (("avatar_id", f"avatar_tutor_{tutor_id}"), ("tutor_id", str(tutor_id)))]
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="video_file"; filename="v.mp4"\r\n'
                     "Content-Type: video/mp4\r\n\r\n".encode() + video.read_bytes() + b"\r\n")
        parts.append(f"--{boundary}--\r\n".encode())
        request = urllib.request.Request(f"{self.web[0]}/v1/avatars/upload?wait=300", data=b"".join(parts),
                                         method="POST", headers={"X-API-Key": api_key,
                                                                 "Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(request, timeout=330) as response:
            body = json.loads(response.read())
        assert body["state"] == "ready", body
        return tutor_id


def running(cluster: LocalCluster):
    """A module fixture's body: the cluster started (the test skipped when it cannot be, failed
    when it does not start), yielded, stopped."""
    import pytest

    reason = LocalCluster.why_not()
    if reason:
        pytest.skip(reason)
    try:
        cluster.start()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield cluster
    finally:
        cluster.stop()


def call(method: str, url: str, body: dict | None, api_key: str | None) -> tuple[int, dict | None]:
    from testsupport.webrtc_viewer import call_json

    return call_json(method, url, body, api_key)


def wait_for(predicate, timeout: float, what: str, step: float = 0.1):
    """The first truthy value of `predicate()`, asked every `step` s; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(step)
