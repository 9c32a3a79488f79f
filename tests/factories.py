"""Factories for the annotation model (factory_boy)."""
import secrets

import factory
from django.core.files.base import ContentFile

from annotator import models


class DatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Dataset

    name = factory.Sequence(lambda n: f"dataset-{n}")
    kind = models.TaskKind.IMAGENET


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Category

    dataset = factory.SubFactory(DatasetFactory)
    key = factory.Sequence(lambda n: f"n{n:08d}")
    index = factory.Sequence(lambda n: n)
    name = factory.Sequence(lambda n: f"class {n}")
    definition = "a thing that can be photographed"


class ImageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Image

    dataset = factory.SubFactory(DatasetFactory)
    key = factory.Sequence(lambda n: f"img_{n}")
    file = factory.LazyAttribute(lambda o: ContentFile(b"not decoded in tests", name=f"{o.key}.JPEG"))
    # A display version's name, as annotator.images names them (no file is written).
    display_file = factory.LazyFunction(lambda: f"display/{secrets.token_hex(16)}.jpg")
    width = 500
    height = 375


class GroundTruthObjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.GroundTruthObject

    image = factory.SubFactory(ImageFactory)
    category = factory.SubFactory(CategoryFactory)
    bbox = [100, 100, 200, 150]
    area = 30000


class WorkerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Worker

    provider = models.Provider.LINK
    external_id = factory.Sequence(lambda n: f"W{n:06d}")


class BatchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Batch

    name = factory.Sequence(lambda n: f"batch-{n}")
    dataset = factory.SubFactory(DatasetFactory)
    task_kind = factory.LazyAttribute(lambda o: o.dataset.kind)


class HitFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Hit

    batch = factory.SubFactory(BatchFactory)
    index = factory.Sequence(lambda n: n)


class HitPageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.HitPage

    hit = factory.SubFactory(HitFactory)
    index = factory.Sequence(lambda n: n)


class AssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = models.Assignment

    hit = factory.SubFactory(HitFactory)
    worker = factory.SubFactory(WorkerFactory)


class ImageNetRecordFactory(factory.django.DjangoModelFactory):
    """A selecting session: one click at (0.5, 0.5), entered and left once."""

    class Meta:
        model = models.ImageNetRecord

    assignment = factory.SubFactory(AssignmentFactory)
    page = factory.SubFactory(HitPageFactory, hit=factory.SelfAttribute("..assignment.hit"))
    image = factory.SubFactory(ImageFactory)
    selected = True
    selected_record = factory.LazyFunction(lambda: [{"x": 0.5, "y": 0.5, "time": 1641425052000}])
    hovered_record = factory.LazyFunction(
        lambda: [{"action": "enter", "time": 1641425051000}, {"action": "leave", "time": 1641425053000}]
    )
    mouse_tracking = factory.LazyFunction(lambda: [{"x": 0.5, "y": 0.5, "time": 1641425052000}])
    image_position = factory.LazyFunction(lambda: {"x": 857, "y": 1976})
    image_width = 200
    image_height = 150


class CocoRecordFactory(factory.django.DjangoModelFactory):
    """One icon added at (0.5, 0.5); final_positions holds the replayed result."""

    class Meta:
        model = models.CocoRecord

    assignment = factory.SubFactory(AssignmentFactory)
    page = factory.SubFactory(HitPageFactory, hit=factory.SelfAttribute("..assignment.hit"))
    image = factory.SubFactory(ImageFactory)
    image_width = 450
    image_height = 450
    time_spent = 22283
    action_histories = factory.LazyFunction(
        lambda: [{"actionType": "add", "iconType": "1", "pointFrom": None, "pointTo": {"x": 0.5, "y": 0.5},
                  "timeAt": 16686}]
    )
    category_histories = factory.LazyFunction(
        lambda: [{"categoryIndex": 1, "categoryName": "Animal", "timeAt": 10815, "usingKeyboard": False}]
    )
    mouse_tracking = factory.LazyFunction(lambda: [{"x": 0.679, "y": 0.862, "timeAt": 15725}])
    final_positions = factory.LazyFunction(lambda: {"1": {"x": 0.5, "y": 0.5}})


def make_imagenet_hit(n_pages=10, items_per_page=48, n_in_class=36, **batch_fields):
    """An ImageNet-style HIT: page p shows class p with n_in_class of its own images first, then other images.

    Rows are bulk-created (no image files are written); the batch is published unless batch_fields say otherwise.
    """
    dataset = DatasetFactory(kind=models.TaskKind.IMAGENET)
    categories = [CategoryFactory(dataset=dataset, index=i) for i in range(n_pages + 1)]
    other = categories[-1]
    batch = BatchFactory(
        dataset=dataset, pages_per_hit=n_pages, items_per_page=items_per_page,
        **{"status": models.Batch.Status.PUBLISHED, **batch_fields},
    )
    hit = HitFactory(batch=batch, status=models.Hit.Status.PUBLISHED)
    images, pages = [], []
    for p in range(n_pages):
        pages.append(models.HitPage(hit=hit, index=p, category=categories[p]))
        for k in range(items_per_page):
            label = categories[p] if k < n_in_class else other
            key = f"{label.key}_{p}_{k}"
            images.append(models.Image(
                dataset=dataset, key=key, file=f"images/{key}.JPEG",
                display_file=f"display/{secrets.token_hex(16)}.jpg", width=500, height=375, label=label,
            ))
    models.Image.objects.bulk_create(images)
    models.HitPage.objects.bulk_create(pages)
    image_ids = dict(models.Image.objects.filter(dataset=dataset).values_list("key", "pk"))
    pages = list(hit.pages.order_by("index"))
    items = [
        models.PageItem(
            page=page, image_id=image_ids[image.key], position=k, in_class=k < n_in_class,
        )
        for page in pages
        for k, image in enumerate(images[page.index * items_per_page:(page.index + 1) * items_per_page])
    ]
    models.PageItem.objects.bulk_create(items)
    return hit


COCO_TEST_CATEGORIES = [
    # (key, name, supercategory)
    ("1", "person", "person"),
    ("2", "bicycle", "vehicle"),
    ("3", "car", "vehicle"),
    ("18", "dog", "animal"),
]


def make_coco_hit(n_pages=2, **batch_fields):
    """A COCO-style HIT over 640x480 images with three groups (person, vehicle, animal).

    Every image has a person polygon (a square, 100..300 px on both axes), a car with a bbox only
    (400..600 x 100..200) and, on a corner, a dog given as an uncompressed RLE (the 10x10 block at 0..10 px).
    """
    dataset = DatasetFactory(kind=models.TaskKind.COCO)
    categories = {
        key: CategoryFactory(dataset=dataset, key=key, index=i, name=name, supercategory=group)
        for i, (key, name, group) in enumerate(COCO_TEST_CATEGORIES)
    }
    batch = BatchFactory(
        dataset=dataset, pages_per_hit=n_pages, items_per_page=1,
        **{"status": models.Batch.Status.PUBLISHED, **batch_fields},
    )
    hit = HitFactory(batch=batch, status=models.Hit.Status.PUBLISHED)
    for p in range(n_pages):
        image = models.Image.objects.create(
            dataset=dataset, key=str(1000 + p), file=f"images/{1000 + p}.jpg",
            display_file=f"display/{secrets.token_hex(16)}.jpg", width=640, height=480,
        )
        models.HitPage.objects.create(hit=hit, index=p, image=image)
        models.GroundTruthObject.objects.create(
            image=image, category=categories["1"], bbox=[100, 100, 200, 200], area=40000,
            segmentation=[[100, 100, 300, 100, 300, 300, 100, 300]],
        )
        models.GroundTruthObject.objects.create(
            image=image, category=categories["3"], bbox=[400, 100, 200, 100], area=20000, segmentation=None
        )
        # Column-major runs over 480 rows: columns 0..9 have rows 0..9 set.
        counts = []
        for column in range(10):
            counts += [0 if column == 0 else 470, 10]
        counts.append(480 * 640 - sum(counts))
        models.GroundTruthObject.objects.create(
            image=image, category=categories["18"], bbox=[0, 0, 10, 10], area=100, iscrowd=True,
            segmentation={"counts": counts, "size": [480, 640]},
        )
    return hit
