"""Icon actions: the points each type needs, their stored form, and their replay into the final icon positions."""
import pytest

from luab.actions import ReplayError, action_dict, missing_point, replay_actions
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



@pytest.mark.parametrize("action_type, points, missing", [
    ("add", {"pointFrom": None, "pointTo": {"x": 0.1, "y": 0.2}}, None),
    ("add", {"pointFrom": None}, "pointTo"),
    ("move", {"pointTo": {"x": 0.1, "y": 0.2}}, "pointFrom"),
    ("move", {"pointFrom": {"x": 0.1, "y": 0.2}, "pointTo": None}, "pointTo"),
    ("remove", {"pointFrom": {"x": 0.1, "y": 0.2}}, None),
    ("remove", {"pointFrom": None, "pointTo": {"x": 0.1, "y": 0.2}}, "pointFrom"),
])
def test_each_action_type_needs_its_points(action_type, points, missing):
    assert missing_point(action_type, points) == missing


def test_the_stored_form_has_no_point_from_on_add_and_no_point_to_on_remove():
    point = {"x": 0.1, "y": 0.2}
    assert action_dict("add", "car", point, point, 5) == add("car", 0.1, 0.2, 5)
    assert action_dict("remove", "car", point, point, 7) == remove("car", (0.1, 0.2), 7)
    assert list(action_dict("move", "car", point, point, 6)) == ["actionType", "iconType", "pointFrom", "pointTo",
                                                                 "timeAt"]
