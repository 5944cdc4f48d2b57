"""GET /docs/api.md: the HTTP and WebSocket contract (docs/api.md), as the server's own page, so the
API docs page and the home page can link it."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.http import require_GET


@require_GET
def api_contract(request):
    text = (settings.BASE_DIR / "docs" / "api.md").read_text(encoding="utf-8")
    return HttpResponse(text, content_type="text/markdown; charset=utf-8")
