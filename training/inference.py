"""Run a trained checkpoint over images: class probabilities and predicted points per image.

No Django here (the service feeds image bytes in); torch is imported by whoever imports this module, which the
services do only inside a job.
"""
import dataclasses
import io
import logging
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from training.ml.engine import load_checkpoint
from training.ml.models import create_model
from training.ml.transforms import EvalTransform, normalize

logger = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    model: torch.nn.Module
    class_names: list
    multi_label: bool
    transform: EvalTransform
    device: torch.device


def load_model(checkpoint_path, device="auto"):
    """The model of an engine checkpoint (training/ml/engine.py), in eval mode on device."""
    state = load_checkpoint(checkpoint_path)
    config, class_names = state["config"], state["class_names"]
    multi_label = state["kind"] == "coco"
    model = create_model(
        config["model"], len(class_names), len(class_names) if multi_label else 1, config["method"],
        model_kwargs=config.get("model_kwargs") or {},
    )
    model.load_state_dict(state["model"])
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    model.to(device).eval()
    transform = EvalTransform(config.get("img_size", 224), config.get("test_crop_ratio", 0.875))
    return LoadedModel(model, list(class_names), multi_label, transform, device)


@torch.no_grad()
def predict(loaded, image_bytes, flip=False):
    """(probabilities (N, C), points (N, K, 2) as fractions of each source image) for a list of image bytes.

    Probabilities are a softmax (ImageNet-style) or per-class sigmoids (COCO-style); ImageNet-style points are
    for the predicted class (K = 1), COCO-style points one per class. flip: the model sees each image mirrored
    (its points are mapped back to the unmirrored image), for the inconsistency score (seed 004).
    """
    pixels, crops = [], []
    no_points = np.zeros((1, 2), np.float32)
    for data in image_bytes:
        with Image.open(io.BytesIO(data)) as image:
            image_pixels, _, _, crop = loaded.transform(image, no_points, np.zeros(1, np.float32))
        if flip:
            image_pixels, crop = image_pixels.flip(-1), dataclasses.replace(crop, flip=True)
        pixels.append(image_pixels)
        crops.append(crop)
    output = loaded.model(normalize(torch.stack(pixels).to(loaded.device)))
    logits = output["logits"].float()
    probabilities = logits.sigmoid() if loaded.multi_label else logits.softmax(dim=1)
    labels = (probabilities > 0.5).float() if loaded.multi_label else probabilities.argmax(dim=1)
    points = loaded.model.predict_points(output, labels).cpu().numpy()
    source_points = np.stack([crop.to_source(image_points) for crop, image_points in zip(crops, points)])
    return probabilities.cpu().numpy(), source_points
