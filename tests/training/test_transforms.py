import numpy as np
import torch
from PIL import Image

from training.ml.transforms import Crop, EvalTransform, TrainTransform, center_crop, crop_and_resize


def image_with_block(width, height, left, top, size=2):
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[top:top + size, left:left + size] = 255
    return Image.fromarray(pixels)


def brightest_pixel(tensor):
    gray = tensor.float().sum(dim=0)
    y, x = divmod(int(gray.argmax()), gray.shape[1])
    return x, y


def test_point_inside_a_known_crop_lands_where_the_geometry_says():
    crop = Crop(left=10, top=20, width=40, height=40, source_width=100, source_height=80)
    # A 2x2 block at pixels x 30-31, y 32-33: its centre is the point (31 / 100, 33 / 80).
    image = image_with_block(100, 80, 30, 32)
    points, weights = crop.apply_to_points(np.array([[0.31, 33 / 80]]), np.array([1.0]))

    assert np.allclose(points[0], [(31 - 10) / 40, (33 - 20) / 40])
    assert weights[0] == 1
    pixels = crop_and_resize(image, crop, 40)  # no scaling: the block moves by (-10, -20)
    assert brightest_pixel(pixels) == (20, 12)
    assert np.allclose(points[0] * 40, [21, 13])  # the block's centre in the crop


def test_point_outside_the_crop_gets_weight_zero_and_the_others_keep_theirs():
    crop = Crop(left=10, top=20, width=40, height=40, source_width=100, source_height=80)
    points = np.array([[0.05, 0.05], [0.3, 0.5], [0.95, 0.5]])
    _, weights = crop.apply_to_points(points, np.array([1.0, 0.7, 1.0]))
    assert weights.tolist() == [0.0, np.float32(0.7), 0.0]


def test_flip_mirrors_x_of_pixels_and_points():
    crop = Crop(left=10, top=20, width=40, height=40, source_width=100, source_height=80, flip=True)
    image = image_with_block(100, 80, 30, 32)
    points, _ = crop.apply_to_points(np.array([[0.31, 33 / 80]]), np.array([1.0]))

    assert np.allclose(points[0], [1 - 21 / 40, 13 / 40])
    assert brightest_pixel(crop_and_resize(image, crop, 40)) == (18, 12)
    assert np.allclose(crop.to_source(points), [[0.31, 33 / 80]])


def test_random_crops_move_points_with_the_pixels():
    """Over many random crops, a marked pixel and its point target end up at the same output position."""
    image = image_with_block(120, 90, 70, 40, size=4)
    point = np.array([[72 / 120, 42 / 90]])
    transform = TrainTransform(48, scale=(0.2, 1.0))
    kept = 0
    for seed in range(30):
        pixels, moved, weights, _ = transform(image, point, np.array([1.0]), np.random.default_rng(seed))
        if weights[0] == 0:
            continue
        kept += 1
        x, y = brightest_pixel(pixels)
        assert abs(x + 0.5 - moved[0, 0] * 48) <= 3 and abs(y + 0.5 - moved[0, 1] * 48) <= 3
    assert 0 < kept < 30


def test_eval_transform_is_a_centre_crop_and_maps_points_both_ways():
    crop = center_crop(100, 80, crop_ratio=0.875)
    assert (crop.left, crop.top, crop.width, crop.height) == (15, 5, 70, 70)

    pixels, points, weights, crop = EvalTransform(32)(image_with_block(100, 80, 49, 39), np.array([[0.5, 0.5]]),
                                                      np.array([1.0]))
    assert pixels.shape == (3, 32, 32) and pixels.dtype == torch.uint8
    assert np.allclose(points, [[0.5, 0.5]]) and weights[0] == 1
    assert np.allclose(crop.to_source(np.array([[0.0, 1.0]])), [[0.15, 75 / 80]])
