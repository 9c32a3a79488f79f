"""How a model steers the next round: acquisition scores of its predictions (seed 004) and agreement of workers'
clicks and icons with its predicted points (a review signal, never a rejection).

Acquisition scores, higher = ask the crowd first:
- ``entropy`` of the prediction; ``margin``: 1 - (top-1 minus top-2 probability);
- ``inconsistency``: the Jensen-Shannon divergence (natural log) between the prediction on the image and on its
  horizontally flipped copy; a model that changes its mind under a flip does not know the image;
- ``unified``: entropy x inconsistency, high only where the model is both unsure and unstable (seed 004's
  supplement names the unified score but gives no formula; the product is this product's reading).
Multi-label (COCO-style): each class is a two-way distribution, averaged over the classes.

Pure numpy: the inference service feeds these the model's probabilities and points.
"""
import numpy as np

from luab.targets import first_click, icon_points

UNCERTAINTY_MEASURES = ("entropy", "margin", "inconsistency", "unified")
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


def inconsistency(probabilities, flipped_probabilities, multi_label=False):
    """(N, C), (N, C) -> (N,): Jensen-Shannon divergence between the predictions on an image and its mirror."""
    p = np.asarray(probabilities, dtype=np.float64)
    q = np.asarray(flipped_probabilities, dtype=np.float64)
    if multi_label:  # (N, C) -> (N, C, 2): each class as (present, absent)
        p, q = np.stack([p, 1.0 - p], axis=-1), np.stack([q, 1.0 - q], axis=-1)
    p, q = np.clip(p, EPSILON, 1.0), np.clip(q, EPSILON, 1.0)
    m = (p + q) / 2
    divergence = 0.5 * (p * np.log(p / m)).sum(axis=-1) + 0.5 * (q * np.log(q / m)).sum(axis=-1)
    return divergence.mean(axis=1) if multi_label else divergence


def acquisition_scores(probabilities, flipped_probabilities, multi_label=False):
    """{measure: (N,)} for every UNCERTAINTY_MEASURES entry."""
    scores = {
        "entropy": entropy(probabilities, multi_label),
        "margin": margin_uncertainty(probabilities, multi_label),
        "inconsistency": inconsistency(probabilities, flipped_probabilities, multi_label),
    }
    scores["unified"] = scores["entropy"] * scores["inconsistency"]
    return scores


def uncertainty(probabilities, measure, multi_label=False, flipped_probabilities=None):
    if measure not in UNCERTAINTY_MEASURES:
        raise ValueError(f"uncertainty: {measure!r} is not one of {', '.join(UNCERTAINTY_MEASURES)}")
    flipped = probabilities if flipped_probabilities is None else flipped_probabilities
    return acquisition_scores(probabilities, flipped, multi_label)[measure]


def point_agrees(point, predicted, radius=AGREEMENT_RADIUS):
    """Whether a worker's (x, y) lies within radius of the model's predicted (x, y); both image fractions."""
    return float(np.hypot(point[0] - predicted[0], point[1] - predicted[1])) <= radius


def imagenet_pairs(records, predicted_points):
    """(worker point, model point) per selected image: the worker's first selecting click (the released
    loader's target) against the model's point for that image. records: ImageNetRecord-like objects."""
    pairs = []
    for record in records:
        point = predicted_points.get(record.image_id)
        click = first_click(record.selected_record) if record.selected else None
        if click is not None and point is not None:
            pairs.append(((click["x"], click["y"]), point))
    return pairs


def coco_pairs(records, predicted_points_by_category):
    """(icon position, model point of its category) per placed icon. records: CocoRecord-like objects;
    predicted_points_by_category: {image id: {category key: (x, y)}}."""
    pairs = []
    for record in records:
        by_category = predicted_points_by_category.get(record.image_id, {})
        for category_key, position in icon_points(record.final_positions).items():
            point = by_category.get(category_key)
            if point is not None:
                pairs.append((position, point))
    return pairs


def agreement(pairs, radius=AGREEMENT_RADIUS):
    """Share of (worker point, model point) pairs that agree; None when there is nothing to compare."""
    if not pairs:
        return None
    return sum(point_agrees(point, predicted, radius) for point, predicted in pairs) / len(pairs)
