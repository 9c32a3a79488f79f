"""Training targets from byproducts, on hand-made records."""
from luab.targets import first_click, icon_points


def test_the_target_click_is_the_first_selecting_click_with_a_point():
    keyboard = {"time": 1, "usingKeyboard": True}
    clicks = [keyboard, {"x": 0.2, "y": 0.3, "time": 2}, {"x": 0.9, "y": 0.9, "time": 3}]
    assert first_click(clicks) == {"x": 0.2, "y": 0.3, "time": 2}
    assert first_click([keyboard]) is None
    assert first_click([]) is None


def test_icon_targets_are_the_final_positions_by_category_key():
    final_positions = {"3": {"x": 0.1, "y": 0.2}, 7: {"x": 0.5, "y": 0.6}}
    assert icon_points(final_positions) == {"3": (0.1, 0.2), "7": (0.5, 0.6)}
    assert icon_points({}) == {}
