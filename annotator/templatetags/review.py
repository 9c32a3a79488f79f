"""Template filters of the review console."""
from django import template

register = template.Library()


@register.filter
def minutes(milliseconds):
    """Working time in ms as "9.8 min" (empty when nothing was measured)."""
    if not milliseconds:
        return ""
    return f"{milliseconds / 60000:.1f} min"
