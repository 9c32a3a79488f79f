"""ImageNet-AB export and import of keyboard toggles: a time and usingKeyboard, no made-up point."""
from xml.etree import ElementTree

from annotator.exports.imagenet_ab import _point_list, _points


def test_keyboard_toggles_round_trip_without_a_point():
    clicks = [{"x": 0.25, "y": 0.5, "time": 1000}, {"time": 2000, "usingKeyboard": True}]
    xml = f"<metadata>{_points('selectedRecord', clicks)}</metadata>"
    assert "<usingKeyboard>True</usingKeyboard>" in xml
    assert xml.count("<x>") == 1
    assert _point_list(ElementTree.fromstring(xml), "selectedRecord", "test") == clicks
