"""Factories for the annotation model (factory_boy)."""
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
