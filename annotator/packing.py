"""Packing a dataset's training images into HITs (seed 000, C.1 and C.2).

ImageNet-style: every page shows one class with `items_per_page` candidates, about `in_class_ratio` of them
from the class's own training images (I_c^in) and the rest from other classes; `pages_per_hit` pages make a
HIT and every training image is an in-class candidate at least once. COCO-style: one image per page,
`pages_per_hit` (20) pages per HIT, every training image on exactly one page.

Round 2 re-packs what round 1 did not re-select: the images of class c with no approved, selected
ImageNetRecord in the source batch (COCO-style: the images without an approved CocoRecord).
"""
import logging
import math
import random
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from tqdm import tqdm

from .models import CocoRecord, Hit, HitPage, Image, ImageNetRecord, ImageScore, PageItem, Split, TaskKind

logger = logging.getLogger(__name__)

# Batch settings of the paper that differ by task kind (seed 000, C.1 and C.2).
PAPER_DEFAULTS = {
    TaskKind.IMAGENET: {"pages_per_hit": 10, "reward": Decimal("1.50")},
    TaskKind.COCO: {"pages_per_hit": 20, "reward": Decimal("2.00")},
}
ORDER_RANDOM = "random"
ORDER_UNCERTAINTY = "uncertainty"  # the score the active model's inference job was asked for (ImageScore.uncertainty)
# Or one acquisition score of ImageScore.acquisition by name (seed 004; training/steering.py).
ACQUISITION_ORDERS = ("entropy", "margin", "inconsistency", "unified")
ORDERS = (ORDER_RANDOM, ORDER_UNCERTAINTY, *ACQUISITION_ORDERS)
BULK_SIZE = 5000
PAGES_PER_WRITE = 1000


@dataclass(frozen=True)
class PackingResult:
    hits: int
    pages: int
    items: int
    images_covered: int


@dataclass
class PlannedPage:
    category_id: int | None
    image_id: int | None
    # (image id, in_class, is_gold) in grid order; empty for COCO-style pages.
    items: list
    priority: float


def build_hits(batch, *, gold_per_page=0, order=ORDER_RANDOM, seed=0, show_progress=False):
    """Create the HITs, pages and candidates of an empty batch from its settings; all or nothing."""
    _validate(batch, gold_per_page, order)
    rng = random.Random(seed)
    uncertainty = _uncertainty_by_image(batch.dataset, order) if order != ORDER_RANDOM else None
    if batch.task_kind == TaskKind.IMAGENET:
        planned = _plan_imagenet_pages(batch, rng, uncertainty, gold_per_page)
    else:
        planned = _plan_coco_pages(batch, rng, uncertainty)
    if not planned:
        raise ValidationError({"batch": f"batch {batch.name}: no training images left to pack"})
    if uncertainty is None:
        planned = _spread_classes(planned, batch.pages_per_hit, rng)
    else:
        planned.sort(key=lambda page: page.priority, reverse=True)
    with transaction.atomic():
        result = _write(batch, planned, show_progress)
    logger.info(
        "batch %s: packed %d HITs, %d pages, %d candidates covering %d images",
        batch.name, result.hits, result.pages, result.items, result.images_covered,
    )
    return result


def _spread_classes(planned, pages_per_hit, rng):
    """The pages in a random order where no HIT shows a class twice while the class has no more pages than there are
    HITs: pages grouped by class are dealt across the HITs, slot by slot, then each HIT's pages are shuffled."""
    n_hits = math.ceil(len(planned) / pages_per_hit)
    by_class = {}
    for page in planned:
        by_class.setdefault(page.category_id, []).append(page)
    groups = list(by_class.values())
    rng.shuffle(groups)
    groups.sort(key=len, reverse=True)
    dealt = iter(page for group in groups for page in group)
    hits = [[] for _ in range(n_hits)]
    for slot in range(pages_per_hit):
        for hit_index, hit in enumerate(hits):
            if hit_index * pages_per_hit + slot < len(planned):
                hit.append(next(dealt))
    rng.shuffle(hits)
    hits.sort(key=len, reverse=True)  # only the last HIT may be short
    for hit in hits:
        rng.shuffle(hit)
    return [page for hit in hits for page in hit]


def _validate(batch, gold_per_page, order):
    if order not in ORDERS:
        raise ValidationError({"order": f"unknown order {order!r}; choose one of {', '.join(ORDERS)}"})
    if batch.dataset.kind != batch.task_kind:
        raise ValidationError(
            {"task_kind": f"dataset {batch.dataset.name} is {batch.dataset.kind}-style, not {batch.task_kind}"}
        )
    if batch.hits.exists():
        raise ValidationError({"batch": f"batch {batch.name} already has {batch.hits.count()} HITs"})
    if batch.pages_per_hit < 1:
        raise ValidationError({"pages_per_hit": "must be at least 1"})
    if order != ORDER_RANDOM and not batch.dataset.active_model_version:
        raise ValidationError(
            {"order": f"dataset {batch.dataset.name} has no active model version to take uncertainty from"}
        )
    if gold_per_page < 0:
        raise ValidationError({"gold": "must be 0 or more"})
    if batch.task_kind == TaskKind.COCO and gold_per_page:
        raise ValidationError({"gold": "gold items are candidates of ImageNet-style pages; COCO-style pages have none"})
    if batch.task_kind == TaskKind.IMAGENET:
        if batch.items_per_page < 2:
            raise ValidationError({"items_per_page": "must be at least 2"})
        if not 0 < batch.in_class_ratio <= 1:
            raise ValidationError({"in_class_ratio": f"{batch.in_class_ratio} is not in (0, 1]"})
        if gold_per_page >= batch.items_per_page:
            raise ValidationError({"gold": f"{gold_per_page} gold items do not fit on {batch.items_per_page}"})
    if batch.round > 1:
        source = batch.source_batch
        if source is None:
            raise ValidationError({"source_batch": f"round {batch.round} needs the batch it follows (--from-batch)"})
        if source.dataset_id != batch.dataset_id or source.task_kind != batch.task_kind:
            raise ValidationError(
                {"source_batch": f"batch {source.name} is not a {batch.task_kind}-style batch of {batch.dataset.name}"}
            )


def _uncertainty_by_image(dataset, order=ORDER_UNCERTAINTY):
    """{image id: score} of the active model's images for an order other than random."""
    scores = ImageScore.objects.filter(image__dataset=dataset, model_version=dataset.active_model_version)
    if order == ORDER_UNCERTAINTY:
        return dict(scores.values_list("image_id", "uncertainty"))
    by_image = {
        image_id: acquisition.get(order) for image_id, acquisition in scores.values_list("image_id", "acquisition")
    }
    if by_image and all(score is None for score in by_image.values()):
        raise ValidationError({"order": (
            f"the scores of {dataset.active_model_version} have no {order}; run its inference again (score_images)"
        )})
    return {image_id: score for image_id, score in by_image.items() if score is not None}


def _ordered(image_ids, rng, uncertainty):
    """Most uncertain first (unscored last) when ordering by uncertainty, else shuffled."""
    image_ids = list(image_ids)
    rng.shuffle(image_ids)
    if uncertainty is not None:
        image_ids.sort(key=lambda image_id: uncertainty.get(image_id, float("-inf")), reverse=True)
    return image_ids


def _labelled_images_by_class(batch, split):
    """{class id: ids of the batch dataset's labelled images of the split}, in id order."""
    images_by_class = {}
    rows = Image.objects.filter(dataset=batch.dataset, split=split, label__isnull=False).values_list("id", "label_id")
    for image_id, label_id in rows.order_by("id"):
        images_by_class.setdefault(label_id, []).append(image_id)
    return images_by_class


def _round_two_pool(batch, images_by_class):
    """Round 1's in-class candidates of each class that no approved assignment re-selected."""
    source = batch.source_batch
    shown = set(
        PageItem.objects.filter(page__hit__batch=source, in_class=True).values_list("image_id", flat=True)
    )
    reselected = set(
        ImageNetRecord.objects.filter(
            assignment__hit__batch=source, assignment__state="approved", selected=True
        ).values_list("image_id", flat=True)
    )
    return {
        class_id: [image_id for image_id in image_ids if image_id in shown and image_id not in reselected]
        for class_id, image_ids in images_by_class.items()
    }


def _gold_images_by_class(batch):
    gold = _labelled_images_by_class(batch, Split.VAL)
    if not gold:
        raise ValidationError({"gold": f"dataset {batch.dataset.name} has no labelled val images to use as gold"})
    return gold


def _plan_imagenet_pages(batch, rng, uncertainty, gold_per_page):
    images_by_class = _labelled_images_by_class(batch, Split.TRAIN)
    if len(images_by_class) < 2:
        raise ValidationError({"dataset": f"dataset {batch.dataset.name} needs at least 2 classes with train images"})
    pool_by_class = _round_two_pool(batch, images_by_class) if batch.round > 1 else images_by_class
    fillers = _LabelledImages(images_by_class)
    gold = _LabelledImages(_gold_images_by_class(batch) if gold_per_page else {})

    per_page = batch.items_per_page
    in_class_slots = min(per_page, max(1, round(per_page * batch.in_class_ratio)))
    gold_in_class = min(in_class_slots - 1, round(gold_per_page * batch.in_class_ratio))
    gold_out_of_class = gold_per_page - gold_in_class
    train_in_class = in_class_slots - gold_in_class

    planned = []
    for class_id in sorted(pool_by_class):
        pool = _ordered(pool_by_class[class_id], rng, uncertainty)
        if len(pool) < train_in_class:
            logger.warning("class %s: %d images for %d in-class slots per page", class_id, len(pool), train_in_class)
        for start in range(0, len(pool), train_in_class):
            chunk = pool[start:start + train_in_class]
            if len(chunk) < train_in_class and len(pool) > len(chunk):
                # The last page of a class is topped up with the class's other images, so it keeps the ratio.
                in_chunk = set(chunk)
                rest = [image_id for image_id in pool if image_id not in in_chunk]
                chunk += rng.sample(rest, min(train_in_class - len(chunk), len(rest)))
            items = [(image_id, True, False) for image_id in chunk]
            taken = set(chunk)
            for image_id in gold.sample(rng, gold_in_class, taken, same_class=class_id):
                items.append((image_id, True, True))
            for image_id in gold.sample(rng, gold_out_of_class, taken, other_than=class_id):
                items.append((image_id, False, True))
            for image_id in fillers.sample(rng, per_page - len(items), taken, other_than=class_id):
                items.append((image_id, False, False))
            rng.shuffle(items)
            priority = max(uncertainty.get(image_id, float("-inf")) for image_id in chunk) if uncertainty else 0.0
            planned.append(PlannedPage(category_id=class_id, image_id=None, items=items, priority=priority))
    return planned


class _LabelledImages:
    """Image ids with their class, to draw candidates of one class or of any other class without repeats."""

    def __init__(self, images_by_class):
        self.by_class = images_by_class
        self.ids = [image_id for image_ids in images_by_class.values() for image_id in image_ids]
        self.label = {image_id: class_id for class_id, image_ids in images_by_class.items() for image_id in image_ids}

    def sample(self, rng, count, taken, same_class=None, other_than=None):
        """Up to count ids not yet in taken (which is updated): of same_class, or of any class but other_than."""
        if count <= 0:
            return []
        if same_class is not None:
            population = self.by_class.get(same_class, [])
            eligible_share = 1.0
        else:
            population = self.ids
            eligible_share = 1 - len(self.by_class.get(other_than, [])) / max(1, len(self.ids))
        chosen = []
        if eligible_share * len(population) > 4 * (count + len(taken)):
            # Large population: rejection sampling beats filtering the whole list for every page.
            while len(chosen) < count:
                image_id = population[rng.randrange(len(population))]
                if image_id not in taken and self.label[image_id] != other_than:
                    taken.add(image_id)
                    chosen.append(image_id)
            return chosen
        candidates = [i for i in population if i not in taken and self.label[i] != other_than]
        chosen = rng.sample(candidates, min(count, len(candidates)))
        taken.update(chosen)
        return chosen


def _plan_coco_pages(batch, rng, uncertainty):
    image_ids = list(
        Image.objects.filter(dataset=batch.dataset, split=Split.TRAIN).order_by("id").values_list("id", flat=True)
    )
    if batch.round > 1:
        shown = set(HitPage.objects.filter(hit__batch=batch.source_batch).values_list("image_id", flat=True))
        tagged = set(
            CocoRecord.objects.filter(
                assignment__hit__batch=batch.source_batch, assignment__state="approved"
            ).values_list("image_id", flat=True)
        )
        image_ids = [image_id for image_id in image_ids if image_id in shown and image_id not in tagged]
    ordered = _ordered(image_ids, rng, uncertainty)
    return [
        PlannedPage(
            category_id=None, image_id=image_id, items=[],
            priority=uncertainty.get(image_id, float("-inf")) if uncertainty is not None else 0.0,
        )
        for image_id in ordered
    ]


def _write(batch, planned, show_progress):
    n_hits = math.ceil(len(planned) / batch.pages_per_hit)
    hits = Hit.objects.bulk_create(
        [Hit(batch=batch, index=index, max_assignments=batch.assignments_per_hit) for index in range(n_hits)],
        batch_size=BULK_SIZE,
    )
    n_items = 0
    covered = set()
    progress = tqdm(total=len(planned), desc=f"packing {batch.name}", unit="page", disable=not show_progress)
    for start in range(0, len(planned), PAGES_PER_WRITE):
        chunk = planned[start:start + PAGES_PER_WRITE]
        pages = HitPage.objects.bulk_create(
            HitPage(
                hit=hits[(start + offset) // batch.pages_per_hit],
                index=(start + offset) % batch.pages_per_hit,
                category_id=plan.category_id,
                image_id=plan.image_id,
            )
            for offset, plan in enumerate(chunk)
        )
        items = []
        for page, plan in zip(pages, chunk):
            if plan.image_id is not None:
                covered.add(plan.image_id)
            for position, (image_id, in_class, is_gold) in enumerate(plan.items):
                items.append(
                    PageItem(page=page, image_id=image_id, position=position, in_class=in_class, is_gold=is_gold)
                )
                if in_class and not is_gold:
                    covered.add(image_id)
        PageItem.objects.bulk_create(items, batch_size=BULK_SIZE)
        n_items += len(items)
        progress.update(len(chunk))
    progress.close()
    return PackingResult(hits=n_hits, pages=len(planned), items=n_items, images_covered=len(covered))
