"""Dataset importers: ImageNet (ILSVRC folder layout) and COCO (instances JSON); the published byproducts of a
dataset (ImageNet-AB, COCO-AB) are imported by annotator.importers.ab.

Each importer first reads and checks everything (every image is decoded), then writes inside one transaction;
a failed import leaves neither rows nor files behind, and a repeated import adds only what is new.
"""
from .common import DatasetImportError, ImportSummary
from .coco import import_coco
from .imagenet import import_imagenet

__all__ = ["DatasetImportError", "ImportSummary", "import_coco", "import_imagenet"]
