"""Keyboard toggles on ImageNet-style pages (docs/worker-api.md): a time and usingKeyboard, never a point."""
import pytest

from annotator import models
from tests.annotator import worker_bodies as bodies
from tests.annotator.test_worker_api import call, coco, error_of, imagenet, stored_counts  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


def keyed(time):
    return {"time": time, "usingKeyboard": True}


def test_a_page_with_keyboard_toggles_is_stored_with_them_and_without_points(client, imagenet):  # noqa: F811
    hit, assignment, token = imagenet
    page = hit.pages.get(index=0)
    first, second, third = bodies.candidate_ids(page)[:3]
    body = bodies.imagenet_save(page, selected_ids=(first, third))
    records = {record["imageID"]: record for record in body["records"]}
    t = bodies.now_ms() - 20_000
    records[first]["selectedRecord"] = [keyed(t)]
    # Selected by keyboard, deselected by mouse, selected again by keyboard.
    records[second]["selectedRecord"] = [keyed(t + 100), keyed(t + 300)]
    records[second]["deselectedRecord"] = [{"x": 0.2, "y": 0.3, "time": t + 200}]
    records[second]["selected"] = True
    assert call(client, token, "POST", "pages/0/save", body).status_code == 201

    key_of = dict(zip(bodies.candidate_ids(page), page.items.order_by("position").values_list("image__key", flat=True)))
    rows = models.ImageNetRecord.objects.filter(assignment=assignment).select_related("image")
    by_key = {row.image.key: row for row in rows}
    stored = {candidate: by_key[key_of[candidate]] for candidate in (first, second, third)}
    assert stored[first].selected_record == [keyed(t)]
    assert stored[second].selected_record == [keyed(t + 100), keyed(t + 300)]
    assert stored[second].deselected_record == [{"x": 0.2, "y": 0.3, "time": t + 200}]
    # A mouse click keeps exactly the published shape: no usingKeyboard false added to it.
    assert set(stored[third].selected_record[0]) == {"x", "y", "time"}
    assert models.PageSubmission.objects.get(assignment=assignment).n_selected == 3


def test_keyboard_click_events_are_stored_as_sent(client, imagenet):  # noqa: F811
    _, _, token = imagenet
    key = call(client, token, "GET", "pages/0").json()["items"][0]["image_id"]
    toggle = {"type": "click", "image_id": key, "time": bodies.now_ms(), "selected": True, "usingKeyboard": True}
    assert call(client, token, "POST", "pages/0/events", bodies.event_flush([toggle])).status_code == 201
    assert call(client, token, "GET", "pages/0").json()["resume"]["events"] == [toggle]


@pytest.mark.parametrize("toggle, field, why", [
    ({"x": 0.5, "y": 0.5, "usingKeyboard": True}, "x", "a keyboard toggle has no point"),
    ({"y": 0.5, "usingKeyboard": True}, "y", "a keyboard toggle has no point"),
    ({}, "x", "required: a click has its point"),
    ({"x": 0.5}, "y", "required: a click has its point"),
    ({"x": 1.5, "y": 0.5}, "x", "is outside [0, 1]"),
])
def test_a_toggle_is_a_click_with_a_point_or_a_key_press_without_one(client, imagenet, toggle, field, why):  # noqa: F811
    hit, _, token = imagenet
    page = hit.pages.get(index=0)
    key = bodies.candidate_ids(page)[0]
    body = bodies.imagenet_save(page, selected_ids=(key,))
    body["records"][0]["selectedRecord"] = [{"time": bodies.now_ms() - 5_000, **toggle}]
    before = stored_counts()
    response = call(client, token, "POST", "pages/0/save", body)
    assert response.status_code == 400
    assert why in error_of(response)["fields"][f"records[0].selectedRecord[0].{field}"][0]
    assert stored_counts() == before

    event = {"type": "click", "image_id": key, "time": bodies.now_ms(), "selected": True, **toggle}
    response = call(client, token, "POST", "pages/0/events", bodies.event_flush([event]))
    assert response.status_code == 400
    assert why in error_of(response)["fields"][f"events[0].{field}"][0]
    assert stored_counts() == before


def test_the_using_keyboard_flag_must_be_a_boolean(client, imagenet):  # noqa: F811
    hit, _, token = imagenet
    page = hit.pages.get(index=0)
    key = bodies.candidate_ids(page)[0]
    body = bodies.imagenet_save(page, selected_ids=(key,))
    body["records"][0]["selectedRecord"] = [{"time": bodies.now_ms() - 5_000, "usingKeyboard": "yes"}]
    response = call(client, token, "POST", "pages/0/save", body)
    assert response.status_code == 400
    assert "records[0].selectedRecord[0].usingKeyboard" in error_of(response)["fields"]


def test_coco_actions_placed_with_the_keyboard_keep_the_flag(client, coco):  # noqa: F811
    hit, assignment, token = coco
    page = hit.pages.get(index=0)
    keyed_add = {**bodies.add("1", 0.5, 0.5, 5_000), "usingKeyboard": True}
    pointer_add = bodies.add("2", 0.3, 0.3, 6_000)
    body = bodies.coco_save(page, actions=[keyed_add, pointer_add])
    assert call(client, token, "POST", "pages/0/save", body).status_code == 201
    record = models.CocoRecord.objects.get(assignment=assignment)
    assert record.action_histories == [keyed_add, pointer_add]  # no usingKeyboard added to the pointer action
    assert record.final_positions == {"1": {"x": 0.5, "y": 0.5}, "2": {"x": 0.3, "y": 0.3}}

    bad = bodies.coco_save(hit.pages.get(index=1), actions=[{**bodies.add("1", 0.5, 0.5, 5_000), "usingKeyboard": 1}])
    before = stored_counts()
    response = call(client, token, "POST", "pages/1/save", bad)
    assert response.status_code == 400
    assert "records[0].actionHistories[0].usingKeyboard" in error_of(response)["fields"]
    assert stored_counts() == before
