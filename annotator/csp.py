"""Content-Security-Policy of our HTML pages: scripts and styles only from our static files, no inline code.

The pages keep their data in `<script type="application/json">` blocks (json_script), which are not scripts to
the browser, so no nonce is needed. Images may also come from the file storage's origin (S3, a CDN).
"""
from functools import wraps
from urllib.parse import urlsplit

from django.conf import settings
from django.core.files.storage import default_storage


def origin(url):
    """"https://host:port" of an absolute URL, or None for a path on our own origin."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def policy(frame_ancestors, **more_sources):
    """The policy's text; frame_ancestors is the list of sources for frame-ancestors (first, as before), and
    more_sources adds sources to a directive (style_src=["'unsafe-inline'"] for style-src)."""
    static = origin(settings.STATIC_URL)
    media = origin(default_storage.url("csp-probe"))
    directives = {
        "frame-ancestors": frame_ancestors,
        "default-src": ["'self'"],
        "script-src": ["'self'", static],
        "style-src": ["'self'", static],
        # data: is the pages' empty favicon; the storage's origin serves the images to annotate.
        "img-src": ["'self'", "data:", static, media],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
    }
    for name, sources in more_sources.items():
        directives[name.replace("_", "-")] = [*directives.get(name.replace("_", "-"), []), *sources]
    return "; ".join(
        f"{name} {' '.join(dict.fromkeys(source for source in sources if source))}"
        for name, sources in directives.items()
    )


def staff_page_policy(view):
    """The policy for a staff page: nothing may frame it (like X-Frame-Options: DENY)."""
    @wraps(view)
    def with_policy(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response.setdefault("Content-Security-Policy", policy(["'none'"]))
        return response
    return with_policy


def docs_page_policy(view):
    """The API docs (Swagger UI, ReDoc, from our static files): nothing from another origin, not even an image (ReDoc
    asks a CDN for its "API docs by Redocly" logo; blocked, the logo hides). Both set inline styles; ReDoc searches in
    a worker made from a blob."""
    @wraps(view)
    def with_policy(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response.setdefault("Content-Security-Policy", policy(
            ["'none'"], style_src=["'unsafe-inline'"], font_src=["'self'", "data:"], worker_src=["'self'", "blob:"]))
        return response
    return with_policy
