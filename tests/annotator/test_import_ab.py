import io
import json
import tarfile
from xml.etree import ElementTree

import pytest
from django.core.management import CommandError, call_command

from annotator.exports import coco_ab, services
from annotator.models import Assignment, Batch, CocoRecord, ImageNetRecord, TaskKind
from tests import factories
from tests.annotator.test_exports import coco_batch, export_bytes, imagenet_batch, tar_members  # noqa: F401

pytestmark = pytest.mark.django_db


def import_file(tmp_path, data, export_format, dataset, name="byproducts"):
    path = tmp_path / name
    path.write_bytes(data)
    out = io.StringIO()
    call_command("import_ab", "--format", export_format, str(path), "--dataset", dataset, stdout=out, verbosity=0)
    return out.getvalue()


def sessions_without_worker_ids(members):
    """{member: [metadata as text with worker_id blanked]} plus the grouping of sessions by worker."""
    sessions, workers = {}, []
    for name, document in members.items():
        root = ElementTree.fromstring(document)
        for metadata in root.findall("metadata"):
            worker = metadata.find("worker_id")
            workers.append(worker.text)
            worker.text = ""
        sessions[name] = ElementTree.tostring(root, encoding="unicode")
    return sessions, [workers.index(worker) for worker in workers]


def test_imagenet_ab_export_then_import_round_trips(imagenet_batch, tmp_path):
    image = imagenet_batch.dataset.images.get()
    second_page = factories.HitPageFactory(hit=imagenet_batch.hits.get(), index=4, category=image.label)
    factories.ImageNetRecordFactory(
        assignment=Assignment.objects.get(state="approved"), page=second_page, image=image, selected=False,
        selected_record=[{"x": 0.2, "y": 0.3, "time": 1641425060000}],
        deselected_record=[{"x": 0.25, "y": 0.35, "time": 1641425061000}],
    )
    exported = export_bytes(imagenet_batch, "imagenet-ab")

    output = import_file(tmp_path, exported, "imagenet-ab", "imagenet-mini")

    assert "imported 2 records into batch imagenet-mini-imagenet-ab-import" in output
    batch = Batch.objects.get(name="imagenet-mini-imagenet-ab-import")
    assert (batch.round, batch.provider, batch.provider_config["imported"]) == (0, "link", True)
    assert set(Assignment.objects.filter(hit__batch=batch).values_list("state", flat=True)) == {"approved"}
    unselected = ImageNetRecord.objects.get(assignment__hit__batch=batch, selected=False)
    assert unselected.selected_record == [{"x": 0.2, "y": 0.3, "time": 1641425060000}]
    assert unselected.deselected_record == [{"x": 0.25, "y": 0.35, "time": 1641425061000}]
    assert sessions_without_worker_ids(tar_members(export_bytes(batch, "imagenet-ab"))) == \
        sessions_without_worker_ids(tar_members(exported))


def test_coco_ab_export_then_import_round_trips_with_replayed_tags(coco_batch, tmp_path):
    exported = export_bytes(coco_batch, "coco-ab")

    import_file(tmp_path, exported, "coco-ab", "coco-mini")

    batch = Batch.objects.get(name="coco-mini-coco-ab-import")
    record = CocoRecord.objects.get(assignment__hit__batch=batch)
    assert record.final_positions == {"2": {"x": 0.592, "y": 0.639}}
    assert record.action_histories[0]["iconType"] == "3"
    again = json.loads(export_bytes(batch, "coco-ab"))
    first = json.loads(exported)
    for records in (again, first):
        for exported_record in records:
            exported_record.pop("worker_id")
    assert again == first


def test_records_of_unknown_images_are_counted_and_reported(coco_batch, tmp_path):
    records = json.loads(export_bytes(coco_batch, "coco-ab"))
    records.append({**records[0], "image_id": 999, "hit_id": "other"})

    output = import_file(tmp_path, json.dumps(records).encode(), "coco-ab", "coco-mini")

    assert "imported 1 records" in output
    assert "1 records match no image of dataset coco-mini, not imported (e.g. 999)" in output


def tarball(members):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.parametrize("member, change, message", [
    ("train_xml/n01440764/n01440764_105.xml", ("<selected>True</selected>", "<selected>yes</selected>"),
     "train_xml/n01440764/n01440764_105.xml metadata 0: <selected> is 'yes', expected True or False"),
    ("train_xml/n01440764/n01440764_105.xml", ("<imageWidth>243</imageWidth>", ""),
     "metadata 0: missing <imageWidth>"),
    ("train_xml/n01440764/n01440764_105.xml", ("<time>1641425052000</time>", "<time>soon</time>"),
     "metadata 0 <selectedRecord>: <time> is 'soon', not a number"),
    ("train_xml/n01440764/n01440764_105.xml", ("</annotation>", ""), "not well-formed XML"),
    ("../../etc/n01440764_105.xml", ("", ""), "../../etc/n01440764_105.xml: refused, the path leaves the archive"),
])
def test_malformed_imagenet_ab_is_refused_naming_the_problem_and_nothing_is_written(
    imagenet_batch, tmp_path, member, change, message
):
    document = next(iter(tar_members(export_bytes(imagenet_batch, "imagenet-ab")).values()))
    good_member = "train_xml/n01440764/n01440764_9.xml"
    members = {good_member: document, member: document.replace(*change)}
    records_before = ImageNetRecord.objects.count()

    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_file(tmp_path, tarball(members), "imagenet-ab", "imagenet-mini")

    assert ImageNetRecord.objects.count() == records_before
    assert not Batch.objects.filter(name__endswith="-import").exists()


def test_a_file_that_is_not_a_tarball_is_refused(imagenet_batch, tmp_path):
    with pytest.raises(CommandError, match="not a readable tar.gz archive"):
        import_file(tmp_path, b"<annotation/>", "imagenet-ab", "imagenet-mini")


@pytest.mark.parametrize("change, message", [
    (lambda r: r.pop("timeSpent"), r"record 0: Object missing required field `timeSpent`"),
    (lambda r: r.update(imageWidth="wide"), r"record 0: Expected `int`, got `str` - at `\$.imageWidth`"),
    (lambda r: r["actionHistories"][3].pop("pointFrom"),
     r"record 0 \(image_id 459214\): actionHistories\[3\] \(remove\) has no pointFrom"),
    (lambda r: r["actionHistories"][0].update(iconType="spaceship"),
     r"record 0 actionHistories\[0\]: iconType 'spaceship' is not a category of this dataset"),
])
def test_malformed_coco_ab_is_refused_naming_the_field_and_nothing_is_written(coco_batch, tmp_path, change, message):
    records = json.loads(export_bytes(coco_batch, "coco-ab"))
    records.insert(0, json.loads(json.dumps(records[0])))
    change(records[0])
    records_before = CocoRecord.objects.count()

    with pytest.raises(CommandError, match=message):
        import_file(tmp_path, json.dumps(records).encode(), "coco-ab", "coco-mini")

    assert CocoRecord.objects.count() == records_before
    assert not Batch.objects.filter(name__endswith="-import").exists()


def test_import_needs_a_dataset_of_the_right_kind_and_a_free_batch_name(coco_batch, imagenet_batch, tmp_path):
    exported = export_bytes(coco_batch, "coco-ab")
    with pytest.raises(CommandError, match="coco-ab byproducts need a coco-style dataset; imagenet-mini is imagenet"):
        import_file(tmp_path, exported, "coco-ab", "imagenet-mini")

    import_file(tmp_path, exported, "coco-ab", "coco-mini")
    with pytest.raises(CommandError, match="batch coco-mini-coco-ab-import already exists"):
        import_file(tmp_path, exported, "coco-ab", "coco-mini")


def test_imported_imagenet_records_count_as_approved_work_of_the_dataset(imagenet_batch):
    result = services.import_imagenet_ab(
        imagenet_batch.dataset, io.BytesIO(export_bytes(imagenet_batch, "imagenet-ab")), batch_name="released"
    )

    record = ImageNetRecord.objects.get(assignment__hit__batch=result.batch)
    assert record.assignment.state == Assignment.State.APPROVED
    assert record.selected_record == [{"x": 0.54, "y": 0.473, "time": 1641425052000}]
    assert record.page.category == record.image.label
    assert result.batch.task_kind == TaskKind.IMAGENET


@pytest.mark.parametrize("text, message", [
    ("RECORD", r"not a JSON list: the file must start with \["),
    ("[RECORD, {", r"record 1: not valid JSON \(Expecting property name enclosed in double quotes\)"),
    ("[RECORD RECORD]", "record 0: expected , or ] after it, found {"),
    ("[RECORD, \udcff]", "not UTF-8 text"),
])
def test_a_file_that_is_not_a_json_list_is_refused(coco_batch, tmp_path, text, message):
    record = json.dumps(json.loads(export_bytes(coco_batch, "coco-ab"))[0])
    data = text.replace("RECORD", record).encode("utf-8", errors="surrogateescape")

    with pytest.raises(CommandError, match=message):
        import_file(tmp_path, data, "coco-ab", "coco-mini")
    assert not Batch.objects.filter(name__endswith="-import").exists()


def test_coco_ab_is_read_as_a_stream_across_chunk_boundaries():
    records = [{"image_id": i, "mouseTracking": [{"x": 0.5, "y": 0.25, "timeAt": 10 * i}]} for i in range(50)]
    text = json.dumps(records, indent=2)

    assert list(coco_ab.iter_json_list(io.StringIO(text), chunk_chars=7)) == records
