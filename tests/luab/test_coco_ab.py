"""COCO-AB's pure parts: the streaming JSON list reader and the published form of an action."""
import io
import json

from luab.coco_ab import exported_action, iter_json_list
from tests.annotator.worker_bodies import add, move, remove


def test_coco_ab_is_read_as_a_stream_across_chunk_boundaries():
    records = [{"image_id": i, "mouseTracking": [{"x": 0.5, "y": 0.25, "timeAt": 10 * i}]} for i in range(50)]
    text = json.dumps(records, indent=2)

    assert list(iter_json_list(io.StringIO(text), chunk_chars=7)) == records


def test_exported_actions_carry_category_names_and_rounded_points():
    names = {"3": "car"}
    assert exported_action(add("3", 0.12345, 0.5, 10), names) == add("car", 0.123, 0.5, 10)
    assert exported_action(move("3", (0.1, 0.2), (0.30004, 0.4), 11), names) == move("car", (0.1, 0.2), (0.3, 0.4), 11)
    assert exported_action(remove("9", (0.1, 0.2), 12), names) == remove("9", (0.1, 0.2), 12)
