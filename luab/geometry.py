"""Point-on-object tests against COCO-style ground truth (polygons, RLE masks, boxes), in original image pixels.

Byproduct points are fractions of the image (``{"x": .., "y": ..}``); ``in_pixels`` puts them in the ground truth's
frame. The page summaries, the byproduct report, the simulated crowd and the training metrics all test points here.
"""


def point_in_polygon(x, y, polygon):
    """Even-odd rule; polygon is COCO's flat list [x1, y1, x2, y2, ...]."""
    inside = False
    n = len(polygon) // 2
    if n < 3:
        return False
    x_prev, y_prev = polygon[2 * n - 2], polygon[2 * n - 1]
    for i in range(n):
        x_cur, y_cur = polygon[2 * i], polygon[2 * i + 1]
        if (y_cur > y) != (y_prev > y):
            x_cross = x_cur + (y - y_cur) * (x_prev - x_cur) / (y_prev - y_cur)
            if x < x_cross:
                inside = not inside
        x_prev, y_prev = x_cur, y_cur
    return inside


def point_in_box(x, y, bbox):
    left, top, width, height = bbox
    return left <= x <= left + width and top <= y <= top + height


def rle_counts(counts):
    """Run lengths of a COCO RLE: a list already, or pycocotools' compressed string (its LEB128-like code)."""
    if isinstance(counts, list):
        return counts
    runs, position = [], 0
    while position < len(counts):
        value, shift, more = 0, 0, True
        while more:
            char = ord(counts[position]) - 48
            value |= (char & 0x1F) << (5 * shift)
            more = bool(char & 0x20)
            position += 1
            shift += 1
            if not more and char & 0x10:
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def point_in_rle(x, y, rle):
    """RLE masks are column-major runs alternating background / object, starting with background."""
    height, width = rle["size"]
    column, row = int(x), int(y)
    if not (0 <= column < width and 0 <= row < height):
        return False
    pixel = column * height + row
    seen = 0
    for run_index, run in enumerate(rle_counts(rle["counts"])):
        seen += run
        if pixel < seen:
            return run_index % 2 == 1
    return False


def point_on_object(x, y, segmentation, bbox):
    """Whether the pixel point lies on the object: its polygons or RLE mask, else its bounding box."""
    if isinstance(segmentation, list) and segmentation:
        return any(point_in_polygon(x, y, polygon) for polygon in segmentation)
    if isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        return point_in_rle(x, y, segmentation)
    return point_in_box(x, y, bbox)


def in_pixels(point, width, height):
    """(x, y) in pixels of a byproduct point {x, y} given as fractions of a width x height image."""
    return point["x"] * width, point["y"] * height
