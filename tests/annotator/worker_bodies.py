"""Valid worker API bodies for the test HITs of tests/factories.py; tests break them one field at a time.

Like the page, they name images by the candidate ids the server gives them (annotator.candidates), never by key.
"""
import time
import uuid

from annotator.worker.selectors import category_groups, page_candidates, page_image_id


def now_ms():
    return int(time.time() * 1000)


def candidate_ids(page):
    """The ids an ImageNet-style page gives its candidates, in grid order."""
    return list(page_candidates(page, page.hit.candidate_key))


def coco_image_id(page):
    """The id a COCO-style page gives its image."""
    return page_image_id(page, page.hit.candidate_key)


def imagenet_record(candidate_id, selected=False, start=None, n_tracking=3):
    start = start or now_ms() - 60_000
    record = {
        "imageID": candidate_id,
        "selected": selected,
        "selectedRecord": [],
        "deselectedRecord": [],
        "hoveredRecord": [{"action": "enter", "time": start}, {"action": "leave", "time": start + 900}],
        "mouseTracking": [{"x": 0.05 + (i % 10) / 10, "y": 0.5, "time": start + 17 * i} for i in range(n_tracking)],
        "imagePosition": {"x": 10, "y": 200},
        "imageWidth": 160,
        "imageHeight": 120,
    }
    if selected:
        record["selectedRecord"] = [{"x": 0.4, "y": 0.6, "time": start + 500}]
    return record


def imagenet_save(page, selected_ids=(), **record_kwargs):
    """A page save for an ImageNet-style HitPage: one record per candidate, the given candidate ids selected."""
    ids = candidate_ids(page)
    return {
        "save_id": str(uuid.uuid4()),
        "started_at": now_ms() - 90_000,
        "time_spent": 45_000,
        "client": {
            "viewport": {"w": 1280, "h": 800}, "dpr": 2, "user_agent": "pytest", "variant": "default",
            "scroll": [{"x": 0, "y": 120, "time": now_ms() - 50_000}],
            "visibility": [{"state": "hidden", "time": now_ms() - 40_000}],
        },
        "records": [imagenet_record(id_, id_ in selected_ids, **record_kwargs) for id_ in ids],
    }


def add(key, x, y, at):
    return {"actionType": "add", "iconType": key, "pointFrom": None, "pointTo": {"x": x, "y": y}, "timeAt": at}


def move(key, from_xy, to_xy, at):
    return {
        "actionType": "move", "iconType": key, "pointFrom": {"x": from_xy[0], "y": from_xy[1]},
        "pointTo": {"x": to_xy[0], "y": to_xy[1]}, "timeAt": at,
    }


def remove(key, from_xy, at):
    return {"actionType": "remove", "iconType": key, "pointFrom": {"x": from_xy[0], "y": from_xy[1]}, "timeAt": at}


def coco_save(page, actions=None):
    """A page save for a COCO-style HitPage: every group browsed; by default a person icon on the person."""
    groups = category_groups(page.image.dataset_id)
    actions = [add("1", 0.3, 0.4, 5_000)] if actions is None else actions
    return {
        "save_id": str(uuid.uuid4()),
        "started_at": now_ms() - 30_000,
        "time_spent": 25_000,
        "client": {"viewport": {"w": 1280, "h": 800}, "dpr": 1, "user_agent": "pytest", "variant": "default"},
        "records": [{
            "image_id": coco_image_id(page),
            "imageWidth": 600,
            "imageHeight": 450,
            "timeSpent": 25_000,
            "actionHistories": actions,
            "categoryHistories": [
                {"categoryIndex": g["index"], "categoryName": g["name"], "timeAt": 1_000 * (g["index"] + 1),
                 "usingKeyboard": g["index"] % 2 == 1}
                for g in groups
            ],
            "mouseTracking": [{"x": 0.2, "y": 0.2, "timeAt": 500}, {"x": 0.3, "y": 0.4, "timeAt": 4_900}],
        }],
    }


def event_flush(events, seq=1):
    return {"batch_id": str(uuid.uuid4()), "seq": seq, "sent_at": now_ms(), "events": events}
