"""The point-on-object geometry behind the review summary."""
from annotator.geometry import point_in_polygon, point_on_object, rle_counts


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
