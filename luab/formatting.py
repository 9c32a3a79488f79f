"""Number formats shared by the exporters: coordinates keep three decimals, like the published datasets."""

COORDINATE_DECIMALS = 3


# A 0..1 coordinate as XML text with three decimals ("0.540"), for %-formatting (the fastest on the hot path).
XML_COORDINATE = f"%.{COORDINATE_DECIMALS}f"


def rounded_point(point, time_key):
    """A {x, y} point (with its `time_key` sample time unless None) with coordinates rounded for JSON."""
    rounded_xy = {"x": round(point["x"], COORDINATE_DECIMALS), "y": round(point["y"], COORDINATE_DECIMALS)}
    if time_key is not None:
        rounded_xy[time_key] = point[time_key]
    return rounded_xy


def pixel_number(text):
    """CSS pixels parsed back as written: an int when the text is an integer, else a float."""
    try:
        return int(text)
    except ValueError:
        return float(text)
