"""Pages of a list for the staff pages: which page was asked for and how to link the others."""

from __future__ import annotations


def page_of(request, total: int, page_size: int) -> tuple[int, dict]:
    """The page asked for (`?page=`, from 1, clamped to the pages there are) and what the pager
    template needs."""
    pages = max(1, -(-total // page_size))
    try:
        number = min(max(1, int(request.GET.get("page", 1))), pages)
    except ValueError:
        number = 1
    return number, {"page": number, "pages": pages, "total": total,
                    "previous": number - 1 if number > 1 else None, "next": number + 1 if number < pages else None}
