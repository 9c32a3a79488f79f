"""The COCO-style task page in a real browser: icon drags, the group browser and its gate, reload, touch."""
import json

import pytest

from annotator.models import Assignment, Batch, CocoRecord, EventBatch, PageSubmission
from tests.e2e.conftest import (
    LOG_FETCHES, leave_after_every_timer, make_coco_hit, point_in, record_sends, stored_events, task_url,
    wait_for_images, wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CAT, DOG, CAR = "1", "2", "4"  # category keys in make_coco_hit (animal: cat dog horse; vehicle: car bicycle)


def tile(page, key):
    return page.locator(f".icon-tile[data-key='{key}']")


def drag(page, source, target_point):
    page.mouse.move(*point_in(source, 0.5, 0.3))
    page.mouse.down()
    page.mouse.move(*target_point, steps=8)
    page.mouse.up()


def image_point(page, fx, fy):
    return point_in(page.locator("img.coco-image"), fx, fy)


def assert_close(point, fx, fy):
    assert abs(point["x"] - fx) <= 0.01 and abs(point["y"] - fy) <= 0.01, (point, fx, fy)


def open_task(page, live_server, hit):
    page.goto(task_url(live_server, hit))
    page.locator("img.coco-image").wait_for()
    wait_for_images(page)


def test_icon_actions_and_group_browsing_are_stored_across_a_reload(page, live_server):
    hit = make_coco_hit(n_pages=2, variant=Batch.Variant.MAGNIFIER)
    open_task(page, live_server, hit)
    indicator = page.locator(".group-indicator")
    assert indicator.inner_text() == "1 / 3"
    assert page.locator("img.coco-image").bounding_box()["height"] == pytest.approx(450, abs=1)

    drag(page, tile(page, CAT), image_point(page, 0.3, 0.4))
    drag(page, tile(page, DOG), image_point(page, 0.7, 0.6))
    assert tile(page, CAT).get_attribute("class").split().count("placed") == 1
    # Move the cat, with the magnifier showing while the icon is over the image.
    page.mouse.move(*point_in(page.locator(f".placed-icon[data-key='{CAT}']"), 0.5, 0.3))
    page.mouse.down()
    page.mouse.move(*image_point(page, 0.5, 0.2), steps=8)
    assert page.locator(".magnifier").is_visible()
    page.mouse.up()
    assert page.locator(".magnifier").is_hidden()
    page.click(f".placed-icon[data-key='{CAT}']")  # a click is not a drag: no action
    # Remove the dog with its remove control, then add it again elsewhere.
    page.click(f".contains-entry[data-key='{DOG}'] .remove-icon")
    assert page.locator(f".placed-icon[data-key='{DOG}']").count() == 0
    drag(page, tile(page, DOG), image_point(page, 0.6, 0.7))

    page.click("#save-page")
    assert "Browse all 3 groups first" in page.locator("#page-message").inner_text()
    assert not PageSubmission.objects.exists()

    page.click(".group-next")
    assert indicator.inner_text() == "2 / 3"
    page.keyboard.press("ArrowRight")
    assert indicator.inner_text() == "3 / 3"
    page.keyboard.press("ArrowLeft")
    assert indicator.inner_text() == "2 / 3"
    # A car added and dragged off the image again: add then remove.
    drag(page, tile(page, CAR), image_point(page, 0.2, 0.8))
    drag(page, page.locator(f".placed-icon[data-key='{CAR}']"), (5, 5))
    assert page.locator(f".placed-icon[data-key='{CAR}']").count() == 0

    page.reload()
    page.locator("img.coco-image").wait_for()
    wait_for_images(page)
    assert sorted(page.locator(".contains-entry").evaluate_all("entries => entries.map((e) => e.dataset.key)")) == [
        CAT, DOG,
    ]
    assert indicator.inner_text() == "2 / 3"
    cat_box = page.locator(f".placed-icon[data-key='{CAT}']").bounding_box()
    image_box = page.locator("img.coco-image").bounding_box()
    assert abs((cat_box["x"] + cat_box["width"] / 2 - image_box["x"]) / image_box["width"] - 0.5) < 0.02

    page.click("#save-page")
    page.wait_for_function("() => document.querySelector('#page-counter').textContent === 'Page 2 of 2'")
    wait_for_images(page)
    assert page.locator(".contains-entry").count() == 0
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    drag(page, tile(page, "6"), image_point(page, 0.5, 0.5))
    page.click("#save-page")
    page.wait_for_selector("#done:not([hidden])")

    assignment = Assignment.objects.get(hit=hit)
    assert assignment.submitted_at is not None  # then auto-review may already have decided it
    record = CocoRecord.objects.get(assignment=assignment, page__index=0)
    actions = [(a["actionType"], a["iconType"]) for a in record.action_histories]
    assert actions == [
        ("add", CAT), ("add", DOG), ("move", CAT), ("remove", DOG), ("add", DOG), ("add", CAR), ("remove", CAR),
    ]
    add_cat, add_dog, move_cat, remove_dog, add_dog_again, add_car, remove_car = record.action_histories
    assert add_cat["pointFrom"] is None
    assert_close(add_cat["pointTo"], 0.3, 0.4)
    assert_close(add_dog["pointTo"], 0.7, 0.6)
    assert_close(move_cat["pointFrom"], 0.3, 0.4)
    assert_close(move_cat["pointTo"], 0.5, 0.2)
    assert_close(remove_dog["pointFrom"], 0.7, 0.6)
    assert "pointTo" not in remove_dog
    assert_close(add_dog_again["pointTo"], 0.6, 0.7)
    assert_close(remove_car["pointFrom"], 0.2, 0.8)
    times = [a["timeAt"] for a in record.action_histories]
    assert times == sorted(times) and times[0] > 0

    visits = [(visit["categoryIndex"], visit["usingKeyboard"]) for visit in record.category_histories]
    assert visits == [(0, False), (1, False), (2, True), (1, True)]
    assert record.tagged == [CAT, DOG]
    assert_close(record.final_positions[CAT], 0.5, 0.2)
    assert_close(record.final_positions[DOG], 0.6, 0.7)
    assert record.mouse_tracking and all(0 <= s["x"] <= 1 and 0 <= s["y"] <= 1 for s in record.mouse_tracking)
    assert record.image_height == 450
    assert PageSubmission.objects.get(assignment=assignment, page__index=0).client["variant"] == "magnifier"

    events = stored_events(assignment, 0)
    assert len([event for event in events if event["type"] == "action"]) == 7, "an action was lost or duplicated"
    assert len({json.dumps(event, sort_keys=True) for event in events}) == len(events)
    assert CocoRecord.objects.get(assignment=assignment, page__index=1).tagged == ["6"]


def test_an_icon_can_be_placed_by_touch(browser_context_factory, live_server):
    hit = make_coco_hit(n_pages=1)
    context = browser_context_factory(has_touch=True, is_mobile=False)
    page = context.new_page()
    open_task(page, live_server, hit)
    start = point_in(tile(page, DOG), 0.5, 0.3)
    end = image_point(page, 0.4, 0.55)
    touch = context.new_cdp_session(page)
    touch.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": start[0], "y": start[1]}]})
    for step in range(1, 11):
        x = start[0] + (end[0] - start[0]) * step / 10
        y = start[1] + (end[1] - start[1]) * step / 10
        touch.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
    touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})

    page.locator(f".placed-icon[data-key='{DOG}']").wait_for()
    assignment = Assignment.objects.get(hit=hit)
    actions = wait_until(
        lambda: [e for e in stored_events(assignment, 0) if e["type"] == "action"], message="the touch add action"
    )
    assert [(a["actionType"], a["iconType"]) for a in actions] == [("add", DOG)]
    assert_close(actions[0]["pointTo"], 0.4, 0.55)


def test_another_browser_resumes_from_the_server_alone(browser_context_factory, live_server):
    """No local storage to help: the page, its seq numbers and its page clock come back from the saved events."""
    hit = make_coco_hit(n_pages=1)
    first = browser_context_factory().new_page()
    open_task(first, live_server, hit)
    drag(first, tile(first, CAT), image_point(first, 0.3, 0.3))
    first.click(".group-next")
    assignment = Assignment.objects.get(hit=hit)
    wait_until(
        lambda: len([e for e in stored_events(assignment, 0) if e["type"] in ("action", "category")]) == 3,
        message="the first browser's flush",
    )
    first.context.close()

    second = browser_context_factory().new_page()
    open_task(second, live_server, hit)
    assert second.locator(".contains-entry").evaluate_all("entries => entries.map((e) => e.dataset.key)") == [CAT]
    assert second.locator(".group-indicator").inner_text() == "2 / 3"
    second.keyboard.press("ArrowRight")
    second.keyboard.press("ArrowRight")
    drag(second, tile(second, DOG), image_point(second, 0.6, 0.6))
    second.click("#save-page")
    second.wait_for_selector("#done:not([hidden])")

    record = CocoRecord.objects.get(assignment=assignment)
    assert [(a["actionType"], a["iconType"]) for a in record.action_histories] == [("add", CAT), ("add", DOG)]
    times = [a["timeAt"] for a in record.action_histories] + [v["timeAt"] for v in record.category_histories]
    assert record.action_histories[0]["timeAt"] < record.action_histories[1]["timeAt"]
    assert all(0 <= time <= record.time_spent for time in times)
    assert [v["categoryIndex"] for v in record.category_histories] == [0, 1, 2, 0]
    seqs = list(assignment.event_batches.order_by("seq").values_list("seq", flat=True))
    assert len(seqs) == len(set(seqs)), "the second browser reused a seq number"


def test_preview_lets_the_worker_try_the_browser_and_records_nothing(page, live_server):
    hit = make_coco_hit(n_pages=1)
    sent = record_sends(page)
    page.goto(task_url(live_server, hit, worker_id=""))
    page.locator("img.coco-image").wait_for()
    wait_for_images(page)
    assert page.locator(".preview-banner").is_visible()
    page.keyboard.press("ArrowRight")
    assert page.locator(".group-indicator").inner_text() == "2 / 3"
    drag(page, tile(page, CAR), image_point(page, 0.5, 0.5))
    assert page.locator(f".placed-icon[data-key='{CAR}']").count() == 1
    leave_after_every_timer(page)
    assert sent == []
    assert not Assignment.objects.exists()
    assert not EventBatch.objects.exists()


def test_offline_mid_page_the_icon_actions_and_the_save_arrive_once(browser_context_factory, live_server, settings):
    """The network drops while the worker drags icons, browses the groups and presses Save; back online, every
    action arrives once and the page is saved. (The ImageNet-style test holds a real 20 s outage with the default
    timings; here a short one with a short backoff schedule from the page config.)"""
    settings.WORKER_PAGE_TIMING = {"flush_interval_ms": 1_000, "retry_first_delay_ms": 300, "retry_max_delay_ms": 2_000}
    hit = make_coco_hit(n_pages=1)
    context = browser_context_factory()
    context.add_init_script(LOG_FETCHES)
    page = context.new_page()
    open_task(page, live_server, hit)
    drag(page, tile(page, CAT), image_point(page, 0.3, 0.4))
    assignment = Assignment.objects.get(hit=hit)
    wait_until(lambda: [e for e in stored_events(assignment, 0) if e["type"] == "action"], message="the first add")
    batches_before = EventBatch.objects.filter(assignment=assignment).count()

    context.set_offline(True)
    page.keyboard.press("ArrowRight")
    # The retry notice appears above the page and moves the image down: drag once it is there.
    status = page.locator("#save-status")
    status.wait_for(state="visible")
    assert "we are retrying" in status.inner_text()
    page.keyboard.press("ArrowLeft")
    drag(page, tile(page, DOG), image_point(page, 0.7, 0.6))
    drag(page, page.locator(f".placed-icon[data-key='{CAT}']"), image_point(page, 0.5, 0.2))
    page.keyboard.press("ArrowRight")
    drag(page, tile(page, CAR), image_point(page, 0.2, 0.8))
    page.click(".group-next")
    page.click("#save-page")
    page.wait_for_timeout(6_000)
    assert page.locator("#done").is_hidden() and page.locator("#page-message").inner_text() == "Saving..."
    assert EventBatch.objects.filter(assignment=assignment).count() == batches_before
    context.set_offline(False)
    page.wait_for_selector("#done:not([hidden])")

    log = page.evaluate("window.fetchLogForTest")
    assert len([e for e in log if e.get("failed")]) >= 3, "the page did not retry while offline"
    record = CocoRecord.objects.get(assignment=assignment, page__index=0)
    expected = [("add", CAT), ("add", DOG), ("move", CAT), ("add", CAR)]
    assert [(a["actionType"], a["iconType"]) for a in record.action_histories] == expected
    assert_close(record.action_histories[2]["pointTo"], 0.5, 0.2)
    assert [(v["categoryIndex"], v["usingKeyboard"]) for v in record.category_histories] == [
        (0, False), (1, True), (0, True), (1, True), (2, False),
    ]
    assert sorted(record.tagged) == sorted([CAT, DOG, CAR])
    events = stored_events(assignment, 0)
    actions = [(e["actionType"], e["iconType"]) for e in events if e["type"] == "action"]
    assert actions == expected, "an action was lost or stored twice"
    assert len({json.dumps(event, sort_keys=True) for event in events}) == len(events)
    batch_ids = list(EventBatch.objects.filter(assignment=assignment).values_list("client_batch_id", flat=True))
    assert len(batch_ids) == len(set(batch_ids))
    assert PageSubmission.objects.filter(assignment=assignment).count() == 1


def test_icons_can_be_placed_moved_and_removed_with_the_keyboard_alone(page, live_server):
    """Enter on an icon shows a cursor on the image, arrows move it, Enter drops it (Escape cancels); Enter on a
    placed icon moves it the same way, Delete removes it; Left / Right browse the groups with the focus kept."""
    hit = make_coco_hit(n_pages=1)
    open_task(page, live_server, hit)
    cursor = page.locator(".keyboard-cursor")
    assert tile(page, CAT).get_attribute("role") == "button" and tile(page, CAT).get_attribute("tabindex") == "0"

    tile(page, DOG).focus()
    page.keyboard.press("Enter")
    assert cursor.is_visible()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Escape")
    assert cursor.is_hidden() and page.locator(".placed-icon").count() == 0

    tile(page, CAT).focus()
    page.keyboard.press("Space")
    for key in ["ArrowLeft"] * 5 + ["ArrowUp"] * 5 + ["Shift+ArrowDown"]:
        page.keyboard.press(key)
    page.keyboard.press("Enter")
    marker = page.locator(f".placed-icon[data-key='{CAT}']")
    marker.wait_for()
    assert page.evaluate("document.activeElement.dataset.key") == CAT, "focus did not move to the placed icon"
    assert tile(page, CAT).get_attribute("aria-disabled") == "true"
    page.keyboard.press("Enter")
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    page.keyboard.press("Delete")
    assert marker.count() == 0

    tile(page, DOG).focus()
    page.keyboard.press("ArrowRight")
    assert page.locator(".group-indicator").inner_text() == "2 / 3"
    assert page.evaluate("document.activeElement.dataset.key") == CAR, "focus left the category browser"
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    page.keyboard.press("ArrowRight")
    assert page.locator(".group-indicator").inner_text() == "3 / 3"
    page.click("#save-page")
    page.wait_for_selector("#done:not([hidden])")

    record = CocoRecord.objects.get(assignment__hit=hit)
    actions = record.action_histories
    assert [(a["actionType"], a["iconType"], a.get("usingKeyboard")) for a in actions] == [
        ("add", CAT, True), ("move", CAT, True), ("remove", CAT, True), ("add", CAR, True),
    ]
    assert actions[0]["pointFrom"] is None
    assert_close(actions[0]["pointTo"], 0.4, 0.5)
    assert_close(actions[1]["pointFrom"], 0.4, 0.5)
    assert_close(actions[1]["pointTo"], 0.6, 0.5)
    assert_close(actions[2]["pointFrom"], 0.6, 0.5) and "pointTo" not in actions[2]
    assert_close(actions[3]["pointTo"], 0.5, 0.5)
    assert record.tagged == [CAR]
    assert [(v["categoryIndex"], v["usingKeyboard"]) for v in record.category_histories] == [
        (0, False), (1, True), (2, True),
    ]
    events = [e for e in stored_events(record.assignment, 0) if e["type"] == "action"]
    assert [(e["actionType"], e["iconType"]) for e in events] == [(a["actionType"], a["iconType"]) for a in actions]
