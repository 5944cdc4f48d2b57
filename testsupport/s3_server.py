"""A real S3-compatible server for tests: moto's server mode (PyPI, requirements-test.txt) on a
free loopback port, with one bucket, talked to over HTTP like any S3 endpoint."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from testsupport.live_server import free_port

BUCKET = "tutor-avatars"
MOTO_SERVER = shutil.which("moto_server", path=str(Path(sys.executable).parent))


@dataclass
class S3Server:
    url: str
    process: subprocess.Popen
    client: object  # a boto3 S3 client for this server

    def keys(self, prefix: str) -> list[str]:
        listed = self.client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
        return sorted(item["Key"] for item in listed)

    def environment(self) -> dict[str, str]:
        """The settings (environment variables) that put a server's files in this bucket."""
        return {"AVATAR_S3_BUCKET": BUCKET, "AVATAR_S3_ENDPOINT_URL": self.url, "AVATAR_S3_ACCESS_KEY_ID": "test",
                "AVATAR_S3_SECRET_ACCESS_KEY": "test", "AVATAR_S3_REGION": "us-east-1"}

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def start_s3_server() -> S3Server:
    """Start moto's server and create the bucket; raises RuntimeError when moto is missing."""
    if MOTO_SERVER is None:
        raise RuntimeError("moto_server is not installed (requirements-test.txt installs moto[server])")
    import boto3

    port = free_port()
    process = subprocess.Popen([MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=url, aws_access_key_id="test", aws_secret_access_key="test",
                          region_name="us-east-1")
    for _ in range(100):
        try:
            client.create_bucket(Bucket=BUCKET)
            return S3Server(url, process, client)
        except Exception:  # not listening yet
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("moto's S3 server did not start within 10 s")
