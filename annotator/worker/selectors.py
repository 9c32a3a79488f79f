"""Reads for the worker path: page content, category groups, resume data, assignment progress."""
import logging
import math
import threading
import time
from collections import OrderedDict
from urllib.parse import urlsplit

from django.db import connection

from annotator import images
from annotator.candidates import candidate_id
from annotator.models import (
    Assignment,
    Category,
    EventBatch,
    Hit,
    HitPage,
    PageItem,
    PageSubmission,
    Provider,
    TaskKind,
)
from annotator.providers import prolific
from annotator.worker.icons import icon_url
from annotator.worker.tokens import completion_code

logger = logging.getLogger(__name__)

OTHER_GROUP = "other"


def display_url(image):
    """The URL of the image's display version, made now if it has none yet (an import with --defer-display whose
    task has not run): the original's name carries the image key, so a worker is never sent there."""
    if not image.display_file:
        logger.warning("image %s had no display version when a page showed it: made it now", image.pk)
        images.make_display_version(image)
    return image.display_file.url


def display_srcset(image):
    """The img srcset of the display versions ("" without a 2x version): high-density screens take the 2x one."""
    if not image.display_file_2x:
        return ""
    return f"{image.display_file.url} 1x, {image.display_file_2x.url} 2x"


def page_count(hit):
    return hit.pages.count()


def page_of(hit, index):
    return HitPage.objects.select_related("category", "image").filter(hit=hit, index=index).first()


def saved_pages(assignment):
    """{page index: client save id} of the assignment's saved pages."""
    return state_and_saved_pages(assignment)[1]


def state_and_saved_pages(assignment):
    return _state_and_saved_pages(assignment, lock=False)


def locked_state_and_saved_pages(assignment):
    """(state, saved_pages()) of the assignment, its row locked until the end of the transaction: one round trip."""
    return _state_and_saved_pages(assignment, lock=True)


def _state_and_saved_pages(assignment, lock):
    """Every page read and save asks for this, so the SQL is written here rather than compiled by the ORM."""
    table = connection.ops.quote_name
    sql = (
        f"SELECT a.state, p.{table('index')}, s.client_save_id FROM {table(Assignment._meta.db_table)} a"
        f" LEFT JOIN {table(PageSubmission._meta.db_table)} s ON s.assignment_id = a.id"
        f" LEFT JOIN {table(HitPage._meta.db_table)} p ON p.id = s.page_id"
        " WHERE a.id = %s FOR UPDATE OF a"
    )
    if not lock or connection.vendor == "sqlite":  # SQLite locks the whole database for the transaction instead
        sql = sql.removesuffix(" FOR UPDATE OF a")
    save_id = PageSubmission._meta.get_field("client_save_id")
    with connection.cursor() as cursor:
        cursor.execute(sql, [assignment.pk])
        rows = cursor.fetchall()
    if not rows:
        raise Assignment.DoesNotExist(f"no assignment {assignment.pk}")
    saved = {
        index: save_id.to_python(client_save_id) for _, index, client_save_id in rows if client_save_id is not None
    }
    return rows[0][0], saved


def page_candidates(page, candidate_key):
    """{candidate id: (image pk, in_class)} of an ImageNet-style page, in grid order (annotator.candidates)."""
    rows = PageItem.objects.filter(page=page).order_by("position").values_list("image_id", "in_class")
    return {candidate_id(candidate_key, page.pk, image_pk): (image_pk, in_class) for image_pk, in_class in rows}


def page_image_id(page, candidate_key):
    """The candidate id of a COCO-style page's image."""
    return candidate_id(candidate_key, page.pk, page.image_id)


class _OpenWorkCache:
    """A per-process LRU of what stays fixed while workers have assignments open: a HIT (with its batch) and its
    pages, a page's candidates, a dataset's category keys. Keyed by their ids, it is shared by every assignment of
    a HIT, so a worker's event flushes and page saves after the first cost no query here (a worker sends a dozen
    requests per page)."""

    def __init__(self, size):
        self.size, self.entries, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key, compute, max_age_s=None):
        """The cached value, or compute() (kept unless None); max_age_s: recompute once it is that old."""
        now = time.monotonic()
        with self.lock:
            entry = self.entries.get(key)
            if entry is not None and entry[1] > now:
                self.entries.move_to_end(key)
                return entry[0]
        value = compute()
        if value is not None:
            with self.lock:
                self.entries[key] = (value, now + max_age_s if max_age_s is not None else math.inf)
                self.entries.move_to_end(key)
                if len(self.entries) > self.size:
                    self.entries.popitem(last=False)
        return value


_open_work = _OpenWorkCache(size=20_000)


def _assignment_read():
    """(SQL, attribute names, converters) of the read of one Assignment by uuid, with its worker's blocked flag, on
    this database, made once.

    The worker API authenticates every request with it: the ORM would compile the same query each time (about
    half a millisecond of CPU, a tenth of a flush), and this converts the row exactly as the ORM's compiler does.
    """
    read = _assignment_reads.get(connection.vendor)
    if read is None:
        meta = Assignment._meta
        quote = connection.ops.quote_name
        fields = meta.concrete_fields
        worker_table = quote(meta.get_field("worker").related_model._meta.db_table)
        sql = (
            f"SELECT {', '.join('a.' + quote(field.column) for field in fields)}, w.blocked"
            f" FROM {quote(meta.db_table)} a JOIN {worker_table} w ON w.id = a.{quote(meta.get_field('worker').column)}"
            f" WHERE a.{quote(meta.get_field('uuid').column)} = %s"
        )
        converters = []
        for position, field in enumerate(fields):
            column = field.get_col(meta.db_table)
            functions = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
            if functions:
                converters.append((position, column, functions))
        read = _assignment_reads[connection.vendor] = (sql, [field.attname for field in fields], converters)
    return read


_assignment_reads = {}


def assignment_for_token(assignment_uuid):
    """The Assignment a worker token names, read fresh (its state decides what it may still write), with its HIT
    and batch from the per-process cache (the worker path uses only what never changes there: ids, kind, dataset,
    candidate key; submit re-reads them under lock) and `worker_blocked` (whether its worker is blocked now).
    None when there is no such assignment."""
    sql, names, converters = _assignment_read()
    with connection.cursor() as cursor:
        cursor.execute(sql, [Assignment._meta.get_field("uuid").get_db_prep_value(assignment_uuid, connection)])
        row = cursor.fetchone()
    if row is None:
        return None
    values = list(row[:-1])
    for position, column, functions in converters:
        for convert in functions:
            values[position] = convert(values[position], column, connection)
    assignment = Assignment.from_db(connection.alias, names, values)
    assignment.worker_blocked = bool(row[-1])
    hit_id = assignment.hit_id
    hit = _open_work.get(("hit", hit_id), lambda: Hit.objects.select_related("batch").get(pk=hit_id))
    Assignment.hit.field.set_cached_value(assignment, hit)
    return assignment


def hit_pages(hit_id):
    """{index: HitPage with its category and image} of a HIT, all read at once."""
    def read():
        return {page.index: page for page in HitPage.objects.select_related("category", "image").filter(hit_id=hit_id)}

    return _open_work.get(("pages", hit_id), read)


def assignment_page(assignment, index):
    """The assignment's page `index` (with its category and image), or None."""
    return hit_pages(assignment.hit_id).get(index)


def assignment_page_count(assignment):
    return len(hit_pages(assignment.hit_id))


def assignment_page_candidates(assignment, page):
    """page_candidates() of one of the assignment's pages."""
    key = assignment.hit.candidate_key
    return _open_work.get(("candidates", page.pk), lambda: page_candidates(page, key))


def assignment_category_keys(assignment):
    """category_keys_and_group_count() of the assignment's dataset."""
    dataset_id = assignment.hit.batch.dataset_id
    return _open_work.get(("categories", dataset_id), lambda: category_keys_and_group_count(dataset_id))


def forget_open_work():
    """Empty the per-process cache (tests: a new test database reuses the ids of the last one)."""
    with _open_work.lock:
        _open_work.entries.clear()


def grouped_categories(dataset):
    """[(group name, [Category])]: categories by supercategory, groups in order of their first category index."""
    groups = {}
    categories = Category.objects.filter(dataset=dataset).order_by("index").only("pk", "key", "name", "supercategory")
    for category in categories:
        groups.setdefault(category.supercategory or OTHER_GROUP, []).append(category)
    return list(groups.items())


def category_keys_and_group_count(dataset):
    """What validation needs: the set of category keys and how many groups the browser shows."""
    groups = grouped_categories(dataset)
    return {category.key for _, categories in groups for category in categories}, len(groups)


def category_groups(dataset):
    """The category browser's groups as the page gets them, with icon URLs."""
    return [
        {
            "index": index,
            "name": name,
            "categories": [
                {"key": c.key, "name": c.name, "icon": icon_url(c)} for c in categories
            ],
        }
        for index, (name, categories) in enumerate(grouped_categories(dataset))
    ]


def web_links(links):
    """Only http(s) URLs reach the task page: a `javascript:` or `data:` link in imported data would run on click."""
    safe = []
    for link in links if isinstance(links, list) else []:
        if isinstance(link, str) and urlsplit(link.strip()).scheme.lower() in ("http", "https"):
            safe.append(link.strip())
    return safe


def imagenet_page_content(page, candidate_key):
    """The class (by name: its key is a wnid, and nothing on the page needs it) and the candidates by their ids."""
    category = page.category
    items = PageItem.objects.filter(page=page).select_related("image").order_by("position")
    return {
        "category": {
            "name": category.name,
            "synonyms": category.synonyms,
            "definition": category.definition,
            "reference_links": web_links(category.reference_links),
        },
        "items": [
            {
                "image_id": candidate_id(candidate_key, page.pk, item.image_id),
                "url": display_url(item.image),
                "srcset": display_srcset(item.image),
                "position": item.position,
            }
            for item in items
        ],
    }


def coco_page_content(page, candidate_key):
    image = page.image
    return {
        "image": {
            "image_id": page_image_id(page, candidate_key), "url": display_url(image),
            "srcset": display_srcset(image), "width": image.width, "height": image.height,
        },
        "groups": category_groups(image.dataset_id),
    }


def build_page_content(page, hit):
    kind = hit.batch.task_kind
    build = imagenet_page_content if kind == TaskKind.IMAGENET else coco_page_content
    return {"index": page.index, "kind": kind, **build(page, hit.candidate_key)}


# Page content holds file URLs, which S3 signs for AWS_QUERYSTRING_EXPIRE (an hour by default): kept far shorter.
PAGE_CONTENT_MAX_AGE_S = 300


def page_content(page, hit):
    """What the task page shows of one of the HIT's pages, the same for every assignment of the HIT: built once per
    process and PAGE_CONTENT_MAX_AGE_S. A copy, so the caller may add its own keys."""
    content = _open_work.get(
        ("content", page.pk), lambda: build_page_content(page, hit), max_age_s=PAGE_CONTENT_MAX_AGE_S
    )
    return dict(content)


def resume_events(assignment, page):
    """Every event already flushed for this page, in the client's sequence order."""
    events = []
    flushes = EventBatch.objects.filter(assignment=assignment, page=page).order_by("seq", "received_at", "pk")
    for flushed_events in flushes.values_list("events", flat=True):
        events.extend(flushed_events)
    return events


def assignment_progress(assignment):
    n_pages = assignment_page_count(assignment)
    completed = sorted(saved_pages(assignment))
    finished = assignment.state in Assignment.FINISHED_STATES
    current = next((i for i in range(n_pages) if i not in set(completed)), None)
    return {
        "assignment_id": str(assignment.uuid),
        "kind": assignment.hit.batch.task_kind,
        "variant": assignment.interface_variant,
        "n_pages": n_pages,
        "completed_pages": completed,
        "current_page": current,
        "finished": finished,
        "completion_code": shown_completion_code(assignment) if finished else None,
    }


def shown_completion_code(assignment):
    """The code the worker is shown: on Prolific the study's (the one code Prolific takes), elsewhere our own."""
    if assignment.hit.batch.provider == Provider.PROLIFIC:
        return prolific.study_completion_code(assignment.hit)
    return assignment.completion_code or completion_code(assignment.uuid)


def submit_answer(assignment):
    """What the page does after submit: show the code; MTurk: POST to turkSubmitTo; Prolific: back to Prolific with
    the study's completion code; link: optional redirect."""
    batch = assignment.hit.batch
    code = shown_completion_code(assignment)
    turk_submit_to = redirect_url = None
    if batch.provider == Provider.PROLIFIC:
        redirect_url = prolific.completion_url(assignment.hit)
    elif batch.provider == Provider.MTURK and assignment.turk_submit_to:
        turk_submit_to = assignment.turk_submit_to.rstrip("/") + "/mturk/externalSubmit"
    elif batch.provider_config.get("completion_url"):
        redirect_url = batch.provider_config["completion_url"].replace("{completion_code}", code)
    return {
        "completion_code": code,
        "turk_submit_to": turk_submit_to,
        "redirect_url": redirect_url,
        "market_assignment_id": assignment.external_id,
    }
