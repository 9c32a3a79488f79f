"""Replaying COCO-style action histories, and the point-on-object geometry behind the review summary."""
import pytest

from annotator.geometry import point_in_polygon, point_on_object, rle_counts
from annotator.replay import ReplayError, replay_actions
from tests.annotator.worker_bodies import add, move, remove


def test_adds_moves_and_removes_give_the_final_positions():
    actions = [
        add("car", 0.1, 0.1, 1), add("dog", 0.5, 0.5, 2), move("car", (0.1, 0.1), (0.2, 0.3), 3),
        remove("dog", (0.5, 0.5), 4), add("dog", 0.6, 0.7, 5), add("cat", 0.9, 0.9, 6), remove("cat", (0.9, 0.9), 7),
    ]
    assert replay_actions(actions) == {"car": {"x": 0.2, "y": 0.3}, "dog": {"x": 0.6, "y": 0.7}}


def test_adds_only_reproduces_the_released_loader():
    actions = [add("car", 0.1, 0.1, 1), move("car", (0.1, 0.1), (0.2, 0.3), 2), add("cat", 0.9, 0.9, 3),
               remove("cat", (0.9, 0.9), 4), add("cat", 0.4, 0.4, 5)]
    assert replay_actions(actions, adds_only=True) == {"car": {"x": 0.1, "y": 0.1}, "cat": {"x": 0.4, "y": 0.4}}


@pytest.mark.parametrize("actions, index, message", [
    ([move("car", (0.1, 0.1), (0.2, 0.2), 1)], 0, "move of car: that icon was never added"),
    ([add("car", 0.1, 0.1, 1), remove("car", (0.1, 0.1), 2), remove("car", (0.1, 0.1), 3)], 2,
     "remove of car: that icon was removed by action 1"),
    ([add("car", 0.1, 0.1, 1), add("car", 0.2, 0.2, 2)], 1, "add of car: that icon is already on the image"),
    ([{"actionType": "add", "iconType": "car", "pointFrom": None, "timeAt": 1}], 0, "add of car needs pointTo"),
    ([{"actionType": "spin", "iconType": "car", "timeAt": 1}], 0, "unknown actionType 'spin'"),
])
def test_impossible_actions_are_named(actions, index, message):
    with pytest.raises(ReplayError) as caught:
        replay_actions(actions)
    assert caught.value.index == index and str(caught.value) == message


def test_lenient_replay_skips_impossible_actions():
    actions = [move("car", (0.1, 0.1), (0.2, 0.2), 1), add("car", 0.1, 0.1, 2), add("car", 0.3, 0.3, 3)]
    assert replay_actions(actions, strict=False) == {"car": {"x": 0.1, "y": 0.1}}


def test_point_in_polygon_on_a_concave_shape():
    # An L shape: the square 0..10 without its top-right quarter 5..10 x 0..5.
    shape = [0, 0, 5, 0, 5, 5, 10, 5, 10, 10, 0, 10]
    assert point_in_polygon(2, 2, shape) and point_in_polygon(8, 8, shape)
    assert not point_in_polygon(8, 2, shape) and not point_in_polygon(11, 5, shape)


def _rle_string(counts):
    """pycocotools' rleToString, to check our decoder against its encoding."""
    out = []
    for i, value in enumerate(counts):
        if i > 2:
            value -= counts[i - 2]
        more = True
        while more:
            char = value & 0x1F
            value >>= 5
            more = not (value == 0 and not char & 0x10) and not (value == -1 and char & 0x10)
            if more:
                char |= 0x20
            out.append(chr(char + 48))
    return "".join(out)


def test_compressed_rle_decodes_like_pycocotools():
    counts = [3, 4, 100, 7, 2, 50000, 1]
    assert rle_counts(_rle_string(counts)) == counts


def test_point_on_object_uses_polygons_then_rle_then_the_box():
    polygon = [[100, 100, 300, 100, 300, 300, 100, 300]]
    assert point_on_object(200, 200, polygon, [0, 0, 1, 1])
    assert not point_on_object(50, 50, polygon, [0, 0, 640, 480])
    # A 4x3 image: column 1 has rows 1..2 set (column-major runs: 4 background, 2 object, rest background).
    rle = {"size": [3, 4], "counts": [4, 2, 6]}
    assert point_on_object(1.5, 1.2, rle, [0, 0, 4, 3]) and not point_on_object(1.5, 0.5, rle, [0, 0, 4, 3])
    assert point_on_object(1.5, 2.5, {"size": [3, 4], "counts": _rle_string([4, 2, 6])}, None)
    box = [400, 100, 200, 100]
    assert point_on_object(450, 150, None, box) and not point_on_object(350, 150, None, box)
