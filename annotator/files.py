"""Who may read which file in the default storage, and the URL that reads it.

Display images (display/<32 random hex>.jpg) are the only public files: the worker pages show them. Everything
else (originals named after their image keys, exports, byproduct reports, training checkpoints, configs and
metrics) is read through the authenticated files view (annotator.views.StoredFileView), which checks the reader
here and streams a local file or redirects to a short-lived signed URL of the bucket.
"""
import posixpath

from django.conf import settings
from django.core.files.storage import default_storage
from django.urls import reverse

PUBLIC_PREFIX = "display/"


def _staff(user):
    return bool(user and user.is_authenticated and user.is_staff)


# The first folder of a stored name and who may read it; a name under no folder listed here is for staff. Apps that
# annotator must not import (training) add their folder with register_reader when they load.
READERS = {
    "exports": _staff,
    "reports": _staff,
    "images": _staff,
}


def register_reader(folder, may_read_folder):
    READERS[folder] = may_read_folder


def is_public(name):
    return name.startswith(PUBLIC_PREFIX) and "/" not in name[len(PUBLIC_PREFIX):]


def is_clean_name(name):
    """False for a name that climbs out of the storage or is not written the one normal way."""
    return bool(name) and not name.startswith("/") and "\\" not in name and posixpath.normpath(name) == name


def may_read(user, name):
    folder = name.split("/", 1)[0]
    return is_public(name) or READERS.get(folder, _staff)(user)


def url(name, request=None):
    """The URL that reads a stored file: the storage's own for a display image, else the files view's (absolute
    when a request is given, as the API's `format: uri` fields are)."""
    if is_public(name):
        location = default_storage.url(name)
    else:
        location = reverse("stored-file", kwargs={"name": name})
    return request.build_absolute_uri(location) if request is not None and location.startswith("/") else location


def signed_url(name):
    """A bucket URL for one file that expires after FILE_URL_MAX_AGE seconds."""
    return default_storage.url(name, expire=settings.FILE_URL_MAX_AGE)


def is_local():
    try:
        default_storage.path("")
    except NotImplementedError:
        return False
    return True
