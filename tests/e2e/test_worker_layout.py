"""The worker pages at a laptop's (1366x768) and a phone's (390x844) size: Save on screen without hunting, nothing
wider than the screen, the counts a worker needs, the finished page's copy button."""
import os
from pathlib import Path

import pytest

from tests.e2e.conftest import make_coco_hit, make_imagenet_hit, task_url, wait_for_images

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

VIEWPORTS = {
    "laptop": {"viewport": {"width": 1366, "height": 768}},
    "phone": {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True,
              "has_touch": True},
}
# Set to a folder to keep a screenshot of every state the tests reach (docs/screenshots/ is made this way).
SCREENSHOTS = os.environ.get("LUAB_SCREENSHOTS")

# Elements sticking out past the right edge of the window (the page would scroll sideways), by selector.
OVERFLOWING = """
() => Array.from(document.querySelectorAll("body *"))
  .filter((node) => node.getClientRects().length && !node.closest(".visually-hidden, [hidden]"))
  .filter((node) => node.getBoundingClientRect().right > window.innerWidth + 1)
  .map((node) => node.tagName.toLowerCase() + (node.id ? "#" + node.id : "") + "." + node.className)
"""


@pytest.fixture(params=list(VIEWPORTS))
def device(request, browser_context_factory):
    context = browser_context_factory(**VIEWPORTS[request.param])
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    return request.param, context.new_page()


def shoot(page, name):
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"))


def assert_fits(page):
    assert page.evaluate("() => document.documentElement.scrollWidth") <= page.viewport_size["width"]
    assert page.evaluate(OVERFLOWING) == []


def assert_on_screen(page, selector):
    box = page.locator(selector).bounding_box()
    size = page.viewport_size
    assert box is not None, f"{selector} is not shown"
    assert box["x"] >= 0 and box["y"] >= 0, (selector, box)
    assert box["x"] + box["width"] <= size["width"] and box["y"] + box["height"] <= size["height"], (selector, box)


def scroll_to_bottom(page):
    page.evaluate("() => window.scrollTo(0, document.documentElement.scrollHeight)")
    page.wait_for_timeout(100)


def test_imagenet_page_fits_keeps_save_on_screen_and_counts_the_selection(device, live_server):
    name, page = device
    hit = make_imagenet_hit(items_per_page=(48, 6))
    page.goto(task_url(live_server, hit))
    page.wait_for_function("() => document.querySelectorAll('img.candidate-image').length === 48")
    wait_for_images(page)

    shoot(page, f"worker-imagenet-{name}")
    assert_fits(page)
    assert_on_screen(page, "#save-page")
    assert page.locator("#page-summary").inner_text() == "0 of 48 selected"
    for position in (0, 2, 5):
        page.locator("img.candidate-image").nth(position).click()
    page.locator("img.candidate-image").nth(2).click()
    assert page.locator("#page-summary").inner_text() == "2 of 48 selected"
    # A phone shows three columns: the grid is a third of the 48 images long, not half.
    columns = page.evaluate(
        "() => new Set(Array.from(document.querySelectorAll('.candidate')).map((cell) => cell.offsetLeft)).size"
    )
    assert columns >= 3
    scroll_to_bottom(page)
    assert_on_screen(page, "#save-page")
    assert page.locator(".task-footer").bounding_box()["height"] < 70  # one row: the work stays in view
    assert_on_screen(page, "#page-summary")
    page.click("#save-page")
    page.wait_for_function("() => document.querySelector('#page-counter').textContent === 'Page 2 of 2'")
    page.click("#save-page")
    page.wait_for_selector("#done:not([hidden])")

    shoot(page, f"worker-finished-{name}")
    assert_fits(page)
    assert page.locator("#instructions").is_hidden() and page.locator("#save-page").is_hidden()
    code = page.locator("#completion-code").inner_text()
    page.click("#copy-code")
    assert page.locator("#copy-status").inner_text() == "Copied."
    assert page.evaluate("() => navigator.clipboard.readText()") == code


def test_coco_page_fits_with_photo_icons_and_save_on_screen(device, live_server):
    name, page = device
    hit = make_coco_hit(n_pages=1)
    page.goto(task_url(live_server, hit))
    page.locator("img.coco-image").wait_for()
    wait_for_images(page)

    shoot(page, f"worker-coco-{name}")
    assert_fits(page)
    assert_on_screen(page, "#save-page")
    assert page.locator("#page-summary").inner_text() == "0 tagged \u00b7 groups seen 1/3"
    instructions = page.locator("#instructions").inner_text()
    if name == "laptop":
        # The photo and the icons to drag onto it are on screen together, with Save.
        assert_on_screen(page, "img.coco-image")
        assert_on_screen(page, ".icon-tile >> nth=0")
        assert "keys" in instructions
    else:
        assert "keys" not in instructions  # a phone has no arrow keys
    scroll_to_bottom(page)
    assert_on_screen(page, "#save-page")
    assert page.locator(".task-footer").bounding_box()["height"] < 70  # one row: the work stays in view
