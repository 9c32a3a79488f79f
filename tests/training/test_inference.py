"""Running a trained checkpoint over image bytes (training/inference.py), mirrored too (seed 004's inconsistency)."""
import io

import numpy as np
import pytest
from PIL import Image

from training import inference
from training.ml.engine import TrainConfig, run


@pytest.fixture
def trained_checkpoint(tiny_manifest_path, tmp_path):
    return run(TrainConfig(
        manifest_path=str(tiny_manifest_path), out_dir=str(tmp_path / "run"), model="test_resnet", method="luab",
        epochs=1, img_size=32, batch_size=8,
    ))["checkpoint"]


def png(pixels):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_flipped_prediction_of_an_image_is_the_prediction_of_its_mirror(trained_checkpoint):
    loaded = inference.load_model(trained_checkpoint, device="cpu")
    pixels = np.random.default_rng(0).integers(0, 255, (32, 40, 3), dtype=np.uint8)  # centre crop: 4 px each side
    pixels[4:20, 6:18] = (220, 40, 40)
    original, mirror = png(pixels), png(pixels[:, ::-1].copy())

    probabilities, points = inference.predict(loaded, [original])
    mirrored_probabilities, mirrored_points = inference.predict(loaded, [mirror], flip=True)

    assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert mirrored_probabilities == pytest.approx(probabilities, abs=1e-5)
    # the mirrored image's points, mapped back to that image, are the original's points mirrored
    assert mirrored_points[..., 0] == pytest.approx(1 - points[..., 0], abs=1e-5)
    assert mirrored_points[..., 1] == pytest.approx(points[..., 1], abs=1e-5)
