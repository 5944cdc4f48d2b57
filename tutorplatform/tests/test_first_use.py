"""What a new user meets first: the login page, the contract page, the favicon, the static files,
a path with a stray slash, and the benchmark script's help."""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]


def test_the_login_page_carries_the_products_name(db):
    page = Client().get("/admin/login/?next=/staff/").content.decode()
    assert "Tutor avatars" in page
    assert "Django administration" not in page and "Django site admin" not in page


def test_the_contract_is_a_readable_page_and_its_markdown_stays_available(db):
    page = Client().get("/docs/api.md")
    html = page.content.decode()
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    assert "<table>" in html and "<h2" in html and "<pre><code" in html  # tables, headings and code rendered
    assert "| field |" not in html and "```" not in html  # no Markdown left raw
    assert 'href="/docs/api.md?raw=1"' in html
    raw = Client().get("/docs/api.md?raw=1")
    assert raw["Content-Type"].startswith("text/markdown")
    assert raw.content.decode() == (ROOT / "docs" / "api.md").read_text(encoding="utf-8")


def test_every_page_has_a_favicon(db):
    response = Client().get("/favicon.ico")
    assert response.status_code == 200 and response["Content-Type"] == "image/x-icon"
    assert response.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert 'rel="icon" href="/favicon.ico"' in Client().get("/").content.decode()


async def asgi_get(path: str) -> tuple[int, dict, bytes]:
    """GET `path` through Django's ASGI handler, as the server runs it (the test clients skip the
    part that drains a streaming response)."""
    import asyncio

    from django.core.handlers.asgi import ASGIHandler

    sent = []
    asked = False

    async def receive():
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays connected

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"localhost")], "client": ("127.0.0.1", 5000), "server": ("localhost", 9000)}
    await ASGIHandler()(scope, receive, send)
    start = sent[0]
    headers = {key.decode().lower(): value.decode() for key, value in start["headers"]}
    return start["status"], headers, b"".join(message.get("body", b"") for message in sent[1:])


@pytest.mark.django_db(transaction=True)
def test_static_files_are_served_under_asgi_without_the_streaming_warning(settings, tmp_path):
    """Served by Django's FileResponse, every static file warned "StreamingHttpResponse must
    consume synchronous iterators" under the ASGI server."""
    import asyncio

    settings.STATIC_ROOT = tmp_path / "static"
    (tmp_path / "static" / "admin").mkdir(parents=True)
    body = b"body { color: #1d2430; }\n" * 500
    (tmp_path / "static" / "admin" / "base.css").write_bytes(body)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status, headers, content = asyncio.run(asgi_get("/static/admin/base.css"))
    assert status == 200 and content == body
    assert headers["content-type"].startswith("text/css") and headers["content-length"] == str(len(body))
    assert not [w for w in caught if "synchronous iterators" in str(w.message)]
    assert asyncio.run(asgi_get("/static/admin/none.css"))[0] == 404


def test_a_stray_trailing_slash_names_the_endpoint_that_exists(client_with_key):
    answer = client_with_key.get("/v1/avatars/")
    assert answer.status_code == 404
    body = answer.json()
    assert body["code"] == "not_found" and body["details"] == {"path": "/v1/avatars"}
    assert "/v1/avatars (without the trailing slash)" in body["message"]
    assert client_with_key.post("/v1/tutors/", {}, format="json").json()["details"] == {"path": "/v1/tutors"}
    plain = client_with_key.get("/v1/nothing/").json()
    assert plain["message"] == "No endpoint at /v1/nothing/." and plain["details"] == {}


def test_bench_help_says_what_each_benchmark_measures_without_installing_anything(tmp_path):
    (tmp_path / "scripts").mkdir()
    for name in ("bench.sh", "venv.sh"):
        shutil.copy(ROOT / "scripts" / name, tmp_path / "scripts" / name)
    result = subprocess.run(["bash", "scripts/bench.sh", "--help"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / ".venv").exists()  # nothing was installed
    for name in ("pipeline", "detectors", "stream", "speak", "webrtc", "load", "priority"):
        line = next(line for line in result.stdout.splitlines() if line.strip().startswith(name))
        assert "min" in line  # how long it takes
    assert "lip-sync" in result.stdout and "recall" in result.stdout
    unknown = subprocess.run(["bash", "scripts/bench.sh", "nonsense"], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert unknown.returncode == 2 and "usage" in unknown.stderr and not (tmp_path / ".venv").exists()
