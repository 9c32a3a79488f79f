"""Markup in imported data and in worker-sent ids, in a real browser: shown as text, never run (issue 9, abuse).

Every payload, if it ran, sets `window.__xss` or opens a dialog; the tests assert neither happened and that the
text is on the page literally. Class names, synonyms, definitions and reference links come from imported datasets
(ImageNet-style), category names and supercategories from COCO annotation files, and the worker's market ids from
the task URL (any visitor can type them): the review console shows all of these to staff.
"""
import pytest
from django.contrib.auth import get_user_model

from annotator.models import Assignment, Category, Worker
from tests.e2e.conftest import make_coco_hit, make_imagenet_hit, point_in, task_url, wait_for_images

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

NAME = "<script>window.__xss = 'name'</script>tench"
SYNONYM = "<svg onload=\"window.__xss = 'synonym'\"></svg>"
DEFINITION = "\"><img src=x onerror=\"window.__xss = 'definition'\">a freshwater fish"
LINKS = [
    "javascript:window.__xss = 'link'",
    " JaVaScRiPt:alert('link')",
    "java\tscript:alert('tab')",
    "data:text/html,<script>alert('data')</script>",
    "https://en.wikipedia.org/wiki/Tench",
]
COCO_NAME = "\"><img src=x onerror=\"window.__xss = 'coco name'\">cat"
SUPERCATEGORY = "<script>alert('supercategory')</script>animal"
WORKER_ID = "\"><img src=x onerror=\"window.__xss = 'worker'\">W1"
MARKET_ASSIGNMENT = "<script>alert('assignment')</script>A1"


@pytest.fixture
def watched(page):
    """The page, with every dialog recorded (and dismissed) so a test can assert none opened."""
    page.dialogs = []

    def on_dialog(dialog):
        page.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return page


def assert_nothing_ran(page):
    page.wait_for_timeout(300)  # an injected <img onerror> fires once its request fails: give it the time
    assert page.evaluate("() => window.__xss") is None
    assert page.dialogs == []


def imagenet_hit_with_markup():
    hit = make_imagenet_hit(items_per_page=(6,))
    Category.objects.filter(pk=hit.pages.get(index=0).category_id).update(
        name=NAME, synonyms=[SYNONYM], definition=DEFINITION, reference_links=LINKS,
    )
    return hit


@pytest.mark.parametrize("preview", [False, True], ids=["accepted", "preview"])
def test_imagenet_class_text_is_shown_literally_and_only_web_links_are_links(watched, live_server, preview):
    page = watched
    hit = imagenet_hit_with_markup()
    url = task_url(live_server, hit, worker_id="" if preview else "WORKER1")
    page.goto(url)
    page.wait_for_function("() => document.querySelectorAll('img.candidate-image').length === 6")
    wait_for_images(page)

    assert page.locator(".class-name strong").inner_text() == NAME
    assert page.locator(".class-synonyms").inner_text() == f"Also called: {SYNONYM}"
    assert page.locator(".class-definition").inner_text() == DEFINITION
    assert page.locator(".class-panel img, .class-panel svg, .class-panel script").count() == 0
    links = page.locator(".class-links a")
    assert links.count() == 1
    assert links.evaluate_all("links => links.map((link) => link.href)") == ["https://en.wikipedia.org/wiki/Tench"]
    assert page.locator("a[href^='javascript' i], a[href^='data' i], a[href*='script:' i]").count() == 0
    assert_nothing_ran(page)


def test_a_javascript_link_is_not_clickable_even_when_it_reaches_the_page(watched, live_server):
    """The page's own guard, not only the server's filter: feed the links straight into the page data."""
    page = watched
    hit = imagenet_hit_with_markup()

    def unfiltered(route):
        response = route.fetch()
        body = response.json()
        body["category"]["reference_links"] = LINKS
        route.fulfill(response=response, json=body)

    page.route("**/api/worker/pages/0", unfiltered)
    page.goto(task_url(live_server, hit))
    page.wait_for_function("() => document.querySelectorAll('img.candidate-image').length === 6")
    assert page.locator(".class-links a").count() == 1
    assert page.locator(".class-links").inner_text().strip() == "See: example 1"
    assert_nothing_ran(page)


def test_coco_category_and_supercategory_are_shown_literally(watched, live_server):
    page = watched
    hit = make_coco_hit(n_pages=1)
    Category.objects.filter(dataset=hit.batch.dataset).update(supercategory=SUPERCATEGORY)
    cat = Category.objects.get(dataset=hit.batch.dataset, name="cat")
    Category.objects.filter(pk=cat.pk).update(name=COCO_NAME)
    page.goto(task_url(live_server, hit))
    page.locator("img.coco-image").wait_for()
    wait_for_images(page)

    assert page.locator(".group-name").inner_text() == SUPERCATEGORY
    tile = page.locator(f".icon-tile[data-key='{cat.key}']")
    assert tile.get_attribute("title") == COCO_NAME
    # The server-drawn icon is still a well-formed picture with the name in it (escaped in the SVG).
    assert tile.locator("img").evaluate("icon => icon.complete && icon.naturalWidth > 0")
    page.mouse.move(*point_in(tile, 0.5, 0.3))
    page.mouse.down()
    page.mouse.move(*point_in(page.locator("img.coco-image"), 0.5, 0.5), steps=8)
    page.mouse.up()
    assert page.locator(".contains-entry span").first.inner_text() == COCO_NAME
    assert page.locator(".placed-name").first.inner_text() == COCO_NAME
    assert page.locator("#task-root img:not(.coco-image):not(.category-icon)").count() == 0
    assert_nothing_ran(page)

    # Opened on its own (same origin), the icon is an SVG document: markup in the name must not run there either.
    icon_url = f"{live_server.url}/task/icons/{cat.pk}.svg"
    page.goto(icon_url)
    assert_nothing_ran(page)
    assert COCO_NAME in page.locator("svg").get_attribute("aria-label")


def test_review_console_shows_markup_from_datasets_and_worker_ids_as_text(watched, live_server):
    page = watched
    hit = imagenet_hit_with_markup()
    # The worker's ids arrive in the task URL, where anyone can type anything.
    page.goto(task_url(live_server, hit, worker_id=WORKER_ID, assignment_id=MARKET_ASSIGNMENT))
    page.wait_for_function("() => document.querySelectorAll('img.candidate-image').length === 6")
    assignment = Assignment.objects.get(hit=hit)
    worker = Worker.objects.get(pk=assignment.worker_id)
    assert worker.external_id == WORKER_ID and assignment.external_id == MARKET_ASSIGNMENT

    get_user_model().objects.create_superuser("reviewer", "reviewer@example.com", "a-long-password-1")
    page.goto(f"{live_server.url}/admin/login/?next=/review/assignments/{assignment.pk}/")
    page.fill("#id_username", "reviewer")
    page.fill("#id_password", "a-long-password-1")
    page.click("input[type=submit]")
    page.locator("#replay h3").wait_for()
    assert NAME in page.locator("#replay h3").inner_text()
    assert MARKET_ASSIGNMENT in page.locator("#events").inner_text()
    assert_nothing_ran(page)

    page.goto(f"{live_server.url}/review/workers/{worker.pk}/")
    assert f"market id {WORKER_ID}" in page.locator(".subtitle").inner_text()
    assert_nothing_ran(page)

    page.goto(f"{live_server.url}/admin/annotator/category/{hit.pages.get(index=0).category_id}/change/")
    assert page.locator("#id_name").input_value() == NAME
    assert_nothing_ran(page)
