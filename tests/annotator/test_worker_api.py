"""The worker API (docs/worker-api.md): reads, event flushes, page saves, submit; every bad input refused."""
import copy
import io
import json
import re
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django.test.utils import CaptureQueriesContext

from annotator import models
from annotator.signals import assignment_submitted
from annotator.worker import services
from annotator.worker.tokens import make_entry_ticket, make_token
from tests.annotator import worker_bodies as bodies
from tests.factories import ImageFactory, make_coco_hit, make_imagenet_hit

pytestmark = pytest.mark.django_db


def call(client, token, method, path, body=None, raw=None, **extra):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    url = f"/api/worker/{path}"
    if method == "GET":
        return client.get(url, **headers, **extra)
    data = raw if raw is not None else json.dumps(body if body is not None else {})
    return client.post(url, data=data, content_type="application/json", **headers, **extra)


def accept(hit, worker_id="W1"):
    assignment = services.accept_assignment(hit, worker_id, f"A-{worker_id}")
    return assignment, make_token(assignment)


def error_of(response):
    payload = response.json()
    assert set(payload) == {"error"}, payload
    return payload["error"]


def stored_counts():
    return (
        models.ImageNetRecord.objects.count(), models.CocoRecord.objects.count(),
        models.PageSubmission.objects.count(), models.EventBatch.objects.count(),
        models.Event.objects.filter(type__in=["page_saved", "submitted"]).count(),
    )


@pytest.fixture
def imagenet(db):
    hit = make_imagenet_hit(n_pages=3)
    assignment, token = accept(hit)
    return hit, assignment, token


@pytest.fixture
def coco(db):
    hit = make_coco_hit(n_pages=2)
    assignment, token = accept(hit)
    return hit, assignment, token


def save_all_pages(client, hit, token):
    for page in hit.pages.order_by("index"):
        build = bodies.imagenet_save if hit.batch.task_kind == "imagenet" else bodies.coco_save
        response = call(client, token, "POST", f"pages/{page.index}/save", build(page))
        assert response.status_code == 201, response.content


# ---------------------------------------------------------------- reads


def test_assignment_reports_progress(client, imagenet):
    hit, assignment, token = imagenet
    body = call(client, token, "GET", "assignment").json()
    assert body == {
        "assignment_id": str(assignment.uuid), "kind": "imagenet", "variant": "default", "n_pages": 3,
        "completed_pages": [], "current_page": 0, "finished": False, "completion_code": None,
    }
    call(client, token, "POST", "pages/0/save", bodies.imagenet_save(hit.pages.get(index=0)))
    body = call(client, token, "GET", "assignment").json()
    assert body["completed_pages"] == [0] and body["current_page"] == 1


def test_imagenet_page_content_names_candidates_by_ids_and_shows_display_files(client, imagenet):
    hit, _, token = imagenet
    page = hit.pages.get(index=1)
    items = list(page.items.order_by("position").select_related("image"))
    body = call(client, token, "GET", "pages/1").json()
    assert body["index"] == 1 and body["kind"] == "imagenet" and body["saved"] is False
    assert body["category"] == {
        "name": page.category.name, "synonyms": [], "definition": page.category.definition, "reference_links": [],
    }
    assert len(body["items"]) == 48
    assert [item["image_id"] for item in body["items"]] == bodies.candidate_ids(page)
    assert body["items"][0] == {
        "image_id": bodies.candidate_ids(page)[0], "url": f"/media/{items[0].image.display_file.name}", "srcset": "",
        "position": 0,
    }
    assert all(re.fullmatch(r"/media/display/[0-9a-f]{32}\.jpg", item["url"]) for item in body["items"])
    # The same image on another page of the HIT has another id there.
    other = hit.pages.get(index=0)
    models.PageItem.objects.create(page=other, image=items[0].image, position=48, in_class=False)
    assert bodies.candidate_ids(page)[0] not in bodies.candidate_ids(other)
    assert body["resume"] == {"events": []}


def test_coco_page_content_has_image_and_groups(client, coco):
    hit, _, token = coco
    page = hit.pages.get(index=0)
    body = call(client, token, "GET", "pages/0").json()
    assert body["image"] == {
        "image_id": bodies.coco_image_id(page), "url": f"/media/{page.image.display_file.name}", "srcset": "",
        "width": 640, "height": 480,
    }
    assert body["image"]["image_id"] != page.image.key
    assert [g["name"] for g in body["groups"]] == ["person", "vehicle", "animal"]
    assert [c["key"] for c in body["groups"][1]["categories"]] == ["2", "3"]
    # COCO's own categories get the shipped Noto drawings (tests/annotator/test_icons.py: the others a drawn tile).
    assert body["groups"][0]["categories"][0]["icon"].endswith("/icons/noto/person.svg")


def test_page_beyond_the_hit_is_404(client, imagenet):
    _, _, token = imagenet
    response = call(client, token, "GET", "pages/3")
    assert response.status_code == 404
    assert error_of(response)["message"] == "page 3 is not in this HIT (it has 3 pages)"


# ---------------------------------------------------------------- tokens


@pytest.mark.parametrize("how", ["missing", "forged", "tampered"])
def test_bad_token_is_403_and_writes_nothing(client, imagenet, how):
    hit, assignment, token = imagenet
    bad = {"missing": None, "forged": "abc:def", "tampered": token[:-2] + ("AA" if token[-2:] != "AA" else "BB")}[how]
    for method, path, body in [
        ("GET", "assignment", None), ("GET", "pages/0", None),
        ("POST", "pages/0/events", bodies.event_flush([])),
        ("POST", "pages/0/save", bodies.imagenet_save(hit.pages.get(index=0))), ("POST", "submit", {}),
    ]:
        response = call(client, bad, method, path, body)
        assert response.status_code == 403, (path, response.content)
        assert error_of(response)["code"] in {"authentication_failed", "not_authenticated", "permission_denied"}
    assert stored_counts() == (0, 0, 0, 0, 0)


def test_expired_token_is_403(client, imagenet, settings):
    _, _, token = imagenet
    settings.WORKER_TOKEN_MAX_AGE = -1
    response = call(client, token, "GET", "assignment")
    assert response.status_code == 403
    assert "expired" in error_of(response)["message"]


def test_token_in_query_string_works_for_beacons(client, imagenet):
    _, assignment, token = imagenet
    response = client.post(
        f"/api/worker/pages/0/events?token={token}", data=json.dumps(bodies.event_flush([])),
        content_type="text/plain",
    )
    assert response.status_code == 201
    assert models.EventBatch.objects.get().assignment == assignment


def test_a_token_only_reaches_its_own_assignment(client, imagenet):
    hit, first, first_token = imagenet
    second, second_token = accept(make_imagenet_hit(n_pages=1), "W2")
    hidden = {"type": "visibility", "state": "hidden", "time": bodies.now_ms()}
    call(client, first_token, "POST", "pages/0/events", bodies.event_flush([hidden]))
    assert call(client, second_token, "GET", "assignment").json()["assignment_id"] == str(second.uuid)
    assert call(client, second_token, "GET", "pages/0").json()["resume"]["events"] == []
    response = call(client, second_token, "POST", "pages/0/save", bodies.imagenet_save(hit.pages.get(index=0)))
    assert response.status_code == 400  # the first HIT's images are not on the second HIT's page
    assert not models.PageSubmission.objects.exists()
    assert models.EventBatch.objects.get().assignment == first


# ---------------------------------------------------------------- events


def test_events_are_stored_once_and_resumed_in_order(client, imagenet):
    _, assignment, token = imagenet
    page_key = call(client, token, "GET", "pages/0").json()["items"][0]["image_id"]
    t = bodies.now_ms()
    click = {"type": "click", "image_id": page_key, "x": 0.5, "y": 0.25, "time": t, "selected": True}
    later = bodies.event_flush([click], seq=2)
    earlier = bodies.event_flush([
        {"type": "hover", "image_id": page_key, "action": "enter", "time": t - 10, "pointerType": "mouse"},
        {"type": "move", "image_id": page_key, "x": 0.5, "y": 0.2, "time": t - 5},
    ], seq=1)
    assert call(client, token, "POST", "pages/0/events", later).json() == {"stored": 1}
    response = call(client, token, "POST", "pages/0/events", earlier)
    assert response.status_code == 201 and response.json() == {"stored": 2}
    retry = call(client, token, "POST", "pages/0/events", earlier)
    assert retry.status_code == 200 and retry.json() == {"stored": 2}
    assert models.EventBatch.objects.count() == 2
    events = call(client, token, "GET", "pages/0").json()["resume"]["events"]
    assert [e["type"] for e in events] == ["hover", "move", "click"]
    assert events[0]["pointerType"] == "mouse"  # stored as sent
    batch = models.EventBatch.objects.get(seq=1)
    assert batch.received_at is not None and batch.client_sent_at == earlier["sent_at"]
    assignment.refresh_from_db()
    assert assignment.state == models.Assignment.State.IN_PROGRESS


def test_a_page_is_read_once_per_assignment_not_per_flush(client, imagenet, coco):
    """Flushes come every few seconds from every open page: after the first, one reads only the token's
    assignment and writes the batch (the page, its candidates and the category keys come from memory)."""
    for (_, _, token), event in ((imagenet, None), (coco, {"type": "track", "x": 0.2, "y": 0.3, "timeAt": 210})):
        if event is None:
            key = call(client, token, "GET", "pages/0").json()["items"][0]["image_id"]
            event = {"type": "move", "image_id": key, "x": 0.5, "y": 0.2, "time": bodies.now_ms()}
        assert call(client, token, "POST", "pages/0/events", bodies.event_flush([event], seq=1)).status_code == 201
        with CaptureQueriesContext(connection) as queries:
            response = call(client, token, "POST", "pages/0/events", bodies.event_flush([event], seq=2))
        assert response.status_code == 201
        tables = [q["sql"] for q in queries.captured_queries
                  if q["sql"].startswith(("SELECT", "INSERT", "UPDATE", "COPY", "1 times"))]
        assert len(tables) == 2, tables
        assert "annotator_assignment" in tables[0] and '"annotator_eventbatch"' in tables[1]
        assert tables[1].startswith(("INSERT", "COPY", "1 times: INSERT")), tables[1]


def test_coco_events_are_accepted(client, coco):
    _, _, token = coco
    response = call(client, token, "POST", "pages/0/events", bodies.event_flush([
        {"type": "category", "categoryIndex": 2, "categoryName": "animal", "timeAt": 100, "usingKeyboard": True},
        {"type": "action", **bodies.add("18", 0.01, 0.01, 200)},
        {"type": "track", "x": 0.2, "y": 0.3, "timeAt": 210},
    ]))
    assert response.status_code == 201, response.content


@pytest.mark.parametrize("event, field, why", [
    ({"type": "click", "image_id": "nope", "x": 0.5, "y": 0.5, "selected": True}, "events[0].image_id",
     "image nope is not on this page"),
    ({"type": "click", "image_id": None, "x": 1.5, "y": 0.5, "selected": True}, "events[0].x", "1.5 is outside [0, 1]"),
    ({"type": "move", "image_id": None, "x": 0.5, "y": -0.1}, "events[0].y", "-0.1 is outside [0, 1]"),
    ({"type": "hover", "image_id": None, "action": "hover"}, "events[0].action", "Invalid enum value 'hover'"),
    ({"type": "wiggle"}, "events[0].type", "Invalid value 'wiggle'"),
    ({"type": "track", "x": 0.5, "y": 0.5, "timeAt": -3}, "events[0].timeAt", "-3 is outside [0, 24 h]"),
    ({"type": "action", **bodies.add("1", 0.5, 0.5, 10)}, "events[0].type", "action events belong to COCO-style pages"),
])
def test_bad_imagenet_events_are_refused(client, imagenet, event, field, why):
    _, _, token = imagenet
    key = call(client, token, "GET", "pages/0").json()["items"][0]["image_id"]
    event = dict(event)
    if event.get("image_id", "") is None:
        event["image_id"] = key
    if event["type"] in {"click", "move", "hover"}:
        event.setdefault("time", bodies.now_ms())
    response = call(client, token, "POST", "pages/0/events", bodies.event_flush([event]))
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert field in error["fields"] and why in error["fields"][field][0], error
    assert error["message"].startswith(f"{field}: ")
    assert stored_counts() == (0, 0, 0, 0, 0)


def test_event_times_far_from_the_server_clock_are_refused(client, imagenet):
    _, _, token = imagenet
    batch = bodies.event_flush([{"type": "visibility", "state": "hidden", "time": 1_000}])
    error = error_of(call(client, token, "POST", "pages/0/events", batch))
    assert "more than a day away from the server clock" in error["fields"]["events[0].time"][0]
    assert models.EventBatch.objects.count() == 0


def test_coco_event_with_unknown_category_is_refused(client, coco):
    _, _, token = coco
    action = {"type": "action", **bodies.add("99", 0.5, 0.5, 10)}
    response = call(client, token, "POST", "pages/0/events", bodies.event_flush([action]))
    assert error_of(response)["fields"]["events[0].iconType"] == ["unknown category 99"]


def test_too_many_events_in_a_flush(client, imagenet):
    _, _, token = imagenet
    events = [{"type": "visibility", "state": "visible", "time": bodies.now_ms()}] * 5001
    response = call(client, token, "POST", "pages/0/events", bodies.event_flush(events))
    assert response.status_code == 400
    assert error_of(response)["fields"] == {"events": ["Expected `array` of length <= 5000"]}
    assert models.EventBatch.objects.count() == 0


@pytest.mark.parametrize("decision", ["approved", "rejected"])
def test_late_events_are_kept_after_submit_and_after_the_decision(client, imagenet, decision):
    """docs/worker-api.md: pagehide beacons come after the submit, often after the automatic decision too."""
    _, assignment, token = imagenet
    call(client, token, "POST", "submit", {"partial": True})
    hidden = [{"type": "visibility", "state": "hidden", "time": bodies.now_ms()}]
    assert call(client, token, "POST", "pages/0/events", bodies.event_flush(hidden)).status_code == 201
    models.Assignment.objects.filter(pk=assignment.pk).update(state=decision)
    beacon = client.post(f"/api/worker/pages/0/events?token={token}", json.dumps(bodies.event_flush(hidden)),
                         content_type="text/plain")
    assert beacon.status_code == 201 and beacon.json() == {"stored": 1}
    assert models.EventBatch.objects.count() == 2
    assignment.refresh_from_db()
    assert assignment.state == decision


def test_events_for_a_page_beyond_the_hit_are_404(client, imagenet):
    _, _, token = imagenet
    assert call(client, token, "POST", "pages/7/events", bodies.event_flush([])).status_code == 404


# ---------------------------------------------------------------- body limit


def test_body_over_the_limit_is_413_without_reading_it(client, imagenet, settings):
    hit, _, token = imagenet
    settings.WORKER_MAX_BODY_BYTES = 1_000
    body = bodies.imagenet_save(hit.pages.get(index=0))
    response = call(client, token, "POST", "pages/0/save", body)
    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "too_large" and "the limit is 1000" in error["message"]
    assert stored_counts() == (0, 0, 0, 0, 0)


def test_declared_length_over_the_limit_is_413_before_the_body_is_read(client, imagenet, settings):
    _, _, token = imagenet
    settings.WORKER_MAX_BODY_BYTES = 1_000
    response = client.post(
        "/api/worker/pages/0/events", data=json.dumps(bodies.event_flush([])), content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}", CONTENT_LENGTH="50000000",
    )
    assert response.status_code == 413
    assert error_of(response)["message"] == "the body has 50000000 bytes; the limit is 1000"
    assert models.EventBatch.objects.count() == 0


# ---------------------------------------------------------------- ImageNet-style saves


def test_imagenet_save_stores_records_and_summary(client, imagenet):
    hit, assignment, token = imagenet
    page = hit.pages.get(index=0)
    ids = bodies.candidate_ids(page)
    items = list(page.items.order_by("position").values_list("image__key", "in_class"))
    selected = set(ids[:10]) | {ids[40], ids[41]}  # 10 in class, 2 out of class
    body = bodies.imagenet_save(page, selected)
    toggled = body["records"][5]  # selected, deselected, selected again
    toggled["selectedRecord"].append({"x": 0.7, "y": 0.7, "time": toggled["selectedRecord"][0]["time"] + 300})
    toggled["deselectedRecord"] = [{"x": 0.6, "y": 0.6, "time": toggled["selectedRecord"][0]["time"] + 100}]
    response = call(client, token, "POST", "pages/0/save", body)
    assert response.status_code == 201 and response.json() == {"saved": True, "next_page": 1}
    records = models.ImageNetRecord.objects.filter(assignment=assignment, page=page)
    assert records.count() == 48 and records.filter(selected=True).count() == 12
    record = records.get(image__key=items[5][0])
    assert record.selected_record[1] == {"x": 0.7, "y": 0.7, "time": body["records"][5]["selectedRecord"][1]["time"]}
    assert record.deselected_record[0]["x"] == 0.6
    assert record.hovered_record[0]["action"] == "enter" and len(record.mouse_tracking) == 3
    assert record.image_position == {"x": 10, "y": 200} and record.image_width == 160
    submission = models.PageSubmission.objects.get(assignment=assignment, page=page)
    assert (submission.n_selected, submission.n_in_class, submission.n_in_class_selected) == (12, 36, 10)
    assert submission.client["viewport"] == {"w": 1280, "h": 800} and submission.client["dpr"] == 2
    assert submission.client["scroll"][0]["y"] == 120 and submission.time_spent_ms == 45_000
    assert models.Event.objects.get(type="page_saved").data["page"] == 0
    assignment.refresh_from_db()
    assert assignment.state == models.Assignment.State.IN_PROGRESS


def test_retried_save_is_harmless_and_another_save_conflicts(client, imagenet):
    hit, _, token = imagenet
    body = bodies.imagenet_save(hit.pages.get(index=0))
    assert call(client, token, "POST", "pages/0/save", body).status_code == 201
    retry = call(client, token, "POST", "pages/0/save", body)
    assert retry.status_code == 200 and retry.json() == {"saved": True, "next_page": 1}
    other = dict(body, save_id=str(uuid.uuid4()))
    conflict = call(client, token, "POST", "pages/0/save", other)
    assert conflict.status_code == 409 and "page 0 is already saved" in error_of(conflict)["message"]
    assert models.ImageNetRecord.objects.count() == 48 and models.PageSubmission.objects.count() == 1


def test_pages_are_saved_in_order(client, imagenet):
    hit, _, token = imagenet
    response = call(client, token, "POST", "pages/1/save", bodies.imagenet_save(hit.pages.get(index=1)))
    assert response.status_code == 409
    assert error_of(response)["message"] == "pages are saved in order: save page 0 before page 1"
    assert call(client, token, "POST", "pages/3/save", bodies.imagenet_save(hit.pages.get(index=1))).status_code == 404
    assert stored_counts() == (0, 0, 0, 0, 0)


def test_saved_flag_after_save(client, imagenet):
    hit, _, token = imagenet
    call(client, token, "POST", "pages/0/save", bodies.imagenet_save(hit.pages.get(index=0)))
    assert call(client, token, "GET", "pages/0").json()["saved"] is True


def _break(body, path, value):
    """Set body[path] (dotted with [i]) to value; value DELETE removes the key."""
    target = body
    parts = path.replace("[", ".").replace("]", "").split(".")
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    last = parts[-1]
    if value is DELETE:
        del target[int(last) if last.isdigit() else last]
    else:
        target[int(last) if last.isdigit() else last] = value


DELETE = object()
NOW = "now"


def _imagenet_bad_cases():
    """(name, mutate(body, page, other_page_key), field, why) for every ImageNet-style validation rule."""
    def set_(path, value):
        return lambda body, ctx: _break(body, path, value(ctx) if callable(value) else value)

    def selected_twice(body, ctx):
        record = body["records"][4]
        record["selected"] = True
        record["selectedRecord"] = [{"x": 0.2, "y": 0.2, "time": ctx["t"]}, {"x": 0.3, "y": 0.3, "time": ctx["t"] + 5}]

    def deselect_before_select(body, ctx):
        record = body["records"][4]
        record["selected"] = False
        record["selectedRecord"] = [{"x": 0.2, "y": 0.2, "time": ctx["t"] + 100}]
        record["deselectedRecord"] = [{"x": 0.2, "y": 0.2, "time": ctx["t"]}]

    def tracking_backwards(body, ctx):
        body["records"][4]["mouseTracking"][2]["time"] = body["records"][4]["mouseTracking"][0]["time"] - 1

    def too_many_samples(body, ctx):
        body["records"][4]["mouseTracking"] = [{"x": 0.5, "y": 0.5, "time": ctx["t"]}] * 10_001

    def too_many_clicks(body, ctx):
        body["records"][4]["selectedRecord"] = [{"x": 0.5, "y": 0.5, "time": ctx["t"]}] * 1_001

    return [
        ("unknown image", set_("records[4].imageID", "n99999999_1"), "records[4].imageID",
         "page 0: image n99999999_1 is not on this page"),
        ("image of another page", set_("records[4].imageID", lambda ctx: ctx["other_key"]), "records[4].imageID",
         "is not on this page"),
        ("duplicated candidate", lambda body, ctx: body["records"].__setitem__(4, copy.deepcopy(body["records"][3])),
         "records[4].imageID", "is already in records[3]"),
        ("missing candidate", lambda body, ctx: body["records"].pop(), "records",
         "page 0: 1 candidate(s) have no record"),
        ("x outside", set_("records[4].selectedRecord", lambda ctx: [
            {"x": 0.1, "y": 0.1, "time": ctx["t"]}, {"x": 1.7, "y": 0.1, "time": ctx["t"] + 1}]),
         "records[4].selectedRecord[1].x", "1.7 is outside [0, 1]"),
        ("y negative in tracking", set_("records[4].mouseTracking[1].y", -0.01), "records[4].mouseTracking[1].y",
         "-0.01 is outside [0, 1]"),
        ("x not a number", set_("records[4].mouseTracking[1].x", "left"), "records[4].mouseTracking[1].x",
         "Expected `int | float`, got `str`"),
        ("tracking time going back", tracking_backwards, "records[4].mouseTracking[2].time", "is earlier than"),
        ("absurd time", set_("records[4].hoveredRecord[0].time", 1_000), "records[4].hoveredRecord[0].time",
         "more than a day away from the server clock"),
        ("bad hover action", set_("records[4].hoveredRecord[0].action", "linger"), "records[4].hoveredRecord[0].action",
         "Invalid enum value 'linger'"),
        ("selected without a click", set_("records[4].selected", True), "records[4].selected",
         "true, but 0 selecting and 0 deselecting clicks leave the image unselected"),
        ("two selecting clicks without a deselect", selected_twice, "records[4].deselectedRecord",
         "2 selecting and 0 deselecting clicks cannot alternate"),
        ("deselect before select", deselect_before_select, "records[4].deselectedRecord[0].time",
         "comes before the selecting click"),
        ("too many tracking samples", too_many_samples, "records[4].mouseTracking",
         "Expected `array` of length <= 10000"),
        ("too many clicks", too_many_clicks, "records[4].selectedRecord", "Expected `array` of length <= 1000"),
        ("zero display width", set_("records[4].imageWidth", 0), "records[4].imageWidth", "0 is not a displayed size"),
        ("missing imageID", set_("records[4].imageID", DELETE), "records[4]",
         "Object missing required field `imageID`"),
        ("bad save id", set_("save_id", "not-a-uuid"), "save_id", "Invalid UUID"),
        ("absurd started_at", set_("started_at", 5), "started_at", "more than a day away"),
        ("negative time spent", set_("time_spent", -5), "time_spent", "-5 is outside [0, 24 h]"),
        ("scroll time going back", set_("client.scroll", lambda ctx: [
            {"x": 0, "y": 1, "time": ctx["t"]}, {"x": 0, "y": 2, "time": ctx["t"] - 1}]),
         "client.scroll[1].time", "is earlier than"),
        ("bad visibility state", set_("client.visibility[0].state", "gone"), "client.visibility[0].state",
         "Invalid enum value 'gone'"),
        ("client not an object", set_("client", None), "client", "Expected `object`, got `null`"),
        ("dpr not a number", set_("client.dpr", "retina"), "client.dpr", "Expected `int | float | null`, got `str`"),
    ]


@pytest.mark.parametrize("name, mutate, field, why", _imagenet_bad_cases(), ids=[c[0] for c in _imagenet_bad_cases()])
def test_bad_imagenet_save_is_refused_with_a_specific_error(client, imagenet, name, mutate, field, why):
    hit, _, token = imagenet
    page = hit.pages.get(index=0)
    body = bodies.imagenet_save(page)
    context = {"t": bodies.now_ms() - 10_000, "other_key": bodies.candidate_ids(hit.pages.get(index=1))[0]}
    mutate(body, context)
    response = call(client, token, "POST", "pages/0/save", body)
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["code"] == "invalid"
    assert field in error["fields"], error
    assert why in error["fields"][field][0], error
    assert error["message"].startswith(f"{field}: ")
    assert stored_counts() == (0, 0, 0, 0, 0)


def test_malformed_json_is_400(client, imagenet):
    _, _, token = imagenet
    response = call(client, token, "POST", "pages/0/save", raw="{not json")
    assert response.status_code == 400
    assert "JSON is malformed" in error_of(response)["fields"]["body"][0]


def test_number_that_is_not_finite_is_400(client, imagenet):
    hit, _, token = imagenet
    body = json.dumps(bodies.imagenet_save(hit.pages.get(index=0)))
    body = body.replace('"imageWidth": 160', '"imageWidth": 1e999', 1)
    error = error_of(call(client, token, "POST", "pages/0/save", raw=body))
    assert error["fields"] == {"records[0].imageWidth": ["Number out of range"]}
    assert stored_counts() == (0, 0, 0, 0, 0)


def test_image_known_to_the_dataset_but_foreign_to_the_page(client, imagenet):
    hit, _, token = imagenet
    stray = ImageFactory(dataset=hit.batch.dataset)
    body = bodies.imagenet_save(hit.pages.get(index=0))
    body["records"][0]["imageID"] = stray.key
    error = error_of(call(client, token, "POST", "pages/0/save", body))
    assert error["fields"]["records[0].imageID"] == [f"page 0: image {stray.key} is not on this page"]


def test_a_real_image_key_is_not_a_candidate_id(client, imagenet):
    """Pages name their images only by candidate ids: a save or an event naming an image by its key is refused."""
    hit, _, token = imagenet
    page = hit.pages.get(index=0)
    key = page.items.get(position=0).image.key
    body = bodies.imagenet_save(page)
    body["records"][0]["imageID"] = key
    error = error_of(call(client, token, "POST", "pages/0/save", body))
    assert error["fields"]["records[0].imageID"] == [f"page 0: image {key} is not on this page"]
    click = {"type": "click", "image_id": key, "x": 0.5, "y": 0.5, "time": bodies.now_ms(), "selected": True}
    error = error_of(call(client, token, "POST", "pages/0/events", bodies.event_flush([click])))
    assert error["fields"]["events[0].image_id"] == [f"image {key} is not on this page"]
    assert stored_counts() == (0, 0, 0, 0, 0)


def test_save_uses_few_queries(client, imagenet):
    hit, _, token = imagenet
    body = bodies.imagenet_save(hit.pages.get(index=0), n_tracking=60)
    with CaptureQueriesContext(connection) as queries:
        response = call(client, token, "POST", "pages/0/save", body)
    assert response.status_code == 201
    inserts = [q["sql"] for q in queries.captured_queries if re.match(r"(INSERT|COPY|\d+ times: INSERT)", q["sql"])]
    # One bulk insert of the 48 records (a COPY on PostgreSQL, one executemany elsewhere), one summary, one audit
    # event: no per-record queries.
    record_inserts = [sql for sql in inserts if "imagenetrecord" in sql]
    assert len(record_inserts) == 1
    assert record_inserts[0].startswith("48 times: INSERT") or record_inserts[0].endswith("FROM STDIN (48 rows)")
    assert len(inserts) == 3
    assert len(queries.captured_queries) <= 14, [q["sql"][:80] for q in queries.captured_queries]


# ---------------------------------------------------------------- COCO-style saves


def test_coco_save_replays_actions_and_summarises(client, coco):
    hit, assignment, token = coco
    page = hit.pages.get(index=0)
    actions = [
        bodies.add("1", 0.9, 0.9, 1_000),                      # person, off its polygon at first
        bodies.move("1", (0.9, 0.9), (0.3125, 0.4167), 2_000),  # (200, 200) px: inside the person polygon
        bodies.add("3", 0.78, 0.3125, 3_000),                   # (499, 150) px: inside the car's bbox
        bodies.add("18", 0.5, 0.5, 4_000),                      # dog in the middle: off its RLE mask
        bodies.remove("18", (0.5, 0.5), 5_000),
        bodies.add("18", 0.008, 0.01, 6_000),                   # (5, 4.8) px: on the RLE mask
        bodies.add("2", 0.5, 0.95, 7_000),                      # a bicycle that is not in the image
    ]
    response = call(client, token, "POST", "pages/0/save", bodies.coco_save(page, actions))
    assert response.status_code == 201, response.content
    record = models.CocoRecord.objects.get(assignment=assignment, page=page)
    assert record.final_positions == {
        "1": {"x": 0.3125, "y": 0.4167}, "3": {"x": 0.78, "y": 0.3125}, "18": {"x": 0.008, "y": 0.01},
        "2": {"x": 0.5, "y": 0.95},
    }
    assert record.tagged == ["1", "18", "2", "3"]
    assert [a["actionType"] for a in record.action_histories] == ["add", "move", "add", "add", "remove", "add", "add"]
    assert "pointTo" not in record.action_histories[4]
    assert record.category_histories[1]["usingKeyboard"] is True
    assert record.image_width == 600 and record.time_spent == 25_000
    submission = models.PageSubmission.objects.get(assignment=assignment, page=page)
    summary = (submission.n_gt_categories, submission.n_tagged_correct, submission.n_icons, submission.n_icons_on_mask)
    assert summary == (3, 3, 4, 3)


def _coco_bad_cases():
    def actions(*items):
        return lambda body: body["records"][0].__setitem__("actionHistories", list(items))

    def unbrowsed(body):
        body["records"][0]["categoryHistories"] = body["records"][0]["categoryHistories"][:1]

    def visit(index):
        return lambda body: body["records"][0]["categoryHistories"].append(
            {"categoryIndex": index, "categoryName": "x", "timeAt": 90_000, "usingKeyboard": False})

    def record(field, value):
        return lambda body: body["records"][0].__setitem__(field, value)

    add, move, remove = bodies.add, bodies.move, bodies.remove
    no_point_to = add("1", 0.5, 0.5, 10)
    del no_point_to["pointTo"]
    no_point_from = move("1", (0.5, 0.5), (0.6, 0.6), 20)
    no_point_from["pointFrom"] = None
    return [
        ("unknown category", actions(add("99", 0.5, 0.5, 10)), "records[0].actionHistories[0].iconType",
         "unknown category 99"),
        ("move of an icon never added", actions(move("1", (0.5, 0.5), (0.6, 0.6), 10)),
         "records[0].actionHistories[0]", "move of 1: that icon was never added"),
        ("remove of an icon never added", actions(remove("3", (0.5, 0.5), 10)),
         "records[0].actionHistories[0]", "remove of 3: that icon was never added"),
        ("move of a removed icon",
         actions(add("1", 0.5, 0.5, 10), remove("1", (0.5, 0.5), 20), move("1", (0.5, 0.5), (0.1, 0.1), 30)),
         "records[0].actionHistories[2]", "move of 1: that icon was removed by action 1"),
        ("remove of a removed icon",
         actions(add("1", 0.5, 0.5, 10), remove("1", (0.5, 0.5), 20), remove("1", (0.5, 0.5), 30)),
         "records[0].actionHistories[2]", "remove of 1: that icon was removed by action 1"),
        ("double add", actions(add("1", 0.5, 0.5, 10), add("1", 0.2, 0.2, 20)),
         "records[0].actionHistories[1]", "add of 1: that icon is already on the image"),
        ("add without pointTo", actions(no_point_to), "records[0].actionHistories[0]", "add of 1 needs pointTo"),
        ("move without pointFrom", actions(add("1", 0.5, 0.5, 10), no_point_from), "records[0].actionHistories[1]",
         "move of 1 needs pointFrom"),
        ("point outside", actions(add("1", 0.5, 1.2, 10)), "records[0].actionHistories[0].pointTo.y",
         "1.2 is outside [0, 1]"),
        ("actions going back in time", actions(add("1", 0.5, 0.5, 50), add("3", 0.5, 0.5, 40)),
         "records[0].actionHistories[1].timeAt", "40 is earlier than 50"),
        ("negative timeAt", actions(add("1", 0.5, 0.5, -1)), "records[0].actionHistories[0].timeAt",
         "-1 is outside [0, 24 h]"),
        ("bad actionType", actions({**add("1", 0.5, 0.5, 10), "actionType": "drop"}),
         "records[0].actionHistories[0].actionType", "Invalid enum value 'drop'"),
        ("a group never browsed", unbrowsed, "records[0].categoryHistories", "group(s) 1, 2 of 3 were never browsed"),
        ("unknown group", visit(3), "records[0].categoryHistories[3].categoryIndex", "3 is not a group index (0..2)"),
        ("another image", record("image_id", "77"), "records[0].image_id", ", not 77"),
        ("the image's real key", record("image_id", "1000"), "records[0].image_id", ", not 1000"),
        ("tracking outside", record("mouseTracking", [{"x": 1.01, "y": 0.2, "timeAt": 5}]),
         "records[0].mouseTracking[0].x", "1.01 is outside [0, 1]"),
        ("two records", lambda body: body["records"].append(copy.deepcopy(body["records"][0])), "records",
         "a COCO-style page has exactly one record, got 2"),
        ("too many actions", actions(*[add("1", 0.5, 0.5, 10)] * 1_001), "records[0].actionHistories",
         "Expected `array` of length <= 1000"),
    ]


@pytest.mark.parametrize("name, mutate, field, why", _coco_bad_cases(), ids=[c[0] for c in _coco_bad_cases()])
def test_bad_coco_save_is_refused_with_a_specific_error(client, coco, name, mutate, field, why):
    hit, _, token = coco
    body = bodies.coco_save(hit.pages.get(index=0))
    mutate(body)
    response = call(client, token, "POST", "pages/0/save", body)
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert field in error["fields"], error
    assert why in error["fields"][field][0], error
    assert stored_counts() == (0, 0, 0, 0, 0)


# ---------------------------------------------------------------- submit


def test_submit_requires_every_page_unless_partial(client, imagenet):
    hit, assignment, token = imagenet
    call(client, token, "POST", "pages/0/save", bodies.imagenet_save(hit.pages.get(index=0)))
    response = call(client, token, "POST", "submit", {})
    assert response.status_code == 409
    assert error_of(response)["message"] == (
        "1 of 3 pages are saved: save page 1 first, or submit with partial=true to hand in what is saved"
    )
    assignment.refresh_from_db()
    assert assignment.state == models.Assignment.State.IN_PROGRESS
    response = call(client, token, "POST", "submit", {"partial": True})
    assert response.status_code == 200
    assignment.refresh_from_db()
    assert assignment.state == models.Assignment.State.SUBMITTED
    assert models.Event.objects.get(type="submitted").data == {"pages_saved": 1, "n_pages": 3, "partial": True}


def test_submit_issues_one_code_and_a_second_submit_changes_nothing(client, imagenet):
    hit, assignment, token = imagenet
    save_all_pages(client, hit, token)
    received = []

    def receiver(sender, assignment, **kwargs):
        received.append(assignment.pk)

    assignment_submitted.connect(receiver)
    try:
        first = call(client, token, "POST", "submit", {})
        assignment.refresh_from_db()
        submitted_at = assignment.submitted_at
        second = call(client, token, "POST", "submit", {})
    finally:
        assignment_submitted.disconnect(receiver)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    code = first.json()["completion_code"]
    assert len(code) == 16 and code == assignment.completion_code
    assert first.json()["turk_submit_to"] is None and first.json()["redirect_url"] is None
    assignment.refresh_from_db()
    assert assignment.state == models.Assignment.State.SUBMITTED and assignment.submitted_at == submitted_at
    assert models.Event.objects.filter(type="submitted").count() == 1 and received == [assignment.pk]
    progress = call(client, token, "GET", "assignment").json()
    assert progress["finished"] is True and progress["completion_code"] == code and progress["current_page"] is None


def test_codes_differ_between_assignments(client, imagenet):
    hit, _, token = imagenet
    other_hit = make_imagenet_hit(n_pages=1)
    _, other_token = accept(other_hit, "W9")
    save_all_pages(client, hit, token)
    save_all_pages(client, other_hit, other_token)
    first = call(client, token, "POST", "submit", {}).json()["completion_code"]
    second = call(client, other_token, "POST", "submit", {}).json()["completion_code"]
    assert first != second


def test_nothing_is_saved_after_submit(client, imagenet):
    hit, _, token = imagenet
    call(client, token, "POST", "submit", {"partial": True})
    response = call(client, token, "POST", "pages/0/save", bodies.imagenet_save(hit.pages.get(index=0)))
    assert response.status_code == 409 and "assignment is submitted" in error_of(response)["message"]
    assert models.PageSubmission.objects.count() == 0


def test_mturk_submit_points_to_external_submit(client, db):
    hit = make_imagenet_hit(n_pages=1, provider=models.Provider.MTURK)
    assignment = services.accept_assignment(hit, "AWORKER", "3AMYW", "https://workersandbox.mturk.com/")
    token = make_token(assignment)
    save_all_pages(client, hit, token)
    answer = call(client, token, "POST", "submit", {}).json()
    assert answer["turk_submit_to"] == "https://workersandbox.mturk.com/mturk/externalSubmit"
    assert answer["market_assignment_id"] == "3AMYW" and answer["redirect_url"] is None


def test_link_submit_redirects_to_the_completion_url(client, db):
    completion_url = "https://app.prolific.com/submissions/complete?cc=C0DE"
    hit = make_imagenet_hit(n_pages=1, provider_config={"completion_url": completion_url})
    assignment, token = accept(hit)
    save_all_pages(client, hit, token)
    answer = call(client, token, "POST", "submit", {}).json()
    assert answer["redirect_url"] == "https://app.prolific.com/submissions/complete?cc=C0DE"
    assert answer["turk_submit_to"] is None


def test_coco_hit_end_to_end(client, coco):
    hit, assignment, token = coco
    save_all_pages(client, hit, token)
    answer = call(client, token, "POST", "submit", {})
    assert answer.status_code == 200
    assert models.CocoRecord.objects.filter(assignment=assignment).count() == 2


# ---------------------------------------------------------------- throttle


def test_one_token_cannot_flood_the_server(client, imagenet, monkeypatch):
    from django.core.cache import cache
    from rest_framework.throttling import ScopedRateThrottle

    _, _, token = imagenet
    # The rates are read into the class when DRF loads; monkeypatch puts the real ones back after the test.
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"worker": "3/min"})
    cache.clear()
    try:
        statuses = [call(client, token, "GET", "assignment").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        response = call(client, token, "GET", "assignment")
        assert error_of(response)["code"] == "throttled"
        other_hit = make_imagenet_hit(n_pages=1)
        _, other_token = accept(other_hit, "W7")
        assert call(client, other_token, "GET", "assignment").status_code == 200
    finally:
        cache.clear()


# ---------------------------------------------------------------- NUL characters (PostgreSQL cannot store them)


@pytest.mark.parametrize("where, expected_field", [
    ("event_value", "events[0].note"), ("event_key", "events[0].no\\u0000te"), ("client", "client.user_agent"),
])
def test_a_nul_character_anywhere_in_a_stored_body_is_a_400_naming_it(client, imagenet, where, expected_field):
    """Each of these was a DataError from jsonb and a 500 (found while fuzzing the schema)."""
    hit, _, token = imagenet
    before = stored_counts()
    if where == "client":
        body = bodies.imagenet_save(hit.pages.get(index=0))
        body["client"]["user_agent"] = "Mozilla\x00"
        response = call(client, token, "POST", "pages/0/save", body)
    else:
        extra = {"note": "a\x00b"} if where == "event_value" else {"no\x00te": 1}
        event = {"type": "visibility", "state": "hidden", "time": bodies.now_ms(), **extra}
        response = call(client, token, "POST", "pages/0/events", bodies.event_flush([event]))
    assert response.status_code == 400, response.content
    why = "contains a NUL character (\\u0000), which cannot be stored"
    assert error_of(response)["fields"] == {expected_field: [why]}
    assert stored_counts() == before


def test_an_escaped_backslash_before_u0000_is_just_text(client, imagenet):
    hit, _, token = imagenet
    event = {"type": "visibility", "state": "hidden", "time": bodies.now_ms(), "note": "\\u0000"}
    response = call(client, token, "POST", "pages/0/events", bodies.event_flush([event]))
    assert response.status_code == 201, response.content


# ---------------------------------------------------------------- tokens that stop working


def writes(hit, page_index=0):
    """(method, path, body) of each write the page makes: events, a page save, submit."""
    page = hit.pages.get(index=page_index)
    click = {"type": "click", "image_id": bodies.candidate_ids(page)[0], "x": 0.5, "y": 0.5,
             "time": bodies.now_ms(), "selected": True}
    return [
        ("POST", f"pages/{page_index}/events", bodies.event_flush([click])),
        ("POST", f"pages/{page_index}/save", bodies.imagenet_save(page)),
        ("POST", "submit", {"partial": True}),
        ("GET", "assignment", None),
        ("GET", f"pages/{page_index}", None),
    ]


def test_a_blocked_workers_tokens_stop_working_at_once(client, imagenet):
    hit, assignment, token = imagenet
    assert call(client, token, "POST", "pages/0/save", bodies.imagenet_save(hit.pages.get(index=0))).status_code == 201
    before = stored_counts()
    assignment.worker.blocked = True
    assignment.worker.save()
    for method, path, body in writes(hit, page_index=1):
        response = call(client, token, method, path, body)
        assert response.status_code == 403, (path, response.content)
        error = error_of(response)
        assert error["code"] == "permission_denied", error
        assert error["message"] == "your worker account is blocked: this work can no longer be changed"
    assert stored_counts() == before
    assignment.refresh_from_db()
    assert assignment.state == models.Assignment.State.IN_PROGRESS


def test_an_assignment_past_its_deadline_expires_and_its_token_stops_working(client, imagenet):
    hit, assignment, token = imagenet
    models.Assignment.objects.filter(pk=assignment.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    for method, path, body in writes(hit):
        response = call(client, token, method, path, body)
        assert response.status_code == 403, (path, response.content)
        assert "the time for this task ran out" in error_of(response)["message"]
    assert stored_counts() == (0, 0, 0, 0, 0)
    assignment.refresh_from_db()
    assert assignment.state == models.Assignment.State.EXPIRED
    assert models.Event.objects.filter(type="expired", assignment=assignment).count() == 1


def test_submitted_work_never_expires_and_still_takes_late_events(client, imagenet):
    hit, assignment, token = imagenet
    save_all_pages(client, hit, token)
    assert call(client, token, "POST", "submit", {}).status_code == 200
    models.Assignment.objects.filter(pk=assignment.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    events, *_ = writes(hit)
    assert call(client, token, *events).status_code == 201
    assignment.refresh_from_db()
    assert assignment.state == models.Assignment.State.SUBMITTED


def resume(client, token, entry):
    return call(client, token, "POST", "resume", {"entry": entry})


def test_resume_needs_the_ticket_of_the_same_worker_on_the_same_hit(client, imagenet):
    hit, assignment, token = imagenet
    other_hit = make_imagenet_hit(n_pages=1)
    own = make_entry_ticket(hit.pk, "link", "W1", "A-W1", "")
    answer = resume(client, token, own)
    assert answer.status_code == 200
    refreshed = answer.json()["token"]
    assert call(client, refreshed, "GET", "assignment").json()["assignment_id"] == str(assignment.uuid)
    for ticket in [make_entry_ticket(hit.pk, "link", "VICTIM", "", ""),
                   make_entry_ticket(other_hit.pk, "link", "W1", "A-W1", ""),
                   make_entry_ticket(hit.pk, "mturk", "W1", "A-W1", "")]:
        response = resume(client, token, ticket)
        assert response.status_code == 403
        assert error_of(response)["message"] == "the work this browser kept is not this worker's work on this task"
    assert resume(client, token, own + "x").status_code == 403
    assert "not valid" in error_of(resume(client, token, own + "x"))["message"]
    assert resume(client, "forged", own).status_code == 403
    assert resume(client, token, 7).status_code == 400
    assert models.Event.objects.filter(type="resumed").count() == 1


def test_an_entry_ticket_expires(client, imagenet, monkeypatch):
    _, _, token = imagenet
    ticket = make_entry_ticket(imagenet[0].pk, "link", "W1", "A-W1", "")
    monkeypatch.setattr("annotator.worker.tokens.ENTRY_TICKET_MAX_AGE_S", -1)
    response = resume(client, token, ticket)
    assert response.status_code == 403 and "expired" in error_of(response)["message"]


def test_an_image_without_a_display_version_gets_one_never_its_original(client, coco):
    """The original's name carries the image key (images/<dataset>/<file name>): a page never links it. An image
    still waiting for its display version (import --defer-display) gets it when a page first shows it."""
    import io

    from django.core.files.base import ContentFile
    from PIL import Image as PilImage

    hit, _, token = coco
    image = hit.pages.get(index=0).image
    buffer = io.BytesIO()
    PilImage.new("RGB", (1600, 1200), (20, 120, 200)).save(buffer, "JPEG")
    image.file.save("000000581929.jpg", ContentFile(buffer.getvalue()), save=False)
    image.display_file = ""
    image.save()
    shown = call(client, token, "GET", "pages/0").json()["image"]
    image.refresh_from_db()
    url, srcset = shown["url"], shown["srcset"]
    assert re.fullmatch(r"/media/display/[0-9a-f]{32}\.jpg", url) and url == image.display_file.url
    assert "581929" not in url and "581929" not in srcset
    # Sized for the page (450 px high) and, for high-density screens, twice that: a random name of its own.
    assert srcset == f"{url} 1x, {image.display_file_2x.url} 2x"
    assert re.fullmatch(r"/media/display/2x/[0-9a-f]{32}\.jpg", image.display_file_2x.url)
    with PilImage.open(image.display_file) as display, PilImage.open(image.display_file_2x) as display_2x:
        assert (display.size, display_2x.size) == ((640, 480), (1280, 960))


# ---------------------------------------------------------------- hostile bodies (issue 14, point 4)


def deep(levels):
    return "[" * levels + "]" * levels


def hostile_events(token_page_key, levels):
    event = {"type": "hover", "image_id": token_page_key, "action": "enter", "time": bodies.now_ms()}
    return json.dumps(bodies.event_flush([event])).replace('"action"', f'"extra": {deep(levels)}, "action"', 1)


@pytest.mark.parametrize("levels", [33, 500, 950, 990, 100_000])
def test_deeply_nested_json_is_400_and_stores_nothing(client, imagenet, levels):
    """Fields the schema does not know are stored as sent (events, the save's client): their depth is limited."""
    hit, _, token = imagenet
    page_key = bodies.candidate_ids(hit.pages.get(index=0))[0]
    save = json.dumps(bodies.imagenet_save(hit.pages.get(index=0)))
    save = save.replace('"client": {', f'"client": {{"extra": {deep(levels)}, ', 1)
    hostile = [("pages/0/events", hostile_events(page_key, levels), "events"), ("pages/0/save", save, "client")]
    if levels >= 990:
        hostile.append(("submit", f'{{"partial": true, "extra": {deep(levels)}}}', "body"))

    for path, raw, field in hostile:
        response = call(client, token, "POST", path, raw=raw)
        assert response.status_code == 400, (path, response.content[:200])
        # From about 900 levels (less the stack in use) msgspec runs out of stack in the fields it skips: the whole
        # body is refused before its stored parts are looked at.
        ((named, why),) = error_of(response)["fields"].items()
        assert why == ["JSON nested deeper than 32 levels"] and named in ({field, "body"} if levels > 900 else {field})
    assert stored_counts() == (0, 0, 0, 0, 0)


def test_extra_fields_nested_within_the_limit_are_still_stored_as_sent(client, imagenet):
    hit, _, token = imagenet
    page_key = bodies.candidate_ids(hit.pages.get(index=0))[0]
    assert call(client, token, "POST", "pages/0/events", raw=hostile_events(page_key, 28)).status_code == 201
    # Brackets inside strings are text, not nesting.
    text = json.dumps(bodies.event_flush([{"type": "hover", "image_id": page_key, "action": "leave",
                                           "time": bodies.now_ms(), "note": '[{"\\' + "[" * 100}]))
    assert call(client, token, "POST", "pages/0/events", raw=text).status_code == 201
    events = call(client, token, "GET", "pages/0").json()["resume"]["events"]
    assert events[0]["extra"] == json.loads(deep(28)) and events[1]["note"] == '[{"\\' + "[" * 100


@pytest.mark.parametrize("where", ["events", "save"])
def test_a_body_that_is_not_utf8_is_400_and_stores_nothing(client, imagenet, where):
    hit, _, token = imagenet
    page = hit.pages.get(index=0)
    if where == "events":
        event = {"type": "hover", "image_id": bodies.candidate_ids(page)[0], "action": "enter",
                 "time": bodies.now_ms(), "note": "caf\u00e9 XX"}
        raw, path = json.dumps(bodies.event_flush([event]), ensure_ascii=False).encode(), "pages/0/events"
    else:
        raw, path = json.dumps(bodies.imagenet_save(page), ensure_ascii=False).encode(), "pages/0/save"
        raw = raw.replace(b'"user_agent": "pytest"', '"user_agent": "caf\u00e9 XX"'.encode())
    raw = raw.replace(b"XX", b"\xff\xfe")

    response = call(client, token, "POST", path, raw=raw)

    assert response.status_code == 400, response.content[:300]
    (why,) = error_of(response)["fields"]["events" if where == "events" else "client"]
    assert re.fullmatch(r"byte \d+ is not UTF-8 \(invalid start byte\)", why)
    assert stored_counts() == (0, 0, 0, 0, 0)


def chunked(client, token, path, raw):
    """A body sent with Transfer-Encoding: chunked, as the WSGI server hands it over: no Content-Length, the
    server's input stream decoding the chunks."""
    return client.post(f"/api/worker/{path}", data=b"", content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_TRANSFER_ENCODING="chunked", CONTENT_LENGTH="",
                       **{"wsgi.input": io.BytesIO(raw)})


def test_a_chunked_body_is_read_and_one_over_the_limit_is_413(client, imagenet, settings):
    hit, _, token = imagenet
    page_key = bodies.candidate_ids(hit.pages.get(index=0))[0]
    event = {"type": "hover", "image_id": page_key, "action": "enter", "time": bodies.now_ms()}

    response = chunked(client, token, "pages/0/events", json.dumps(bodies.event_flush([event])).encode())
    assert response.status_code == 201 and response.json() == {"stored": 1}

    settings.WORKER_MAX_BODY_BYTES = 1_000
    response = chunked(client, token, "pages/0/events", json.dumps(bodies.event_flush([event] * 50)).encode())
    assert response.status_code == 413
    assert error_of(response) == {"code": "too_large", "message": "the body is over the limit of 1000 bytes",
                                  "fields": {}}
    assert models.EventBatch.objects.count() == 1


@pytest.mark.parametrize("where, field", [
    ("imagePosition.x", "records[0].imagePosition.x"),
    ("imagePosition.y", "records[0].imagePosition.y"),
    ("scroll", "client.scroll[0].y"),
])
def test_positions_in_px_far_off_any_page_are_400(client, imagenet, where, field):
    hit, _, token = imagenet
    body = bodies.imagenet_save(hit.pages.get(index=0))
    if where == "scroll":
        body["client"]["scroll"][0]["y"] = 1e308
    else:
        body["records"][0]["imagePosition"][where[-1]] = -1e308 if where.endswith("y") else 1e308

    error = error_of(call(client, token, "POST", "pages/0/save", body))

    assert list(error["fields"]) == [field]
    assert error["fields"][field][0].endswith("is not a position on the page in px (|px| <= 1000000)")
    assert stored_counts() == (0, 0, 0, 0, 0)


def test_a_scroll_event_far_off_any_page_is_400(client, imagenet):
    _, _, token = imagenet
    scroll = {"type": "scroll", "x": 0, "y": 1e308, "time": bodies.now_ms()}
    error = error_of(call(client, token, "POST", "pages/0/events", bodies.event_flush([scroll])))
    assert list(error["fields"]) == ["events[0].y"]
    assert models.EventBatch.objects.count() == 0
