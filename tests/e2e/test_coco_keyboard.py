"""The COCO-style page's keyboard placing, as a screen-reader user hears it: a polite live region tells where the
cursor is (once the arrow keys rest, not at every step) and what was placed, moved or removed."""
import pytest

from tests.e2e.conftest import make_coco_hit, task_url, wait_for_images

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CAT, DOG = "1", "2"  # category keys in make_coco_hit
REST_MS = 600  # longer than the page's wait before it announces where the cursor came to rest

# Every text the live region was given, in order.
RECORD_ANNOUNCEMENTS = """() => {
  const region = document.querySelector(".coco-announcer");
  window.announcedForTest = [];
  new MutationObserver(() => window.announcedForTest.push(region.textContent))
    .observe(region, { childList: true, characterData: true, subtree: true });
}"""


def announced(page):
    return page.locator(".coco-announcer").text_content()


def test_keyboard_cursor_moves_and_icon_actions_are_announced(page, live_server):
    hit = make_coco_hit(n_pages=1)
    page.clock.install()
    page.goto(task_url(live_server, hit))
    page.locator("img.coco-image").wait_for()
    wait_for_images(page)
    region = page.locator(".coco-announcer")
    assert region.get_attribute("aria-live") == "polite"
    assert region.bounding_box()["width"] <= 1, "the live region is for screen readers only"
    # The page's timers now run only when the test says so: "once the keys rest" does not depend on the machine.
    page.clock.pause_at(page.evaluate("Date.now()") + 1000)
    page.evaluate(RECORD_ANNOUNCEMENTS)

    page.locator(f".icon-tile[data-key='{CAT}']").focus()
    page.keyboard.press("Enter")
    assert announced(page) == "cat cursor at 50% across, 50% down."
    for _ in range(5):
        page.keyboard.press("ArrowLeft")
    assert announced(page) == "cat cursor at 50% across, 50% down.", "a cursor step was announced at once"
    page.clock.run_for(REST_MS)
    assert announced(page) == "Cursor at 40% across, 50% down."
    page.keyboard.press("Shift+ArrowDown")
    page.clock.run_for(REST_MS)
    assert announced(page) == "Cursor at 40% across, 60% down."
    page.keyboard.press("Enter")
    assert announced(page) == "Placed cat at 40% across, 60% down."
    assert page.evaluate("window.announcedForTest") == [
        "cat cursor at 50% across, 50% down.",
        "Cursor at 40% across, 50% down.",  # five steps, one announcement
        "Cursor at 40% across, 60% down.",
        "Placed cat at 40% across, 60% down.",
    ]

    # The placed icon has the focus: Enter picks it up again; dropping it before the keys rest says only the move.
    page.keyboard.press("Enter")
    assert announced(page) == "cat cursor at 40% across, 60% down."
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    assert announced(page) == "Moved cat to 60% across, 60% down."
    page.clock.run_for(REST_MS)
    assert announced(page) == "Moved cat to 60% across, 60% down.", "a late cursor announcement followed the move"
    page.keyboard.press("Delete")
    assert announced(page) == "Removed cat."
    assert page.locator(f".placed-icon[data-key='{CAT}']").count() == 0

    page.locator(f".icon-tile[data-key='{DOG}']").focus()
    page.keyboard.press("Space")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Escape")
    assert announced(page) == "dog not placed."
    page.clock.run_for(REST_MS)
    assert announced(page) == "dog not placed."
    page.clock.resume()  # the fixture's teardown waits on the page's own timers


def test_removing_with_the_remove_button_is_announced(page, live_server):
    hit = make_coco_hit(n_pages=1)
    page.goto(task_url(live_server, hit))
    page.locator("img.coco-image").wait_for()
    wait_for_images(page)
    page.locator(f".icon-tile[data-key='{DOG}']").focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    assert announced(page) == "Placed dog at 50% across, 50% down."
    page.locator(f".contains-entry[data-key='{DOG}'] .remove-icon").focus()
    page.keyboard.press("Enter")
    assert announced(page) == "Removed dog."
    assert page.locator(".contains-entry").count() == 0
