"""The training manifest: one compact, content-hashed snapshot of everything a training run reads.

A manifest is a single ``.npz`` file (no pickles) holding a JSON header and flat numpy arrays:

``header``        JSON: format, version, kind ("imagenet" single-label or "coco" multi-label), class names,
                  anything the builder wants to record about where the data came from (``source``).
``image``         (N,) str: absolute local path, or ``s3://bucket/key`` for object storage.
``split``         (N,) str: "train", "val" or "shifted" (background-shifted evaluation split).
``label``         (N,) int64 class index (imagenet) or (N, C) uint8 multi-hot (coco).
``point``         (N, K, 2) float32 point targets (x, y) as fractions of the image width and height;
                  K = 1 for imagenet-style (one averaged click), K = C for coco-style (one icon per class).
``point_weight``  (N, K) float32; 0 means "no target" (no byproduct for that image or class).
``box``           (M, 4) float32 ground-truth boxes [x0, y0, x1, y1] as fractions, for point localisation.
``box_image``     (M,) int64 row of the image each box belongs to; ``box_class`` (M,) int64 its class.
``polygon_xy``    (P, 2) float32 mask polygon vertices as fractions, all polygons concatenated.
``polygon_start`` (Q + 1,) int64 offsets into ``polygon_xy``; ``polygon_box`` (Q,) int64 the box each polygon
                  belongs to (a mask is the union of its polygons).
``background``    (N,) int64 the class whose usual background the image shows (the demo's textures, ImageNet-9
                  style sets), -1 when unknown; evaluation reports how often the prediction is that class
                  (version 2; a version 1 file reads as all -1).

The content hash is the SHA-256 of the header and every array's dtype, shape and bytes; its first 16 hex
digits are part of the file name (``manifest-<hash16>.npz``) and the full hash is in the header.
"""
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT = "luab-manifest"
VERSION = 2
READABLE_VERSIONS = (1, 2)
KINDS = ("imagenet", "coco")
SPLITS = ("train", "val", "shifted")
ARRAY_NAMES = (
    "image", "split", "label", "point", "point_weight", "box", "box_image", "box_class",
    "polygon_xy", "polygon_start", "polygon_box", "background",
)


class ManifestError(ValueError):
    """A manifest that cannot be read or written, with the field and the reason."""


@dataclass
class Manifest:
    kind: str
    class_names: list
    image: np.ndarray
    split: np.ndarray
    label: np.ndarray
    point: np.ndarray
    point_weight: np.ndarray
    box: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    box_image: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    box_class: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    polygon_xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    polygon_start: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    polygon_box: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    background: np.ndarray = None
    source: dict = field(default_factory=dict)
    content_hash: str = ""

    def __post_init__(self):
        if self.background is None:
            self.background = np.full(len(self.image), -1, np.int64)

    @property
    def multi_label(self):
        return self.kind == "coco"

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def points_per_image(self):
        return self.point.shape[1]

    def __len__(self):
        return len(self.image)

    @property
    def has_targets(self):
        """(N,) bool: rows with at least one collected point target (weight > 0)."""
        return (self.point_weight.reshape(len(self.image), -1) > 0).any(axis=1)

    @property
    def pseudo_labelled(self):
        """(N,) bool: rows whose labels are a model's confident predictions (source["pseudo_labelled_rows"])."""
        mask = np.zeros(len(self.image), bool)
        mask[np.asarray(self.source.get("pseudo_labelled_rows", []), np.int64)] = True
        return mask

    def pseudo_label_file(self):
        """What a run's ``pseudo_labels.json`` holds, or None without pseudo-labels: the model and threshold that
        gave them and one entry per pseudo-labelled row, each marked ``"source": "pseudo_label"`` (never collected
        data: its labels are predictions and it has no point)."""
        rows = np.flatnonzero(self.pseudo_labelled)
        if not len(rows):
            return None
        return {
            "manifest_hash": self.content_hash, "model": self.source.get("pseudo_label_model"),
            "threshold": self.source.get("pseudo_label_threshold"),
            "rows": [{"row": int(row), "image": str(self.image[row]), "split": str(self.split[row]),
                      "labels": [self.class_names[index] for index in self.labels_of(row)], "source": "pseudo_label"}
                     for row in rows],
        }

    def indices(self, split):
        return np.flatnonzero(self.split == split)

    def labels_of(self, row):
        """Class indices of one entry: [index] single-label, the positive indices multi-label."""
        if self.multi_label:
            return np.flatnonzero(self.label[row]).tolist()
        return [int(self.label[row])]

    def boxes_of(self, row):
        """(boxes (B, 4), classes (B,), polygons: list per box of (V, 2) arrays) of one entry."""
        box_rows = self._rows_by_key("_box_rows", self.box_image).get(row, [])
        polygons_by_box = self._rows_by_key("_polygon_rows", self.polygon_box)
        polygons = [
            [self.polygon_xy[self.polygon_start[p]:self.polygon_start[p + 1]] for p in polygons_by_box.get(b, [])]
            for b in box_rows
        ]
        return self.box[box_rows], self.box_class[box_rows], polygons

    def _rows_by_key(self, cache_name, keys):
        """{key: [rows with that key]}, built once (evaluation looks up every image)."""
        if cache_name not in self.__dict__:
            grouped = {}
            for row, key in enumerate(keys.tolist()):
                grouped.setdefault(key, []).append(row)
            self.__dict__[cache_name] = grouped
        return self.__dict__[cache_name]

    def arrays(self):
        return {name: getattr(self, name) for name in ARRAY_NAMES}

    def header(self):
        return {
            "format": FORMAT, "version": VERSION, "kind": self.kind, "class_names": list(self.class_names),
            "source": self.source,
        }


def build(kind, class_names, entries, source=None):
    """A Manifest from a list of entry dicts.

    Each entry: ``image`` (path or s3:// URL), ``split``, ``labels`` (list of class indices; exactly one for
    imagenet), ``points`` ({class index or 0: (x, y, weight)}: imagenet uses key 0, coco the class index),
    optional ``boxes`` ([{"class": c, "box": [x0, y0, x1, y1], "polygons": [[x, y, x, y, ...], ...]}]),
    all coordinates as fractions of the image, optional ``background`` (class index of the image's background).
    """
    if kind not in KINDS:
        raise ManifestError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    n, c = len(entries), len(class_names)
    k = c if kind == "coco" else 1
    label = np.zeros((n, c), np.uint8) if kind == "coco" else np.zeros(n, np.int64)
    point = np.full((n, k, 2), 0.5, np.float32)
    point_weight = np.zeros((n, k), np.float32)
    box, box_image, box_class, polygon_xy, polygon_start, polygon_box = [], [], [], [], [0], []
    for row, entry in enumerate(entries):
        where = f"entry {row} ({entry.get('image')})"
        if entry["split"] not in SPLITS:
            raise ManifestError(f"{where}: split {entry['split']!r} is not one of {', '.join(SPLITS)}")
        labels = list(entry["labels"])
        if any(not 0 <= index < c for index in labels):
            raise ManifestError(f"{where}: labels {labels} outside 0..{c - 1}")
        if kind == "imagenet":
            if len(labels) != 1:
                raise ManifestError(f"{where}: imagenet-style entries have exactly one label, got {labels}")
            label[row] = labels[0]
        else:
            label[row, labels] = 1
        for slot, (x, y, weight) in entry.get("points", {}).items():
            if not 0 <= int(slot) < k:
                raise ManifestError(f"{where}: point slot {slot} outside 0..{k - 1}")
            point[row, int(slot)] = (x, y)
            point_weight[row, int(slot)] = weight
        for obj in entry.get("boxes", []):
            for polygon in obj.get("polygons", []):
                vertices = np.asarray(polygon, np.float32).reshape(-1, 2)
                polygon_xy.append(vertices)
                polygon_start.append(polygon_start[-1] + len(vertices))
                polygon_box.append(len(box))
            box.append(obj["box"])
            box_image.append(row)
            box_class.append(obj["class"])
    return Manifest(
        kind=kind, class_names=list(class_names),
        image=np.asarray([e["image"] for e in entries], dtype=str),
        split=np.asarray([e["split"] for e in entries], dtype=str),
        label=label, point=point, point_weight=point_weight,
        box=np.asarray(box, np.float32).reshape(-1, 4), box_image=np.asarray(box_image, np.int64),
        box_class=np.asarray(box_class, np.int64),
        polygon_xy=np.concatenate(polygon_xy).astype(np.float32) if polygon_xy else np.zeros((0, 2), np.float32),
        polygon_start=np.asarray(polygon_start, np.int64), polygon_box=np.asarray(polygon_box, np.int64),
        background=np.asarray([_background_of(e, c) for e in entries], np.int64).reshape(n), source=source or {},
    )


def _background_of(entry, num_classes):
    background = entry.get("background")
    if background is None:
        return -1
    if not 0 <= int(background) < num_classes:
        raise ManifestError(f"entry {entry.get('image')}: background {background} outside 0..{num_classes - 1}")
    return int(background)


def content_hash(header, arrays):
    """SHA-256 of the header and the arrays present (a version 1 file has no background)."""
    digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    for name in (name for name in ARRAY_NAMES if name in arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.reshape(-1).view(np.uint8))  # the bytes in place: tobytes() would copy the array
    return digest.hexdigest()


def write(manifest, directory):
    """Write manifest-<hash16>.npz into directory (atomically) and return its path; sets content_hash."""
    header = manifest.header()
    arrays = manifest.arrays()
    manifest.content_hash = content_hash(header, arrays)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"manifest-{manifest.content_hash[:16]}.npz"
    stored_header = dict(header, content_hash=manifest.content_hash)
    with tempfile.NamedTemporaryFile(dir=directory, suffix=".npz", delete=False) as handle:
        np.savez_compressed(handle, header=np.asarray(json.dumps(stored_header)), **arrays)
    os.replace(handle.name, path)
    return path


def read(path, verify=True):
    """Read a manifest; with verify, a file whose content does not match its recorded hash is refused."""
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            arrays = {name: data[name] for name in ARRAY_NAMES if name in data.files or name != "background"}
    except (OSError, KeyError, ValueError) as error:
        raise ManifestError(f"{path}: not a readable manifest ({error})") from error
    if header.get("format") != FORMAT or header.get("version") not in READABLE_VERSIONS:
        found = f"{header.get('format')} v{header.get('version')}"
        raise ManifestError(f"{path}: format {found}, expected {FORMAT} v{VERSION}")
    recorded = header.pop("content_hash", "")
    if verify and content_hash(header, arrays) != recorded:
        raise ManifestError(f"{path}: content does not match its hash {recorded[:16]}")
    return Manifest(
        kind=header["kind"], class_names=header["class_names"], source=header.get("source", {}),
        content_hash=recorded, **arrays,
    )
