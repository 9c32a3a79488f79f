"""ImageNet-AB's pure parts: all clicks merged and split again, keyboard toggles without a point, estimateTime."""
from xml.etree import ElementTree

import msgspec

from luab.imagenet_ab import _point_list, _points, _toggle, estimate_time, merge_clicks, split_clicks


def test_keyboard_toggles_round_trip_without_a_point():
    clicks = [{"x": 0.25, "y": 0.5, "time": 1000}, {"time": 2000, "usingKeyboard": True}]
    xml = f"<metadata>{_points('selectedRecord', clicks)}</metadata>"
    assert "<usingKeyboard>True</usingKeyboard>" in xml
    assert xml.count("<x>") == 1
    assert msgspec.to_builtins(_point_list(ElementTree.fromstring(xml), "selectedRecord", "test", _toggle)) == clicks


def test_all_clicks_are_the_selecting_and_deselecting_ones_in_time_order_and_split_back():
    selecting = [{"x": 0.1, "y": 0.1, "time": 100}, {"x": 0.3, "y": 0.3, "time": 300}]
    deselecting = [{"x": 0.2, "y": 0.2, "time": 200}]
    all_clicks = merge_clicks(selecting, deselecting)
    assert [click["time"] for click in all_clicks] == [100, 200, 300]
    assert split_clicks(all_clicks) == (selecting, deselecting)


def test_estimate_time_counts_only_hovering_while_unselected():
    hovered = [{"action": "enter", "time": 0}, {"action": "leave", "time": 1000},
               {"action": "enter", "time": 5000}, {"action": "leave", "time": 6000}]
    selected = [{"x": 0.5, "y": 0.5, "time": 400}]
    deselected = [{"x": 0.5, "y": 0.5, "time": 5500}]

    assert estimate_time(hovered, selected, deselected) == 400 + 500


