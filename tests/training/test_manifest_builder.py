import numpy as np
import pytest

from annotator.models import Assignment, TaskKind
from luab.actions import replay_actions
from tests import factories
from training.manifest_builder import ManifestBuildError, build_manifest, manifest_for
from training.ml import manifest as manifest_module

pytestmark = pytest.mark.django_db

APPROVED, REJECTED = Assignment.State.APPROVED, Assignment.State.REJECTED


def click(x, y, time=1641425052000):
    return {"x": x, "y": y, "time": time}


def imagenet_record(batch, image, state=APPROVED, selected=True, clicks=()):
    assignment = factories.AssignmentFactory(hit__batch=batch, state=state)
    return factories.ImageNetRecordFactory(
        assignment=assignment, image=image, selected=selected, selected_record=list(clicks)
    )


@pytest.fixture
def imagenet_dataset():
    dataset = factories.DatasetFactory(kind=TaskKind.IMAGENET)
    first, second = (factories.CategoryFactory(dataset=dataset, index=i) for i in range(2))
    images = {
        "a": factories.ImageFactory(dataset=dataset, label=first, split="train"),
        "b": factories.ImageFactory(dataset=dataset, label=second, split="train"),
        "v": factories.ImageFactory(dataset=dataset, label=first, split="val", meta={"background": second.key}),
    }
    factories.GroundTruthObjectFactory(image=images["v"], category=first, bbox=[100, 100, 200, 150])
    batches = [factories.BatchFactory(dataset=dataset) for _ in range(2)]
    imagenet_record(batches[0], images["a"], clicks=[click(0.2, 0.4), click(0.9, 0.9)])
    imagenet_record(batches[0], images["a"], clicks=[click(0.4, 0.6)])
    imagenet_record(batches[0], images["a"], state=REJECTED, clicks=[click(0.9, 0.1)])
    imagenet_record(batches[0], images["a"], selected=False, clicks=[click(0.7, 0.7)])
    imagenet_record(batches[1], images["b"], clicks=[click(0.1, 0.1)])
    return dataset, images, batches


def row_of(manifest, image):
    return [i for i, path in enumerate(manifest.image) if path.endswith(f"{image.key}.JPEG")][0]


def test_imagenet_targets_average_the_first_click_of_approved_selecting_records(imagenet_dataset):
    dataset, images, batches = imagenet_dataset
    manifest = manifest_for(dataset, batches=[batches[0]])

    a, b, v = (row_of(manifest, images[k]) for k in "abv")
    assert np.allclose(manifest.point[a, 0], [0.3, 0.5]) and manifest.point_weight[a, 0] == 1
    assert manifest.point_weight[b, 0] == 0  # its only record is in the batch not chosen
    assert manifest.label[a] == 0 and manifest.label[b] == 1
    assert manifest.split[v] == "val"
    boxes, classes, _ = manifest.boxes_of(v)
    assert classes.tolist() == [0] and np.allclose(boxes[0], [100 / 500, 100 / 375, 300 / 500, 250 / 375])
    assert manifest.source["batches"] == [batches[0].name] and manifest.source["train_with_points"] == 1
    assert manifest.background[v] == 1 and manifest.background[a] == -1  # the import named v's background only


def test_all_batches_by_default_and_the_file_is_named_by_its_hash(imagenet_dataset, tmp_path):
    dataset, images, _ = imagenet_dataset
    path = build_manifest(dataset, out_dir=tmp_path)
    manifest = manifest_module.read(path)
    b = row_of(manifest, images["b"])
    assert np.allclose(manifest.point[b, 0], [0.1, 0.1]) and manifest.point_weight[b, 0] == 1
    assert path.name == f"manifest-{manifest.content_hash[:16]}.npz"
    assert manifest.image[b].startswith(str(tmp_path.parent))  # an absolute path under this test's MEDIA_ROOT


def test_a_batch_of_another_dataset_is_refused(imagenet_dataset):
    dataset, _, _ = imagenet_dataset
    with pytest.raises(ManifestBuildError, match="do not belong to dataset"):
        manifest_for(dataset, batches=[factories.BatchFactory()])


def icon(action_type, key, point_from=None, point_to=None, time=1000):
    action = {"actionType": action_type, "iconType": key, "pointFrom": point_from, "timeAt": time}
    if point_to is not None:
        action["pointTo"] = point_to
    return action


@pytest.fixture
def coco_dataset():
    dataset = factories.DatasetFactory(kind=TaskKind.COCO)
    categories = [factories.CategoryFactory(dataset=dataset, index=i, key=str(i + 1)) for i in range(3)]
    image = factories.ImageFactory(dataset=dataset, split="train")
    for category in categories[:2]:
        factories.GroundTruthObjectFactory(image=image, category=category)
    val = factories.ImageFactory(dataset=dataset, split="val", width=100, height=50)
    factories.GroundTruthObjectFactory(
        image=val, category=categories[2], bbox=[10, 10, 80, 30], segmentation=[[10, 10, 90, 10, 50, 40]]
    )
    batch = factories.BatchFactory(dataset=dataset)
    histories = [
        [  # moves icon 1, removes icon 2, tags absent category 3
            icon("add", "1", point_to={"x": 0.1, "y": 0.1}),
            icon("move", "1", {"x": 0.1, "y": 0.1}, {"x": 0.3, "y": 0.3}),
            icon("add", "2", point_to={"x": 0.5, "y": 0.5}),
            icon("remove", "2", {"x": 0.5, "y": 0.5}),
            icon("add", "3", point_to={"x": 0.9, "y": 0.9}),
        ],
        [icon("add", "1", point_to={"x": 0.5, "y": 0.5})],
    ]
    for actions in histories:
        factories.CocoRecordFactory(
            assignment=factories.AssignmentFactory(hit__batch=batch, state=APPROVED), image=image,
            action_histories=actions, final_positions=replay_actions(actions),
        )
    factories.CocoRecordFactory(  # rejected work is ignored
        assignment=factories.AssignmentFactory(hit__batch=batch, state=REJECTED), image=image,
        action_histories=[icon("add", "2", point_to={"x": 0.0, "y": 0.0})], final_positions={"2": {"x": 0, "y": 0}},
    )
    return dataset, image, val


def test_coco_targets_are_replayed_final_positions_averaged_over_workers(coco_dataset):
    dataset, image, val = coco_dataset
    manifest = manifest_for(dataset)
    row = [i for i, split in enumerate(manifest.split) if split == "train"][0]

    assert manifest.label[row].tolist() == [1, 1, 0]
    assert manifest.point_weight[row].tolist() == [1, 0, 0]  # 2 was removed; 3 is not in the image
    assert np.allclose(manifest.point[row, 0], [0.4, 0.4])
    v = [i for i, split in enumerate(manifest.split) if split == "val"][0]
    _, classes, polygons = manifest.boxes_of(v)
    assert classes.tolist() == [2] and np.allclose(polygons[0][0], [[0.1, 0.2], [0.9, 0.2], [0.5, 0.8]])


def test_coco_adds_only_reproduces_the_released_loader(coco_dataset):
    dataset, _, _ = coco_dataset
    manifest = manifest_for(dataset, icons="adds_only")
    row = [i for i, split in enumerate(manifest.split) if split == "train"][0]

    assert manifest.point_weight[row].tolist() == [1, 1, 0]
    assert np.allclose(manifest.point[row, 0], [0.3, 0.3]) and np.allclose(manifest.point[row, 1], [0.5, 0.5])


def test_the_build_streams_in_a_handful_of_queries_whatever_the_size(imagenet_dataset, monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from training import manifest_builder

    dataset, images, batches = imagenet_dataset
    monkeypatch.setattr(manifest_builder, "CHUNK_SIZE", 2)  # every step spans several chunks
    steps = []

    def queries_for_a_build():
        with CaptureQueriesContext(connection) as queries:
            manifest = manifest_for(dataset, progress=lambda step, done, total: steps.append((step, done, total)))
        return len(queries), manifest

    small, _ = queries_for_a_build()
    for i in range(12):
        image = factories.ImageFactory(dataset=dataset, label=images["a"].label, split="train" if i % 3 else "val")
        factories.GroundTruthObjectFactory(image=image, category=images["a"].label)
        imagenet_record(batches[i % 2], image, clicks=[click(0.1 * (i % 9), 0.5)])
    steps.clear()
    large, manifest = queries_for_a_build()

    assert large == small <= 10
    assert len(manifest) == 15 and manifest.source["train_with_points"] == 10
    assert [step for step in steps if step[0] == "images"] == [("images", n, 15) for n in (2, 4, 6, 8, 10, 12, 14, 15)]
    assert [step for step in steps if step[0] == "boxes"][-1] == ("boxes", 5, 5)  # val boxes only
    row = row_of(manifest, images["a"])
    assert np.allclose(manifest.point[row, 0], [0.3, 0.5])  # chunking changes no target
