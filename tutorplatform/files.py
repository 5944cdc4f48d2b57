"""Files this server hands out itself: the static files (when SERVE_STATIC) and the favicon."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.http import FileResponse, HttpResponse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET
from django.views.static import serve

FAVICON = (Path(__file__).resolve().parent / "favicon.ico").read_bytes()


@require_GET
@cache_control(max_age=86400, public=True)
def favicon(request):
    """Browsers ask for /favicon.ico on every page; answering it keeps a 404 out of the log."""
    return HttpResponse(FAVICON, content_type="image/x-icon")


def static_file(request, path: str):
    """Django's static file view, its file answered as one body. Its FileResponse streams through a
    synchronous iterator, which the ASGI handler can only drain in a thread (reading the whole
    file into a list anyway), warning "StreamingHttpResponse must consume synchronous iterators"
    for every file served. The files are small (the largest, Swagger UI's bundle, ~1.5 MB)."""
    response = serve(request, path, document_root=settings.STATIC_ROOT)
    if not isinstance(response, FileResponse):
        return response  # 304 Not Modified, or a 404
    try:
        body = b"".join(response.streaming_content)
    finally:
        response.close()
    whole = HttpResponse(body, status=response.status_code)
    for header, value in response.headers.items():
        whole.headers[header] = value
    whole.headers["Content-Length"] = str(len(body))
    return whole
