"""Candidate ids: the only names the worker's browser ever sees for the images of a page.

An image key gives the answer away (an ImageNet file stem starts with its class's wnid, and the page names the
class; a COCO image id finds the public annotations), so a page shows each of its images under an id made from
the HIT's secret `Hit.candidate_key`, the page and the image. The id means nothing outside that page: the same image
has another id on every other page, and nothing in the id tells in-class candidates from the others. The server
maps ids back to images (annotator.worker.selectors.page_candidates); byproduct records store the image itself, so
exports, review and playback keep the real keys. The events journal (EventBatch) keeps what the page sent:
`image_keys(hit)` turns its ids back into keys.
"""
import hashlib
import hmac

ID_HEX_CHARS = 16


def candidate_id(candidate_key, page_pk, image_pk):
    """The id page `page_pk` gives image `image_pk` (hex, ID_HEX_CHARS long), keyed by its HIT's candidate_key."""
    message = f"{page_pk}:{image_pk}".encode()
    return hmac.new(candidate_key.encode(), message, hashlib.sha256).hexdigest()[:ID_HEX_CHARS]


def image_keys(hit):
    """{(page index, candidate id): image key} of every image the HIT's pages show (both task kinds)."""
    from annotator.models import HitPage, PageItem

    keys = {}
    items = PageItem.objects.filter(page__hit=hit).values_list("page_id", "page__index", "image_id", "image__key")
    for page_pk, index, image_pk, key in items:
        keys[index, candidate_id(hit.candidate_key, page_pk, image_pk)] = key
    pages = HitPage.objects.filter(hit=hit, image__isnull=False).values_list("pk", "index", "image_id", "image__key")
    for page_pk, index, image_pk, key in pages:
        keys[index, candidate_id(hit.candidate_key, page_pk, image_pk)] = key
    return keys
