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
