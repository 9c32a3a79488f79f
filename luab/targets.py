"""Training targets from byproducts: the point where a worker showed the object, as (x, y) fractions of the image.

- ImageNet-style: a selecting record's first click that has a point (the released ImageNet-AB loader reads
  ``selectedRecord[0]``; a keyboard selection, usingKeyboard, has no point, so the first click with one counts);
- COCO-style: each category's final icon position (the record's final positions: adds, moves and removes replayed).

The manifest builder averages these over workers, steering compares them with a model's points and the byproduct
report tests them against the ground truth.
"""


def first_click(selected_record):
    """The first selecting click with a point ({x, y, time}) of a record's selected_record, or None."""
    return next((click for click in selected_record if "x" in click), None)


def icon_points(final_positions):
    """{category key (str): (x, y)} of a record's final icon positions ({category key: {x, y}})."""
    return {str(key): (point["x"], point["y"]) for key, point in final_positions.items()}
