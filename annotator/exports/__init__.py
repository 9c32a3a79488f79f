"""Byproduct datasets out and in: ImageNet-AB / COCO-AB / JSON-lines exports, imports of the published sets."""
