"""Avatar facts in words for the staff pages."""

from django import template

from avatars.pipeline.prepare import STAGE_WORDS

register = template.Library()


@register.filter
def stage_words(stage: str | None) -> str:
    """A run's stage code ("frames") as people read it ("tracking the face")."""
    if not stage:
        return ""
    return STAGE_WORDS.get(stage, stage)
