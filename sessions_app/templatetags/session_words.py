"""Session facts in words for the staff pages."""

from django import template
from django.utils.html import format_html

from sessions_app.models import END_REASON_WORDS

register = template.Library()


@register.filter
def end_reason_words(reason: str | None):
    """Why a session ended, in words, with its code beside them (what the API says)."""
    if not reason:
        return ""
    words = END_REASON_WORDS.get(reason)
    if words is None:
        return format_html("<code>{}</code>", reason)
    return format_html('{} <code class="code">{}</code>', words, reason)
