"""The ImageNet-style task page in a real browser: clicks, hovers and traces stored as records, across a reload."""
import json
import logging
import re
import uuid
from urllib.parse import urlencode

import pytest

from annotator.models import (
    Assignment, Batch, Category, EventBatch, Image, ImageNetRecord, PageSubmission, Provider,
)
from tests.e2e.conftest import (
    LOG_FETCHES, click_at, leave_after_every_timer, make_imagenet_hit, point_in, record_sends, stored_events, task_url,
    wait_for_images, wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
logger = logging.getLogger(__name__)

# (candidate position, x fraction, y fraction) of the clicks on page 0, in order.
CLICKS_BEFORE_RELOAD = [(0, 0.25, 0.5), (1, 0.75, 0.3), (2, 0.5, 0.5), (1, 0.4, 0.6)]
CLICK_AFTER_RELOAD = (3, 0.6, 0.4)
HOVERED = (5, 6)


def trace_across(page, locator):
    """Move the mouse through an element from its left edge to its right edge, in small steps."""
    start = point_in(locator, 0.05, 0.5)
    end = point_in(locator, 0.95, 0.4)
    page.mouse.move(*start)
    page.mouse.move(*end, steps=25)


def records_by_position(assignment, page_index):
    records = ImageNetRecord.objects.filter(assignment=assignment, page__index=page_index).select_related("image")
    positions = {item.image_id: item.position for item in records[0].page.items.all()} if records else {}
    return {positions[record.image_id]: record for record in records}


def assert_close(point, fx, fy):
    assert abs(point["x"] - fx) <= 0.01 and abs(point["y"] - fy) <= 0.01, (point, fx, fy)


def test_clicks_hovers_and_traces_are_stored_without_loss_across_a_reload(page, live_server):
    hit = make_imagenet_hit(items_per_page=(48, 6), variant=Batch.Variant.RED_DOT)
    page.goto(task_url(live_server, hit))
    candidates = page.locator("img.candidate-image")
    page.wait_for_function("() => document.querySelectorAll('img.candidate-image').length === 48")
    wait_for_images(page)
    assert page.locator("#page-counter").inner_text() == "Page 1 of 2"
    assert "test class 0" in page.locator(".class-name").inner_text()
    assert "url(" in candidates.nth(0).evaluate("image => getComputedStyle(image).cursor")

    for position, fx, fy in CLICKS_BEFORE_RELOAD:
        click_at(candidates.nth(position), fx, fy)
    for position in HOVERED:
        trace_across(page, candidates.nth(position))
    page.mouse.move(2, 2)
    # Reload at once: the events not flushed yet travel by beacon / from storage, never twice.
    page.reload()
    page.wait_for_function("() => document.querySelectorAll('img.candidate-image').length === 48")
    wait_for_images(page)
    selected_after_reload = page.locator(".candidate.selected img").evaluate_all(
        "images => images.map((image) => image.dataset.imageId)"
    )
    keys = candidates.evaluate_all("images => images.map((image) => image.dataset.imageId)")
    assert selected_after_reload == [keys[0], keys[2]]

    click_at(candidates.nth(CLICK_AFTER_RELOAD[0]), *CLICK_AFTER_RELOAD[1:])
    page.click("#save-page")
    page.wait_for_function("() => document.querySelector('#page-counter').textContent === 'Page 2 of 2'")
    wait_for_images(page)
    click_at(page.locator("img.candidate-image").nth(0), 0.5, 0.5)
    page.click("#save-page")
    page.wait_for_selector("#done:not([hidden])")

    assignment = Assignment.objects.get(hit=hit)
    assert assignment.submitted_at is not None  # then auto-review may already have decided it
    assert page.locator("#completion-code").inner_text() == assignment.completion_code
    assert PageSubmission.objects.filter(assignment=assignment).count() == 2

    records = records_by_position(assignment, 0)
    assert len(records) == 48
    assert {position for position, record in records.items() if record.selected} == {0, 2, 3}
    assert_close(records[0].selected_record[0], 0.25, 0.5)
    assert len(records[0].selected_record) == 1, "a click replayed after the reload was stored twice"
    assert_close(records[2].selected_record[0], 0.5, 0.5)
    assert_close(records[3].selected_record[0], 0.6, 0.4)
    assert records[1].selected is False
    assert len(records[1].selected_record) == 1 and len(records[1].deselected_record) == 1
    assert_close(records[1].selected_record[0], 0.75, 0.3)
    assert_close(records[1].deselected_record[0], 0.4, 0.6)

    for position in HOVERED:
        hovers = [hover["action"] for hover in records[position].hovered_record]
        assert hovers and hovers == ["enter", "leave"] * (len(hovers) // 2), hovers
        assert len(records[position].mouse_tracking) >= 3
        assert records[position].selected is False
    # At most 60 samples a second over the whole page, whichever image they fall on.
    trace_times = sorted(sample["time"] for record in records.values() for sample in record.mouse_tracking)
    gaps = [later - earlier for earlier, later in zip(trace_times, trace_times[1:])]
    assert gaps and min(gaps) >= 16, min(gaps)
    assert all(0 <= sample["x"] <= 1 and 0 <= sample["y"] <= 1 for r in records.values() for sample in r.mouse_tracking)

    first = records[0]
    assert first.image_width > 0 and first.image_height > 0
    assert first.image_position["y"] > 0

    submission = PageSubmission.objects.get(assignment=assignment, page__index=0)
    assert submission.client["variant"] == "red_dot"
    assert submission.client["viewport"] == {"w": 1280, "h": 900}
    assert submission.client["dpr"] == 1
    assert "Chrome" in submission.client["user_agent"]

    events = stored_events(assignment, 0)
    clicks = [event for event in events if event["type"] == "click"]
    assert len(clicks) == len(CLICKS_BEFORE_RELOAD) + 1
    assert len({json.dumps(event, sort_keys=True) for event in events}) == len(events), "an event was stored twice"
    assert len(ImageNetRecord.objects.filter(assignment=assignment, page__index=1)) == 6


def test_going_offline_mid_page_retries_and_loses_nothing(browser_context_factory, live_server, market_server):
    completion_url = f"{market_server.origin}/done?cc={{completion_code}}"
    hit = make_imagenet_hit(items_per_page=(8,), provider_config={"completion_url": completion_url})
    context = browser_context_factory()
    page = context.new_page()
    page.goto(task_url(live_server, hit))
    wait_for_images(page)
    candidates = page.locator("img.candidate-image")
    click_at(candidates.nth(0), 0.3, 0.3)
    assignment = Assignment.objects.get(hit=hit)
    wait_until(lambda: EventBatch.objects.filter(assignment=assignment).exists(), message="the first flush")

    context.set_offline(True)
    click_at(candidates.nth(1), 0.6, 0.6)
    click_at(candidates.nth(2), 0.2, 0.8)
    status = page.locator("#save-status")
    status.wait_for(state="visible", timeout=12_000)
    assert "we are retrying" in status.inner_text()
    context.set_offline(False)
    status.wait_for(state="hidden", timeout=20_000)

    page.click("#save-page")
    page.wait_for_selector("#done:not([hidden])")
    code = page.locator("#completion-code").inner_text()
    page.wait_for_url(f"{market_server.origin}/done**")
    assert market_server.visits == [f"/done?cc={code}"]
    records = records_by_position(assignment, 0)
    assert {position for position, record in records.items() if record.selected} == {0, 1, 2}
    assert_close(records[1].selected_record[0], 0.6, 0.6)
    clicks = [event for event in stored_events(assignment, 0) if event["type"] == "click"]
    assert len(clicks) == 3
    for click, (fx, fy) in zip(clicks, [(0.3, 0.3), (0.6, 0.6), (0.2, 0.8)]):
        assert_close(click, fx, fy)


# Test instrumentation, run in every document before its own scripts: each sendBeacon / keepalive fetch is noted
# (URL, body, whether the browser took it) in localStorage, synchronously, so the note survives the page going
# away and the next page of the same origin can read it. Playwright cannot see these requests itself: DevTools
# (its "request" events, routes, a CDP Network session) and binding calls all missed every beacon sent during
# pagehide in our runs, while the server received each one.
NOTE_BEACONS = """
(() => {
  const RealBlob = window.Blob;
  window.Blob = class extends RealBlob {
    constructor(parts, options) {
      super(parts, options);
      this.textForTest = (parts || []).map(String).join("");
    }
  };
  function note(beacon) {
    const notes = JSON.parse(localStorage.getItem("test:beacons") || "[]");
    notes.push(beacon);
    localStorage.setItem("test:beacons", JSON.stringify(notes));
  }
  const sendBeacon = navigator.sendBeacon.bind(navigator);
  navigator.sendBeacon = (url, data) => {
    const queued = sendBeacon(url, data);
    note({ via: "sendBeacon", url: String(url), body: data && data.textForTest, queued });
    return queued;
  };
  const realFetch = window.fetch.bind(window);
  window.fetch = (url, init) => {
    if (init && init.keepalive) note({ via: "keepalive", url: String(url), body: String(init.body), queued: true });
    return realFetch(url, init);
  };
})();
"""


def test_leaving_the_page_still_delivers_the_unflushed_events(browser_context_factory, live_server, settings):
    """pagehide hands the events not flushed yet to the browser (sendBeacon, else fetch keepalive).

    Why this failed now and then in the full suite: wait_for_images() returned at once, before the grid was
    drawn (no images yet: every() of nothing is true), so the click could hit a candidate still loading (0 px
    wide, its box about to move) and record nothing; with nothing recorded, nothing was beaconed. And on a slow
    machine the 3 s timed flush could send the click before the worker left. Now the test waits for the drawn,
    loaded grid and for the page to show the selection, turns the timed flush off, and asserts that the beacon
    was handed to the browser with the click in its body, and that the server stored it.
    """
    # No timed flush while the test runs, however slow the machine: only pagehide can deliver the click.
    settings.WORKER_PAGE_TIMING = {"flush_interval_ms": 600_000}
    hit = make_imagenet_hit(items_per_page=(6,))
    context = browser_context_factory()
    context.add_init_script(NOTE_BEACONS)
    event_posts = []
    context.on("request", lambda r: event_posts.append(r.url) if r.method == "POST" and "/events" in r.url else None)
    page = context.new_page()
    page.goto(task_url(live_server, hit))
    page.wait_for_function("() => document.querySelectorAll('img.candidate-image').length === 6")
    wait_for_images(page)
    click_at(page.locator("img.candidate-image").nth(4), 0.7, 0.2)
    page.locator(".candidate.selected").wait_for()
    assert event_posts == [], "a flush went out before the worker left; this test is about the unflushed events"
    # The worker leaves for another page (of the same origin, where the test reads the notes).
    page.goto(f"{live_server.url}/static/worker/task.css")

    # The old document wrote the note during pagehide; if the browser gave the new document another renderer, the
    # write may reach it a moment later.
    page.wait_for_function("() => localStorage.getItem('test:beacons') !== null", timeout=10_000)
    beacons = json.loads(page.evaluate("localStorage.getItem('test:beacons')"))
    assert len(beacons) == 1, beacons
    beacon = beacons[0]
    assert beacon["queued"] is True
    assert "/api/worker/pages/0/events?token=" in beacon["url"]
    body = json.loads(beacon["body"])
    clicks = [event for event in body["events"] if event["type"] == "click"]
    assert len(clicks) == 1 and clicks[0]["selected"] is True
    assert_close(clicks[0], 0.7, 0.2)

    assignment = Assignment.objects.get(hit=hit)
    stored = wait_until(
        lambda: [e for e in stored_events(assignment, 0) if e["type"] == "click"], message="the beaconed click"
    )
    assert stored == clicks
    assert uuid.UUID(body["batch_id"]) in set(
        EventBatch.objects.filter(assignment=assignment).values_list("client_batch_id", flat=True)
    )


def test_in_an_mturk_iframe_the_page_posts_external_submit_with_the_assignment_id(
    page, live_server, market_server, settings,
):
    settings.WORKER_FRAME_ANCESTORS = [market_server.origin]
    hit = make_imagenet_hit(items_per_page=(4,), provider=Provider.MTURK)
    frame_url = task_url(
        live_server, hit, worker_id="A1WORKER", assignment_id="3MTURKASSIGNMENT", turkSubmitTo=market_server.origin,
    )
    page.goto(f"{market_server.origin}/hit?{urlencode({'task': frame_url})}")
    frame = page.frame_locator("#task")
    frame.locator("img.candidate-image").nth(3).wait_for()
    page.frames[1].wait_for_function(
        "() => Array.from(document.images).every((image) => image.complete && image.naturalWidth > 0)"
    )
    click_at(frame.locator("img.candidate-image").nth(1), 0.5, 0.5)
    frame.locator("#save-page").click()
    wait_until(lambda: market_server.submissions, message="the externalSubmit POST")

    path, form = market_server.submissions[0]
    assert path == "/mturk/externalSubmit"
    assert form["assignmentId"] == ["3MTURKASSIGNMENT"]
    assignment = Assignment.objects.get(hit=hit)
    assert assignment.submitted_at is not None
    assert form["completion_code"] == [assignment.completion_code]
    assert ImageNetRecord.objects.filter(assignment=assignment, selected=True).count() == 1
    page.frame_locator("#task").locator("text=the market has your assignment").wait_for()


def test_preview_shows_an_example_page_and_records_nothing(page, live_server):
    hit = make_imagenet_hit(items_per_page=(6,))
    sent = record_sends(page)
    page.goto(task_url(live_server, hit, assignment_id="ASSIGNMENT_ID_NOT_AVAILABLE"))
    wait_for_images(page)
    assert page.locator(".preview-banner").is_visible()
    assert page.locator("img.candidate-image").count() == 6
    click_at(page.locator("img.candidate-image").nth(0), 0.5, 0.5)
    assert page.locator(".candidate.selected").count() == 1
    assert page.locator("#save-page").is_hidden()
    leave_after_every_timer(page)
    assert sent == []
    assert not Assignment.objects.filter(hit=hit).exists()
    assert not EventBatch.objects.exists()


@pytest.mark.slow
def test_twenty_seconds_offline_mid_page_loses_and_duplicates_nothing(browser_context_factory, live_server):
    """Issue 9's client fault: the network drops for a real 20 s while the worker keeps working and even presses
    Save. The page says it is retrying, retries with growing gaps (1 s, 2 s, 4 s ...), and once the network is
    back delivers every batch and the save: each click stored once, the page saved once, in order."""
    hit = make_imagenet_hit(items_per_page=(8, 4))
    context = browser_context_factory()
    context.add_init_script(LOG_FETCHES)
    page = context.new_page()
    page.goto(task_url(live_server, hit))
    page.wait_for_function("() => document.querySelectorAll('img.candidate-image').length === 8")
    wait_for_images(page)
    candidates = page.locator("img.candidate-image")
    click_at(candidates.nth(0), 0.3, 0.3)
    assignment = Assignment.objects.get(hit=hit)
    wait_until(
        lambda: [e for e in stored_events(assignment, 0) if e["type"] == "click"], message="the first click flushed"
    )
    batches_before = EventBatch.objects.filter(assignment=assignment).count()
    status = page.locator("#save-status")

    context.set_offline(True)
    offline_from = page.evaluate("performance.now()")
    # The worker keeps working: a click every few seconds (one of them a deselect), then presses Save.
    clicks_offline = [(1, 0.6, 0.6), (2, 0.2, 0.8), (3, 0.5, 0.4), (2, 0.7, 0.3), (4, 0.45, 0.55)]
    for position, fx, fy in clicks_offline:
        click_at(candidates.nth(position), fx, fy)
        page.wait_for_timeout(3_000)
    assert page.locator(".candidate.selected").count() == 4
    status.wait_for(state="visible")
    assert "we are retrying" in status.inner_text()
    page.click("#save-page")
    assert page.locator("#page-message").inner_text() == "Saving..."
    page.wait_for_timeout(max(0, 20_000 - (page.evaluate("performance.now()") - offline_from)))
    offline_ms = page.evaluate("performance.now()") - offline_from
    assert offline_ms >= 20_000
    assert page.locator("#page-counter").inner_text() == "Page 1 of 2", "the page moved on without its save"
    assert status.is_visible() and "we are retrying" in status.inner_text()
    assert EventBatch.objects.filter(assignment=assignment).count() == batches_before
    assert not PageSubmission.objects.filter(assignment=assignment).exists()

    context.set_offline(False)
    online_at = page.evaluate("performance.now()")
    page.wait_for_function("() => document.querySelector('#page-counter').textContent === 'Page 2 of 2'")
    status.wait_for(state="hidden")
    wait_for_images(page)
    click_at(page.locator("img.candidate-image").nth(1), 0.5, 0.5)
    page.click("#save-page")
    page.wait_for_selector("#done:not([hidden])")

    # Backoff: while offline, the events POST was retried with growing gaps, not hammered.
    log = page.evaluate("window.fetchLogForTest")
    failed = [e["start"] for e in log if e.get("failed") and "/events" in e["url"] and e["start"] >= offline_from]
    gaps = [later - earlier for earlier, later in zip(failed, failed[1:])]
    delivered = [e["start"] for e in log if "/events" in e["url"] and not e.get("failed") and e["start"] >= online_at]
    logger.info("offline %.0f ms; failed event posts at %s ms; back online, delivered at %s ms", offline_ms,
                [round(start - offline_from) for start in failed], [round(start - offline_from) for start in delivered])
    assert 4 <= len(failed) <= 8, failed
    assert all(later >= 0.8 * earlier for earlier, later in zip(gaps, gaps[1:])), gaps
    assert max(gaps) >= 4_000, gaps
    # Back online, the page did not wait for its next backoff step (twice the last gap) to deliver: on the page's own
    # clock, the delivery started before that step was due.
    assert delivered and delivered[0] < failed[-1] + 2 * gaps[-1], (failed, delivered)

    done = [(0, 0.3, 0.3), *clicks_offline]
    events = stored_events(assignment, 0)
    clicks = [event for event in events if event["type"] == "click"]
    assert len(clicks) == len(done), "a click was lost or stored twice"
    for click, (position, fx, fy) in zip(clicks, done):
        assert_close(click, fx, fy)
    assert [click["selected"] for click in clicks] == [True, True, True, True, False, True]
    assert len({json.dumps(event, sort_keys=True) for event in events}) == len(events), "an event was stored twice"
    batch_ids = list(EventBatch.objects.filter(assignment=assignment).values_list("client_batch_id", flat=True))
    seqs = list(EventBatch.objects.filter(assignment=assignment, page__index=0).values_list("seq", flat=True))
    assert len(batch_ids) == len(set(batch_ids)) and len(seqs) == len(set(seqs))
    saves = [e for e in log if e["method"] == "POST" and e["url"].endswith("/pages/0/save")]
    assert [e.get("status") for e in saves][-1] == 201
    assert PageSubmission.objects.filter(assignment=assignment).count() == 2

    records = records_by_position(assignment, 0)
    assert len(records) == 8
    assert {position for position, record in records.items() if record.selected} == {0, 1, 3, 4}
    assert len(records[2].selected_record) == 1 and len(records[2].deselected_record) == 1
    assert_close(records[2].deselected_record[0], 0.7, 0.3)
    assert_close(records[4].selected_record[0], 0.45, 0.55)
    assert len(records_by_position(assignment, 1)) == 4


def test_keyboard_only_worker_selects_with_space_and_enter(page, live_server):
    """Tab reaches every candidate in order; Space / Enter toggle it (aria-checked follows, a focus ring shows);
    the toggles are stored with usingKeyboard and no point, a mouse click beside them with its point."""
    hit = make_imagenet_hit(items_per_page=(6,))
    page.goto(task_url(live_server, hit))
    page.wait_for_function("() => document.querySelectorAll('img.candidate-image').length === 6")
    wait_for_images(page)
    cells = page.locator("figure.candidate")
    keys = cells.evaluate_all("cells => cells.map((cell) => cell.dataset.imageId)")
    states = cells.evaluate_all("cells => cells.map((c) => [c.getAttribute('role'), c.getAttribute('aria-checked')])")
    assert states == [["checkbox", "false"]] * 6
    assert cells.nth(2).get_attribute("aria-label") == "Image 3 of 6"

    focused = []
    for _ in range(20):  # past the instructions' summary and any links, then through the grid
        page.keyboard.press("Tab")
        key = page.evaluate("document.activeElement.dataset.imageId || null")
        if key:
            focused.append(key)
        elif focused:
            break
    assert focused == keys, "the candidates are not all in the tab order, in page order"

    def focus(position):
        cells.nth(position).focus()
        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Tab")  # a keyboard focus, so :focus-visible applies
        assert page.evaluate("document.activeElement.dataset.imageId") == keys[position]

    focus(1)
    ring = cells.nth(1).evaluate("cell => [getComputedStyle(cell).outlineStyle, getComputedStyle(cell).outlineWidth]")
    assert ring == ["solid", "3px"], ring
    scroll_before = page.evaluate("window.scrollY")
    page.keyboard.press("Space")
    assert cells.nth(1).get_attribute("aria-checked") == "true"
    assert page.evaluate("window.scrollY") == scroll_before, "Space scrolled the page instead of selecting"
    focus(3)
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    assert cells.nth(3).get_attribute("aria-checked") == "false"
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert cells.nth(4).get_attribute("aria-checked") == "true"
    click_at(page.locator("img.candidate-image").nth(5), 0.4, 0.6)
    assert cells.nth(5).get_attribute("aria-checked") == "true"
    assert page.locator(".candidate.selected").count() == 3

    page.click("#save-page")
    page.wait_for_selector("#done:not([hidden])")
    assignment = Assignment.objects.get(hit=hit)
    records = records_by_position(assignment, 0)
    assert {position for position, record in records.items() if record.selected} == {1, 4, 5}
    for record in (records[1], records[3], records[4]):
        for toggle in record.selected_record + record.deselected_record:
            assert set(toggle) == {"time", "usingKeyboard"} and toggle["usingKeyboard"] is True, toggle
    assert len(records[3].selected_record) == 1 and len(records[3].deselected_record) == 1
    assert set(records[5].selected_record[0]) == {"x", "y", "time"}
    assert_close(records[5].selected_record[0], 0.4, 0.6)
    clicks = [event for event in stored_events(assignment, 0) if event["type"] == "click"]
    assert [(event.get("usingKeyboard", False), "x" in event) for event in clicks] == [
        (True, False), (True, False), (True, False), (True, False), (False, True),
    ]


def test_a_reload_resumes_from_the_token_this_browser_kept_and_another_browser_is_refused(
    browser_context_factory, live_server,
):
    """A link without a market assignment id (in-house lists): reopening it is no proof of who started the work,
    so only the browser holding its token (in localStorage) resumes; another browser gets the refusal, no data."""
    hit = make_imagenet_hit(items_per_page=(6, 4))
    url = task_url(live_server, hit, assignment_id="")
    context = browser_context_factory()
    page = context.new_page()
    page.goto(url)
    page.wait_for_function("() => document.querySelectorAll('img.candidate-image').length === 6")
    wait_for_images(page)
    click_at(page.locator("img.candidate-image").nth(2), 0.4, 0.6)
    keys = page.locator("img.candidate-image").evaluate_all("images => images.map((image) => image.dataset.imageId)")

    reloaded = page.reload()
    assert reloaded.status == 409  # the server's answer is the locked page; this browser unlocks it
    page.wait_for_function("() => document.querySelectorAll('img.candidate-image').length === 6")
    wait_for_images(page)
    assert page.locator("#locked").is_hidden() and page.locator("#task-area").is_visible()
    assert page.locator(".candidate.selected img").evaluate_all(
        "images => images.map((image) => image.dataset.imageId)"
    ) == [keys[2]]

    intruder = browser_context_factory().new_page()
    answers = []
    intruder.on("response", lambda response: answers.append(response.url))
    refused = intruder.goto(url)
    assert refused.status == 409
    assert "This task is open in another browser" in intruder.locator("#locked").inner_text()
    intruder.wait_for_timeout(1000)
    assert intruder.locator("#task-area").is_hidden() and intruder.locator("img.candidate-image").count() == 0
    assert not [answer for answer in answers if "/api/worker/" in answer or "/media/" in answer], answers

    click_at(page.locator("img.candidate-image").nth(3), 0.5, 0.5)
    page.click("#save-page")
    page.wait_for_function("() => document.querySelector('#page-counter').textContent === 'Page 2 of 2'")
    page.click("#save-page")
    page.wait_for_selector("#done:not([hidden])")
    assignment = Assignment.objects.get(hit=hit)
    assert set(records_by_position(assignment, 0)) == set(range(6))
    assert {p for p, record in records_by_position(assignment, 0).items() if record.selected} == {2, 3}
    assert list(assignment.events.values_list("type", flat=True).order_by("pk"))[:2] == ["accepted", "resumed"]


def test_no_image_key_reaches_the_browser(browser_context_factory, live_server):
    """Everything the browser receives on the way through a HIT (preview, task page, API answers, image URLs and
    their file names, resume data after a reload) is free of image keys and class keys (wnids)."""
    hit = make_imagenet_hit(items_per_page=(8, 8))
    secrets = set(Image.objects.filter(dataset=hit.batch.dataset).values_list("key", flat=True))
    secrets |= set(Category.objects.filter(dataset=hit.batch.dataset).values_list("key", flat=True))
    context = browser_context_factory()
    received = []

    def keep(response):
        body = b""
        if response.request.method != "HEAD" and response.status != 204:
            try:
                body = response.body()
            except Exception:  # a beacon's answer, a redirect: nothing to read
                body = b""
        received.append((response.url, body))

    context.on("response", keep)
    page = context.new_page()
    page.goto(task_url(live_server, hit, assignment_id="ASSIGNMENT_ID_NOT_AVAILABLE"))
    wait_for_images(page)
    page.goto(task_url(live_server, hit))
    page.wait_for_function("() => document.querySelectorAll('img.candidate-image').length === 8")
    wait_for_images(page)
    click_at(page.locator("img.candidate-image").nth(1), 0.5, 0.5)
    page.reload()
    page.wait_for_function("() => document.querySelectorAll('img.candidate-image').length === 8")
    wait_for_images(page)
    page.click("#save-page")
    page.wait_for_function("() => document.querySelector('#page-counter').textContent === 'Page 2 of 2'")
    wait_for_images(page)
    page.click("#save-page")
    page.wait_for_selector("#done:not([hidden])")

    assert len(received) > 30
    media = [url for url, _ in received if "/media/" in url]
    assert len(media) >= 16 and all(re.search(r"/media/display/[0-9a-f]{32}\.jpg$", url) for url in media), media
    for url, body in received:
        leaked = [secret for secret in secrets if secret in url or secret.encode() in body]
        assert not leaked, f"{url} carries {leaked}"
        assert not re.search(rb"n\d{8}", body) and not re.search(r"n\d{8}", url), url
