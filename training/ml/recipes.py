"""Named sets of TrainConfig options, so a demo, a benchmark and a researcher's run mean the same thing by a name.

``cpu-demo``: sized so that the effect of clicks shows on a 2-core CPU in minutes on the demo shapes
(devtools/demo_data.py, 100 train images a class): timm's 0.4M-parameter test ResNet at 48 px, its output stride
lowered to 8 (a 6 x 6 map, so points are not stuck on a coarse grid), 10 epochs, crops of at least half the image
(smaller ones cut most objects away). ``benchmarks/learning_effect.py`` measures what it shows per method;
``make demo`` trains attentive pooling with it.
"""
RECIPES = {
    "cpu-demo": {
        "model": "test_resnet", "method": "attentive", "img_size": 48, "min_feature_cells": 6, "epochs": 10,
        "batch_size": 32, "lr": 0.002, "warmup_epochs": 1.0, "crop_scale": [0.5, 1.0], "device": "cpu",
    },
}


def recipe(name, **overrides):
    """The named recipe's options with overrides applied; an unknown name is refused, naming the known ones."""
    if name not in RECIPES:
        raise ValueError(f"recipe: {name!r} is not one of {', '.join(sorted(RECIPES))}")
    return {**RECIPES[name], **overrides}
