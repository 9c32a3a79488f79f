import gc
import gzip
import io
import json
import tarfile
import tracemalloc
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from annotator.importers import ab
from annotator.models import (
    Assignment, Batch, CocoRecord, Event, GroundTruthObject, Image, ImageNetRecord, PageItem,
    PageSubmission, TaskKind,
)
from annotator.review.selectors import work_summaries
from annotator.worker.services import coco_summary
from luab import coco_ab, imagenet_ab
from tests import factories
from tests.annotator.test_exports import (  # noqa: F401
    GOLDEN_XML, coco_batch, export_bytes, imagenet_batch, tar_members,
)
from training.manifest_builder import manifest_for

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
    result = ab.import_imagenet_ab(
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


# Imported batches look like collected ones downstream: page summaries, page items, training, report, review

def published_xml(stem, sessions):
    """A released-format ImageNet-AB document (seed 000, Figure A) for `stem` with one metadata per session:
    (worker_id, assignment_id, page_idx, click (x, y) or None for an unselected session, imagePosition y)."""
    head = GOLDEN_XML[:GOLDEN_XML.index("\t<metadata>")]
    metadata = GOLDEN_XML[GOLDEN_XML.index("\t<metadata>"):GOLDEN_XML.index("</annotation>")]
    wnid = stem.split("_")[0]
    parts = [head.replace("n01440764_105", stem).replace("n01440764", wnid)]
    for worker, assignment, page_idx, click, position_y in sessions:
        session = (metadata.replace("n01440764/n01440764_105", f"{wnid}/{stem}").replace("{worker}", worker)
                   .replace("3AMYWKA6YLE80HK90YYHI2YEL2Y06L", assignment)
                   .replace("<page_idx>3</page_idx>", f"<page_idx>{page_idx}</page_idx>")
                   .replace("<y>1976</y>", f"<y>{position_y}</y>"))
        if click is None:
            start, end = session.index("\t\t<selectedRecord>"), session.index("\t\t<hoveredRecord>")
            session = session[:start] + session[end:]
            session = session.replace("<selected>True</selected>", "<selected>False</selected>")
        else:
            session = session.replace("<x>0.540</x>", f"<x>{click[0]}</x>")
            session = session.replace("<y>0.473</y>", f"<y>{click[1]}</y>")
        parts.append(session)
    parts.append("</annotation>\n")
    return "".join(parts)


@pytest.fixture
def released_imagenet(tmp_path):
    """A dataset imported earlier (two tench images with boxes, a goldfish, a val image) and a released-format
    ImageNet-AB tarball: worker A's page 3 shows the three train images, worker B's page 0 one of them."""
    dataset = factories.DatasetFactory(name="released")
    tench = factories.CategoryFactory(dataset=dataset, key="n01440764", name="tench", index=0)
    goldfish = factories.CategoryFactory(dataset=dataset, key="n01443537", name="goldfish", index=1)
    centred = factories.ImageFactory(dataset=dataset, key="n01440764_105", label=tench)
    cornered = factories.ImageFactory(dataset=dataset, key="n01440764_9", label=tench)
    factories.ImageFactory(dataset=dataset, key="n01443537_7", label=goldfish)
    factories.ImageFactory(dataset=dataset, key="val_1", label=goldfish, split="val")
    factories.GroundTruthObjectFactory(image=centred, category=tench, bbox=[10, 20, 300, 200])
    factories.GroundTruthObjectFactory(image=cornered, category=tench, bbox=[0, 0, 50, 50])
    members = {
        "train_xml/n01440764/n01440764_105.xml": published_xml("n01440764_105", [
            ("AAAAAAAAAA", "ASSIGNMENT-A", 3, (0.54, 0.473), 1976), ("BBBBBBBBBB", "ASSIGNMENT-B", 0, (0.2, 0.2), 10),
        ]),
        "train_xml/n01440764/n01440764_9.xml": published_xml("n01440764_9", [
            ("AAAAAAAAAA", "ASSIGNMENT-A", 3, (0.05, 0.05), 100),
        ]),
        "train_xml/n01443537/n01443537_7.xml": published_xml("n01443537_7", [
            ("AAAAAAAAAA", "ASSIGNMENT-A", 3, None, 500),
        ]),
    }
    path = tmp_path / "imagenet_ab.tar.gz"
    path.write_bytes(tarball(members))
    return dataset, path


def test_imported_imagenet_ab_gets_page_summaries_and_items_like_collected_work(released_imagenet):
    dataset, path = released_imagenet
    out = io.StringIO()
    call_command("import_ab", "--format", "imagenet-ab", str(path), "--dataset", "released", stdout=out)
    assert "imported 4 records into batch released-imagenet-ab-import (2 page summaries" in out.getvalue()

    batch = Batch.objects.get(name="released-imagenet-ab-import")
    page_a = PageSubmission.objects.get(assignment__hit__batch=batch, page__index=3)
    assert (page_a.n_selected, page_a.n_in_class, page_a.n_in_class_selected) == (2, 2, 2)
    assert page_a.time_spent_ms == 3000  # first hover to last leave of the page's records
    assert page_a.client["imported"] is True
    page_b = PageSubmission.objects.get(assignment__hit__batch=batch, page__index=0)
    assert (page_b.n_selected, page_b.n_in_class, page_b.n_in_class_selected) == (1, 1, 1)
    items = PageItem.objects.filter(page=page_a.page).order_by("position")
    assert [(item.image.key, item.in_class) for item in items] == [
        ("n01440764_9", True), ("n01443537_7", False), ("n01440764_105", True)]  # page order: imagePosition y
    summaries = work_summaries([page_a.assignment_id])
    assert summaries[page_a.assignment_id].pages_completed == 1
    assert summaries[page_a.assignment_id].n_in_class_selected == 2


def test_researcher_path_import_then_train_manifest_then_report(released_imagenet, tmp_path):
    """Released tarball -> import_ab -> the training manifest carries the clicks -> the report runs on it."""
    dataset, path = released_imagenet
    call_command("import_ab", "--format", "imagenet-ab", str(path), "--dataset", "released", verbosity=0)
    batch = Batch.objects.get(name="released-imagenet-ab-import")

    manifest = manifest_for(dataset)  # all of the dataset's batches, as `manage.py train --dataset` does
    rows = {Path(image).stem: row for row, image in enumerate(manifest.image)}
    assert np.allclose(manifest.point[rows["n01440764_105"], 0], [(0.54 + 0.2) / 2, (0.473 + 0.2) / 2])
    assert np.allclose(manifest.point[rows["n01440764_9"], 0], [0.05, 0.05])
    assert manifest.point_weight[rows["n01440764_105"], 0] == 1
    assert manifest.point_weight[rows["n01443537_7"], 0] == 0  # shown, not selected
    assert manifest.source["train_with_points"] == 2

    call_command("byproduct_report", batch.name, "--out", str(tmp_path / "report"), verbosity=0)
    numbers = json.loads((tmp_path / "report" / "report.json").read_text())["ours"]
    assert numbers["click_accuracy"] == {"value": 1.0, "n": 2}
    assert numbers["centre_baseline"] == {"value": 0.5, "n": 2}
    assert numbers["off_centre_click_accuracy"] == {"value": 1.0, "n": 1}
    assert numbers["time"]["median_seconds_per_page"] == 3.0
    assert "<tr><td>Click in a GT box</td><td>100.0%</td><td>2</td><td>82.9%</td></tr>" in \
        (tmp_path / "report" / "report.html").read_text()


def test_page_times_in_epoch_seconds_as_in_the_paper_figure_are_read_as_seconds(released_imagenet, tmp_path):
    dataset, _ = released_imagenet
    document = published_xml("n01440764_9", [("AAAAAAAAAA", "ASSIGNMENT-A", 3, (0.05, 0.05), 100)])
    document = document.replace("000</time>", "</time>")  # 1641425051000 ms -> 1641425051 s
    path = tmp_path / "seconds.tar.gz"
    path.write_bytes(tarball({"train_xml/n01440764/n01440764_9.xml": document}))

    call_command("import_ab", "--format", "imagenet-ab", str(path), "--dataset", "released", verbosity=0)

    assert PageSubmission.objects.get().time_spent_ms == 3000


def test_imported_coco_ab_gets_page_summaries_from_the_replayed_tags(coco_batch, tmp_path):
    records = json.loads(export_bytes(coco_batch, "coco-ab"))

    import_file(tmp_path, json.dumps(records).encode(), "coco-ab", "coco-mini")

    batch = Batch.objects.get(name="coco-mini-coco-ab-import")
    record = CocoRecord.objects.get(assignment__hit__batch=batch)
    submission = PageSubmission.objects.get(assignment__hit__batch=batch)
    assert submission.page_id == record.page_id and submission.time_spent_ms == records[0]["timeSpent"]
    expected = coco_summary(record.image, record.final_positions)
    assert {key: getattr(submission, key) for key in expected} == expected
    assert expected["n_icons"] == 1 and expected["n_gt_categories"] >= 1


def test_researcher_path_coco_ab_import_then_train_manifest_then_report(coco_batch, tmp_path):
    """Released COCO-AB JSON -> import_ab -> manifest icons (replayed and adds-only) -> report and summaries."""
    records = json.loads(export_bytes(coco_batch, "coco-ab"))
    car_only = {**records[0], "hit_id": "HIT-2", "worker_id": "00AA3B5E80", "page_id": 0, "timeSpent": 10000,
                "actionHistories": [{"actionType": "add", "iconType": "car", "pointFrom": None,
                                     "pointTo": {"x": 0.3, "y": 0.4}, "timeAt": 5000}]}
    import_file(tmp_path, json.dumps([records[0], car_only]).encode(), "coco-ab", "coco-mini")
    dataset = coco_batch.dataset
    imported = Batch.objects.get(name="coco-mini-coco-ab-import")
    for offset in (1000, 0):  # dense class indexes, as the importers make them
        for index, category in enumerate(dataset.categories.order_by("key")):
            category.index = offset + index
            category.save(update_fields=["index"])

    car = dataset.categories.get(name="car").index
    replayed = manifest_for(dataset, batches=[imported])
    assert replayed.point_weight[0].tolist() == [1.0 if index == car else 0.0 for index in range(2)]
    assert np.allclose(replayed.point[0, car], [0.3, 0.4])  # the first worker removed their car icon
    adds_only = manifest_for(dataset, batches=[imported], icons="adds_only")
    assert np.allclose(adds_only.point[0, car], [(0.583 + 0.3) / 2, (0.588 + 0.4) / 2])

    call_command("byproduct_report", imported.name, "--out", str(tmp_path / "report"), verbosity=0)
    numbers = json.loads((tmp_path / "report" / "report.json").read_text())["ours"]
    assert numbers["icon_accuracy"] == {"value": 0.5, "n": 2}  # a bicycle icon on an image without bicycles
    assert numbers["time"]["median_minutes_per_hit"] == pytest.approx((22283 + 10000) / 2 / 60000)
    page = PageSubmission.objects.get(assignment__hit__external_id="HIT-2")
    assert (page.n_gt_categories, page.n_tagged_correct, page.n_icons, page.n_icons_on_mask) == (1, 1, 1, 1)


def test_round_two_repacks_what_the_imported_round_did_not_reselect(released_imagenet, tmp_path):
    dataset, _ = released_imagenet
    members = {
        "train_xml/n01440764/n01440764_105.xml": published_xml("n01440764_105", [
            ("AAAAAAAAAA", "ASSIGNMENT-A", 0, (0.54, 0.473), 10)]),
        "train_xml/n01440764/n01440764_9.xml": published_xml("n01440764_9", [
            ("AAAAAAAAAA", "ASSIGNMENT-A", 0, None, 20)]),
    }
    path = tmp_path / "round1.tar.gz"
    path.write_bytes(tarball(members))
    call_command("import_ab", "--format", "imagenet-ab", str(path), "--dataset", "released", verbosity=0)

    call_command("build_hits", "--dataset", "released", "--batch", "round-2", "--round", "2",
                 "--from-batch", "released-imagenet-ab-import", "--items-per-page", "2", verbosity=0)

    repacked = PageItem.objects.filter(page__hit__batch__name="round-2", in_class=True)
    assert [item.image.key for item in repacked] == ["n01440764_9"]


# The journal: imported pages get the PAGE_SAVED event a page save writes

def saved_page_events(batch):
    return {
        (event.assignment_id, event.data["page"]): (event.hit_id, event.data)
        for event in Event.objects.filter(type=Event.Type.PAGE_SAVED, assignment__hit__batch=batch)
    }


def test_imported_imagenet_pages_are_journalled_like_saved_pages(released_imagenet):
    dataset, path = released_imagenet
    call_command("import_ab", "--format", "imagenet-ab", str(path), "--dataset", "released", verbosity=0)

    batch = Batch.objects.get(name="released-imagenet-ab-import")
    events = saved_page_events(batch)
    assert len(events) == Event.objects.filter(type=Event.Type.PAGE_SAVED).count() == 2
    for page in PageSubmission.objects.filter(assignment__hit__batch=batch).select_related("page"):
        assert events[page.assignment_id, page.page.index] == (page.page.hit_id, {
            "page": page.page.index, "n_selected": page.n_selected, "n_in_class": page.n_in_class,
            "n_in_class_selected": page.n_in_class_selected,
        })
    assert events[PageSubmission.objects.get(page__index=3).assignment_id, 3][1] == {
        "page": 3, "n_selected": 2, "n_in_class": 2, "n_in_class_selected": 2}


def test_imported_coco_pages_are_journalled_like_saved_pages(coco_batch, tmp_path):
    records = json.loads(export_bytes(coco_batch, "coco-ab"))
    second = {**records[0], "hit_id": "HIT-2", "worker_id": "00AA3B5E80", "page_id": 0}

    import_file(tmp_path, json.dumps([records[0], second]).encode(), "coco-ab", "coco-mini")

    batch = Batch.objects.get(name="coco-mini-coco-ab-import")
    events = saved_page_events(batch)
    assert len(events) == 2
    for page in PageSubmission.objects.filter(assignment__hit__batch=batch).select_related("page"):
        assert events[page.assignment_id, page.page.index] == (page.page.hit_id, {
            "page": page.page.index, "n_gt_categories": page.n_gt_categories,
            "n_tagged_correct": page.n_tagged_correct, "n_icons": page.n_icons,
            "n_icons_on_mask": page.n_icons_on_mask,
        })
        assert page.n_icons == 1


# Large files: written a chunk at a time, all or nothing, in memory that does not grow with the file

def test_a_malformed_record_after_written_chunks_leaves_nothing_imported(coco_batch, tmp_path, monkeypatch):
    monkeypatch.setattr(ab, "IMPORT_CHUNK", 2)
    record = json.loads(export_bytes(coco_batch, "coco-ab"))[0]
    records = [{**json.loads(json.dumps(record)), "hit_id": f"HIT-{n}"} for n in range(7)]
    records[5]["actionHistories"][0]["iconType"] = "spaceship"

    with pytest.raises(CommandError, match="record 5 actionHistories\\[0\\]: iconType 'spaceship'"):
        import_file(tmp_path, json.dumps(records).encode(), "coco-ab", "coco-mini")

    assert not Batch.objects.filter(name__endswith="-import").exists()
    assert CocoRecord.objects.count() == 1  # the fixture's own
    assert not Event.objects.filter(type=Event.Type.PAGE_SAVED).exists()


def generated_imagenet_ab(path, n_images):
    """An ImageNet-AB tarball (the exporter's writer) of one session per image: 10 images a page, 2 pages a HIT."""
    dataset = factories.DatasetFactory(name=f"generated-{path.name}")
    category = factories.CategoryFactory(dataset=dataset, key="n01440764")
    images = Image.objects.bulk_create(
        Image(dataset=dataset, key=f"n01440764_{i}", file=f"images/{i}.JPEG", width=500, height=375, label=category)
        for i in range(n_images)
    )
    trace = [{"x": i / 100, "y": i / 100, "time": 1641425051000 + i * 16} for i in range(30)]
    sessions = ({
        "image_id": image.pk, "image_key": image.key, "image_label": category.key,
        "page_category": category.key, "original_width": 500, "original_height": 375, "image_width": 200,
        "image_height": 150, "selected": True, "selected_record": trace[-1:], "deselected_record": [],
        "hovered_record": [{"action": "enter", "time": 1641425051000}], "mouse_tracking": trace,
        "image_position": {"x": i % 10, "y": 0}, "worker_hashed_id": f"{i // 20:010X}",
        "assignment_external_id": f"ASSIGNMENT-{i // 20}", "page_index": i // 10 % 2,
    } for i, image in enumerate(images))
    with gzip.open(path, "wb") as out:
        imagenet_ab.write_tar(sessions, out, anonymise=lambda hashed: hashed, load_objects=lambda ids: {})
    return dataset, path


def generated_coco_ab(path, n_images):
    """A COCO-AB file (the exporter's writer) of one record per image, each image with a ground-truth box."""
    dataset = factories.DatasetFactory(name=f"generated-coco-{path.name}", kind=TaskKind.COCO)
    car = factories.CategoryFactory(dataset=dataset, key="3", name="car")
    images = Image.objects.bulk_create(
        Image(dataset=dataset, key=str(1000 + i), file=f"images/{i}.jpg", width=640, height=480)
        for i in range(n_images)
    )
    GroundTruthObject.objects.bulk_create(
        GroundTruthObject(image=image, category=car, bbox=[0, 0, 320, 240], area=76800) for image in images)
    records = ({
        "image_id": int(image.key), "page_id": i % 10, "hit_id": f"HIT-{i // 10}", "worker_id": f"{i // 10:010X}",
        "originalImageWidth": 640, "originalImageHeight": 480, "imageWidth": 800, "imageHeight": 600,
        "actionHistories": [{"actionType": "add", "iconType": "car", "pointFrom": None,
                             "pointTo": {"x": 0.25, "y": 0.25}, "timeAt": 1000}],
        "categoryHistories": [], "mouseTracking": [{"x": 0.5, "y": 0.5, "timeAt": t} for t in range(30)],
        "timeSpent": 5000,
    } for i, image in enumerate(images))
    with open(path, "wb") as out:
        coco_ab.write_json_list(records, out, to_dict=lambda record: record)
    return dataset, path


def peak_import_memory(export_format, dataset, path):
    """Peak of Python allocations during the import, with a full collection after every chunk: what counts is
    the memory the import holds, not reference-cycle garbage waiting in the oldest generation (CPython collects
    it only once it is a quarter of all long-lived objects, which in a test process can be megabytes)."""
    gc.collect()
    gc.freeze()  # what the test run holds already is left out of the collections (they were most of the time)
    tracemalloc.start()
    collect = lambda n_records: gc.collect()  # noqa: E731
    try:
        if export_format == "imagenet-ab":
            with open(path, "rb") as tarball_file:
                result = ab.import_imagenet_ab(dataset, tarball_file, on_images=collect)
        else:
            with open(path, encoding="utf-8") as json_file:
                result = ab.import_coco_ab(dataset, json_file, on_records=collect)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        gc.unfreeze()
    return result, peak


@pytest.mark.slow
@pytest.mark.parametrize("export_format, generate", [
    ("imagenet-ab", generated_imagenet_ab), ("coco-ab", generated_coco_ab),
])
def test_import_memory_does_not_grow_with_the_record_count(export_format, generate, tmp_path, monkeypatch):
    monkeypatch.setattr(ab, "IMPORT_CHUNK", 20)
    monkeypatch.setattr(coco_ab, "READ_CHUNK_CHARS", 1 << 12)
    warm_up, small, large = (generate(tmp_path / name, n) for name, n in (("warm", 2000), ("small", 100),
                                                                          ("large", 2000)))
    # psycopg and Django keep bounded caches keyed by statement shape: fill them before measuring, and keep
    # psycopg's prepared-statement bookkeeping out of it.
    connection.ensure_connection()
    if connection.vendor == "postgresql":
        monkeypatch.setattr(connection.connection, "prepare_threshold", None)
    peak_import_memory(export_format, *warm_up)

    (small_result, small_peak), (large_result, large_peak) = (
        peak_import_memory(export_format, *small), peak_import_memory(export_format, *large))

    assert (small_result.records, large_result.records) == (100, 2000)
    assert large_result.page_summaries == PageSubmission.objects.filter(
        assignment__hit__batch=large_result.batch).count() == (200 if export_format == "imagenet-ab" else 2000)
    # Twenty times the records; held in memory they would take several times the peak.
    assert large_peak < 1.5 * small_peak, (small_peak, large_peak)


def test_a_member_too_big_to_be_an_annotation_is_refused_before_it_is_inflated(released_imagenet, tmp_path):
    """Issue 14: a 400 KB tar.gz holding a 400 MB member took 1.36 GB; the member's size in its header decides."""
    from luab.imagenet_ab import MAX_MEMBER_BYTES

    document = published_xml("n01440764_9", [("AAAAAAAAAA", "ASSIGNMENT-A", 3, (0.05, 0.05), 100)])
    padded = document.replace("</annotation>", "<!--" + " " * MAX_MEMBER_BYTES + "--></annotation>")
    archive = tarball({"train_xml/n01440764/n01440764_9.xml": padded})
    assert len(archive) < 100_000

    with pytest.raises(CommandError, match=rf"train_xml/n01440764/n01440764_9.xml: {len(padded)} bytes; an "
                                           rf"annotation member is at most {MAX_MEMBER_BYTES} bytes"):
        import_file(tmp_path, archive, "imagenet-ab", "released")
    assert not Batch.objects.filter(name__endswith="-import").exists() and ImageNetRecord.objects.count() == 0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="ANALYZE is PostgreSQL's; a no-op on SQLite")
def test_the_import_analyses_the_tables_it_filled(released_imagenet):
    dataset, path = released_imagenet
    call_command("import_ab", "--format", "imagenet-ab", str(path), "--dataset", "released", verbosity=0)

    with connection.cursor() as cursor:  # the planner's row counts, which only ANALYZE (or autovacuum) sets
        cursor.execute("SELECT relname, reltuples FROM pg_class WHERE relname IN "
                       "('annotator_imagenetrecord', 'annotator_pagesubmission', 'annotator_pageitem')")
        estimates = dict(cursor.fetchall())
    assert estimates == {"annotator_imagenetrecord": 4, "annotator_pagesubmission": 2, "annotator_pageitem": 4}
