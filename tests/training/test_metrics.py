import numpy as np
import pytest

from training.ml import manifest as manifest_module
from training.ml.metrics import mean_average_precision, point_accuracy, split_metrics, top1


def test_top1_and_map():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert top1(logits, np.array([0, 1, 1])) == pytest.approx(2 / 3)
    # class 0: positives ranked 1st and 3rd -> (1 + 2/3) / 2; class 1: its one positive ranked 3rd -> 1/3
    assert mean_average_precision(logits, np.array([[1, 0], [1, 0], [0, 1]])) == pytest.approx((5 / 6 + 1 / 3) / 2)


def test_point_accuracy_uses_the_mask_when_there_is_one_and_the_box_otherwise():
    triangle = [0.0, 0.0, 1.0, 0.0, 0.0, 1.0]  # the lower-left half of its box is outside the mask
    manifest = manifest_module.build("coco", ["a", "b"], [
        {"image": "/1.jpg", "split": "val", "labels": [0, 1], "boxes": [
            {"class": 0, "box": [0, 0, 1, 1], "polygons": [triangle]},
            {"class": 1, "box": [0.5, 0.5, 0.9, 0.9]},
        ]},
    ])
    on_mask_and_box = np.array([[[0.2, 0.2], [0.6, 0.6]]])
    off_mask_in_box = np.array([[[0.8, 0.8], [0.6, 0.6]]])
    assert point_accuracy(manifest, [0], on_mask_and_box) == 1
    assert point_accuracy(manifest, [0], off_mask_in_box) == 0.5


def test_imagenet_style_scores_the_single_point_against_the_label_class_boxes():
    manifest = manifest_module.build("imagenet", ["a", "b"], [
        {"image": "/1.jpg", "split": "val", "labels": [1], "boxes": [{"class": 1, "box": [0.0, 0.0, 0.5, 0.5]}]},
        {"image": "/2.jpg", "split": "val", "labels": [0]},  # no box: not scored
    ])
    logits, points = np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([[[0.3, 0.3]], [[0.9, 0.9]]])
    results = split_metrics(manifest, [0, 1], logits, points)
    assert results == {"top1": 1.0, "point_accuracy": 1.0, "centre_point_accuracy": 1.0}  # (0.5, 0.5) is on the box


def test_the_centre_prior_and_the_share_of_predictions_that_follow_the_background():
    """Centre prior: a point always at (0.5, 0.5); pred_is_background: top-1 equal to the background's class, over
    the images whose background is known."""
    manifest = manifest_module.build("imagenet", ["a", "b", "c"], [
        {"image": "/1.jpg", "split": "shifted", "labels": [0], "background": 1,
         "boxes": [{"class": 0, "box": [0.0, 0.0, 0.3, 0.3]}]},
        {"image": "/2.jpg", "split": "shifted", "labels": [1], "background": 2,
         "boxes": [{"class": 1, "box": [0.4, 0.4, 0.7, 0.7]}]},
        {"image": "/3.jpg", "split": "shifted", "labels": [2], "boxes": [{"class": 2, "box": [0.6, 0.6, 0.9, 0.9]}]},
    ])
    logits = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # image 1 follows its background
    points = np.array([[[0.1, 0.1]], [[0.1, 0.1]], [[0.7, 0.7]]])
    results = split_metrics(manifest, [0, 1, 2], logits, points)
    assert results["top1"] == pytest.approx(2 / 3)
    assert results["pred_is_background"] == 0.5  # image 3's background is unknown
    assert results["point_accuracy"] == pytest.approx(2 / 3)
    assert results["centre_point_accuracy"] == pytest.approx(1 / 3)  # only image 2's object covers the centre

    no_backgrounds = manifest_module.build("imagenet", ["a", "b"], [{"image": "/1.jpg", "split": "val", "labels": [0]}])
    assert "pred_is_background" not in split_metrics(no_backgrounds, [0], np.array([[1.0, 0.0]]), points[:1])
