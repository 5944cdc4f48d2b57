"""GET /docs/api.md: the HTTP and WebSocket contract (docs/api.md) as a readable page, so the API
docs page and the home page can link it; `?raw=1` answers the Markdown file itself."""

from __future__ import annotations

from functools import lru_cache

import markdown
from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET


def _contract_text() -> str:
    return (settings.BASE_DIR / "docs" / "api.md").read_text(encoding="utf-8")


@lru_cache(maxsize=4)
def _as_html(text: str) -> str:
    # The file is the repository's own (no user input): its HTML is trusted as written.
    return markdown.markdown(text, extensions=["tables", "fenced_code", "toc", "sane_lists"], output_format="html")


@require_GET
def api_contract(request):
    text = _contract_text()
    if request.GET.get("raw"):
        return HttpResponse(text, content_type="text/markdown; charset=utf-8")
    return render(request, "api_contract.html", {"contract": mark_safe(_as_html(text))})
