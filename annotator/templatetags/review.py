"""Template filters of the review console."""
from django import template

register = template.Library()


@register.filter
def minutes(milliseconds):
    """Working time in ms as "9.8 min" (empty when nothing was measured)."""
    if not milliseconds:
        return ""
    return f"{milliseconds / 60000:.1f} min"


def _readable(value):
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None or value == "" or value == [] or value == {}:
        return "none"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        if "message" in value:  # a rule's reason
            return str(value["message"])
        return ", ".join(f"{key.replace('_', ' ')} {_readable(item)}" for key, item in value.items())
    if isinstance(value, list):
        return "; ".join(_readable(item) for item in value)
    return str(value)


@register.filter
def event_details(data):
    """An event's data as (label, text) rows a person reads: nested reasons and numbers spelled out, not dicts."""
    return [(key.replace("_", " "), _readable(value)) for key, value in (data or {}).items()]
