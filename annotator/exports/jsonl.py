"""JSON lines: one record per line with everything we store, extras included (full coordinate precision).

Beyond the published fields: deselect clicks, the interface variant, the page's client information
(viewport, device pixel ratio, user agent, scroll and visibility changes), the page's saved time and the
assignment's state.
"""
import msgspec

from luab import coco_ab, imagenet_ab


def _common(record, anonymise, batch_name):
    return {
        "batch": batch_name,
        "hit_id": coco_ab.hit_id(record, batch_name),
        "assignment_id": imagenet_ab.assignment_id(record),
        "assignment_state": record["assignment_state"],
        "worker_id": anonymise(record["worker_hashed_id"]),
        "interface_variant": record["interface_variant"],
        "page_idx": record["page_index"],
        "client": record["page_client"] or {},
        "pageTimeSpent": record["page_time_spent_ms"],
        "pageSavedAt": record["page_saved_at"].isoformat() if record["page_saved_at"] else None,
        "originalImageWidth": record["original_width"],
        "originalImageHeight": record["original_height"],
        "imageWidth": record["image_width"],
        "imageHeight": record["image_height"],
    }


def imagenet_record(record, anonymise, batch_name):
    return {
        "task_kind": "imagenet",
        **_common(record, anonymise, batch_name),
        "imageID": imagenet_ab.image_id(record),
        "pageCategory": record["page_category"],
        "selected": record["selected"],
        "selectedRecord": record["selected_record"],
        "deselectedRecord": record["deselected_record"],
        "hoveredRecord": record["hovered_record"],
        "mouseTracking": record["mouse_tracking"],
        "imagePosition": record["image_position"],
    }


def coco_record(record, anonymise, batch_name):
    return {
        "task_kind": "coco",
        **_common(record, anonymise, batch_name),
        "image_id": coco_ab.coco_image_id(record["image_key"]),
        "timeSpent": record["time_spent"],
        "actionHistories": record["action_histories"],
        "categoryHistories": record["category_histories"],
        "mouseTracking": record["mouse_tracking"],
        "finalPositions": record["final_positions"],
    }


def write_lines(records, out, to_dict, on_record=None):
    """Stream one JSON object per line into the binary file `out`. Returns the record count."""
    encoder = msgspec.json.Encoder()
    count = 0
    for record in records:
        out.write(encoder.encode(to_dict(record)))
        out.write(b"\n")
        count += 1
        if on_record:
            on_record(1)
    return count
