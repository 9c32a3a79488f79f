"""Category icons drawn by us (no third-party images): a coloured tile with the category's name."""
import hashlib
import textwrap
from xml.sax.saxutils import escape


def icon_colour(key):
    hue = int(hashlib.sha256(key.encode()).hexdigest()[:4], 16) % 360
    return f"hsl({hue}, 60%, 45%)"


def icon_svg(category):
    lines = textwrap.wrap(category.name, width=10)[:3] or [category.key]
    first_y = 32 - 7 * (len(lines) - 1)
    text = "".join(
        f'<text x="32" y="{first_y + 14 * i}" text-anchor="middle" dominant-baseline="middle">{escape(line)}</text>'
        for i, line in enumerate(lines)
    )
    label = escape(category.name, {'"': "&quot;"})
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64" role="img" '
        f'aria-label="{label}">'
        f'<rect x="2" y="2" width="60" height="60" rx="12" fill="{icon_colour(category.key)}"/>'
        f'<g font-family="sans-serif" font-size="11" font-weight="bold" fill="#fff">{text}</g></svg>'
    )
