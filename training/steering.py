"""How a model steers the next round: uncertainty of its predictions (seed 004) and agreement of workers'
clicks and icons with its predicted points (a review signal, never a rejection).

Pure numpy: the inference service feeds these the model's probabilities and points.
"""
import numpy as np

UNCERTAINTY_MEASURES = ("entropy", "margin")
# A click or icon agrees with the model when it lies within this distance (fraction of the image) of its point.
AGREEMENT_RADIUS = 0.15
EPSILON = 1e-12


def entropy(probabilities, multi_label=False):
    """(N, C) -> (N,): Shannon entropy of a softmax; multi-label: mean binary entropy over the classes."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), EPSILON, 1.0)
    if multi_label:
        q = np.clip(1.0 - p, EPSILON, 1.0)
        return -(p * np.log(p) + q * np.log(q)).mean(axis=1)
    return -(p * np.log(p)).sum(axis=1)


def margin_uncertainty(probabilities, multi_label=False):
    """(N, C) -> (N,): 1 - (top-1 minus top-2 probability); multi-label: 1 - mean |2p - 1| over the classes.

    Higher means more uncertain, like entropy, so both sort the same way.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if multi_label:
        return 1.0 - np.abs(2.0 * p - 1.0).mean(axis=1)
    if p.shape[1] < 2:
        return np.zeros(len(p))
    top_two = np.sort(p, axis=1)[:, -2:]
    return 1.0 - (top_two[:, 1] - top_two[:, 0])


def uncertainty(probabilities, measure, multi_label=False):
    if measure == "entropy":
        return entropy(probabilities, multi_label)
    if measure == "margin":
        return margin_uncertainty(probabilities, multi_label)
    raise ValueError(f"uncertainty: {measure!r} is not one of {', '.join(UNCERTAINTY_MEASURES)}")


def point_agrees(point, predicted, radius=AGREEMENT_RADIUS):
    """Whether a worker's (x, y) lies within radius of the model's predicted (x, y); both image fractions."""
    return float(np.hypot(point[0] - predicted[0], point[1] - predicted[1])) <= radius


def imagenet_pairs(records, predicted_points):
    """(worker point, model point) per selected image: the worker's first selecting click (the released
    loader's target) against the model's point for that image. records: ImageNetRecord-like objects."""
    pairs = []
    for record in records:
        point = predicted_points.get(record.image_id)
        # A keyboard selection (usingKeyboard) has no point: the first click with one counts.
        click = next((click for click in record.selected_record if "x" in click), None) if record.selected else None
        if click is not None and point is not None:
            pairs.append(((click["x"], click["y"]), point))
    return pairs


def coco_pairs(records, predicted_points_by_category):
    """(icon position, model point of its category) per placed icon. records: CocoRecord-like objects;
    predicted_points_by_category: {image id: {category key: (x, y)}}."""
    pairs = []
    for record in records:
        by_category = predicted_points_by_category.get(record.image_id, {})
        for category_key, position in record.final_positions.items():
            point = by_category.get(str(category_key))
            if point is not None:
                pairs.append(((position["x"], position["y"]), point))
    return pairs


def agreement(pairs, radius=AGREEMENT_RADIUS):
    """Share of (worker point, model point) pairs that agree; None when there is nothing to compare."""
    if not pairs:
        return None
    return sum(point_agrees(point, predicted, radius) for point, predicted in pairs) / len(pairs)
