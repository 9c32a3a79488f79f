"""The ImageNet-style task page in a real browser: clicks, hovers and traces stored as records, across a reload."""
import json
from urllib.parse import urlencode

import pytest

from annotator.models import Assignment, Batch, EventBatch, ImageNetRecord, PageSubmission, Provider
from tests.e2e.conftest import (
    click_at, make_imagenet_hit, point_in, stored_events, task_url, wait_for_images, wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

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
    page.wait_for_function("document.querySelectorAll('img.candidate-image').length === 48")
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
    page.wait_for_function("document.querySelectorAll('img.candidate-image').length === 48")
    wait_for_images(page)
    selected_after_reload = page.locator(".candidate.selected img").evaluate_all(
        "images => images.map((image) => image.dataset.imageId)"
    )
    keys = candidates.evaluate_all("images => images.map((image) => image.dataset.imageId)")
    assert selected_after_reload == [keys[0], keys[2]]

    click_at(candidates.nth(CLICK_AFTER_RELOAD[0]), *CLICK_AFTER_RELOAD[1:])
    page.click("#save-page")
    page.wait_for_function("document.querySelector('#page-counter').textContent === 'Page 2 of 2'")
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


@pytest.mark.xfail(strict=False, reason=(
    "intermittent in the full suite only (2 of 6 CI runs): no event request reached the server after leaving "
    "the page; passes alone and with its file every time; root cause not found yet"
))
def test_leaving_the_page_still_delivers_the_unflushed_events(page, live_server):
    hit = make_imagenet_hit(items_per_page=(6,))
    page.goto(task_url(live_server, hit))
    wait_for_images(page)
    click_at(page.locator("img.candidate-image").nth(4), 0.7, 0.2)
    # Well before the 3 s flush the worker leaves: pagehide hands the events to sendBeacon. (Navigating away
    # rather than page.close(): a closed tab's renderer may be torn down under load before pagehide runs.)
    page.goto("about:blank")

    assignment = Assignment.objects.get(hit=hit)
    clicks = wait_until(
        lambda: [e for e in stored_events(assignment, 0) if e["type"] == "click"], message="the beaconed click"
    )
    assert len(clicks) == 1
    assert_close(clicks[0], 0.7, 0.2)


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
        "Array.from(document.images).every((image) => image.complete && image.naturalWidth > 0)"
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
    page.goto(task_url(live_server, hit, assignment_id="ASSIGNMENT_ID_NOT_AVAILABLE"))
    wait_for_images(page)
    assert page.locator(".preview-banner").is_visible()
    assert page.locator("img.candidate-image").count() == 6
    click_at(page.locator("img.candidate-image").nth(0), 0.5, 0.5)
    assert page.locator(".candidate.selected").count() == 1
    assert page.locator("#save-page").is_hidden()
    page.wait_for_timeout(3500)
    assert not Assignment.objects.filter(hit=hit).exists()
    assert not EventBatch.objects.exists()
