import hashlib
import hmac
import io
import json
import tarfile
import tracemalloc
from xml.etree import ElementTree

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from annotator.exports import services
from luab import imagenet_ab
from annotator.exports.anonymise import WorkerAnonymiser
from annotator.models import Assignment, ExportJob, Image, ImageNetRecord, PageSubmission, TaskKind
from tests import factories

pytestmark = pytest.mark.django_db

GOLDEN_XML = """<annotation>
	<folder>n01440764</folder>
	<filename>n01440764_105</filename>
	<source>
		<database>ILSVRC_2012</database>
	</source>
	<size>
		<width>500</width>
		<height>375</height>
		<depth>3</depth>
	</size>
	<segmented>0</segmented>
	<object>
		<name>n01440764</name>
		<pose>Unspecified</pose>
		<truncated>0</truncated>
		<difficult>0</difficult>
		<bndbox>
			<xmin>10</xmin>
			<ymin>20</ymin>
			<xmax>310</xmax>
			<ymax>220</ymax>
		</bndbox>
	</object>
	<metadata>
		<imageID>n01440764/n01440764_105</imageID>
		<selected>True</selected>
		<selectedRecord>
			<x>0.540</x>
			<y>0.473</y>
			<time>1641425052000</time>
		</selectedRecord>
		<hoveredRecord>
			<action>enter</action>
			<time>1641425051000</time>
		</hoveredRecord>
		<hoveredRecord>
			<action>leave</action>
			<time>1641425054000</time>
		</hoveredRecord>
		<mouseTracking>
			<x>0.641</x>
			<y>0.629</y>
			<time>1641425051000</time>
		</mouseTracking>
		<mouseTracking>
			<x>0.441</x>
			<y>0.600</y>
			<time>1641425052000</time>
		</mouseTracking>
		<selectedCount>1</selectedCount>
		<hoveredCount>1</hoveredCount>
		<estimateTime>1000</estimateTime>
		<originalImageWidth>500</originalImageWidth>
		<originalImageHeight>375</originalImageHeight>
		<imageWidth>243</imageWidth>
		<imageHeight>182</imageHeight>
		<imagePosition>
			<x>857</x>
			<y>1976</y>
		</imagePosition>
		<worker_id>{worker}</worker_id>
		<assignment_id>3AMYWKA6YLE80HK90YYHI2YEL2Y06L</assignment_id>
		<page_idx>3</page_idx>
	</metadata>
</annotation>
"""


@pytest.fixture
def imagenet_batch():
    """One image of n01440764 with a box, shown to one approved and one rejected worker."""
    dataset = factories.DatasetFactory(name="imagenet-mini")
    tench = factories.CategoryFactory(dataset=dataset, key="n01440764", name="tench")
    image = factories.ImageFactory(dataset=dataset, key="n01440764_105", label=tench, width=500, height=375)
    factories.GroundTruthObjectFactory(image=image, category=tench, bbox=[10.2, 19.7, 300, 200])
    batch = factories.BatchFactory(dataset=dataset, name="imagenet-round-1")
    approved = factories.AssignmentFactory(
        hit__batch=batch, state=Assignment.State.APPROVED, external_id="3AMYWKA6YLE80HK90YYHI2YEL2Y06L"
    )
    page = factories.HitPageFactory(hit=approved.hit, index=3, category=tench)
    factories.ImageNetRecordFactory(
        assignment=approved, page=page, image=image, image_width=243, image_height=182,
        selected_record=[{"x": 0.54012, "y": 0.4729, "time": 1641425052000}],
        hovered_record=[{"action": "enter", "time": 1641425051000}, {"action": "leave", "time": 1641425054000}],
        mouse_tracking=[
            {"x": 0.6411, "y": 0.629, "time": 1641425051000}, {"x": 0.441, "y": 0.6, "time": 1641425052000}
        ],
    )
    rejected = factories.AssignmentFactory(hit=approved.hit, state=Assignment.State.REJECTED, external_id="REJ")
    factories.ImageNetRecordFactory(assignment=rejected, page=page, image=image, selected=False, selected_record=[])
    return batch


def export_bytes(batch, export_format, **kwargs):
    out = io.BytesIO()
    services.write_export(batch, export_format, out, **kwargs)
    return out.getvalue()


def tar_members(data):
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {member.name: tar.extractfile(member).read().decode() for member in tar}


def test_imagenet_ab_export_matches_the_published_layout_exactly(imagenet_batch):
    anonymise = WorkerAnonymiser(salt=b"fixed salt")
    members = tar_members(export_bytes(imagenet_batch, "imagenet-ab", anonymise=anonymise))

    assert list(members) == ["train_xml/n01440764/n01440764_105.xml"]
    worker = Assignment.objects.get(external_id="3AMYWKA6YLE80HK90YYHI2YEL2Y06L").worker
    assert members["train_xml/n01440764/n01440764_105.xml"] == GOLDEN_XML.replace(
        "{worker}", anonymise(worker.hashed_id)
    )


def test_imagenet_ab_include_rejected_adds_flagged_sessions(imagenet_batch):
    document = next(iter(tar_members(export_bytes(imagenet_batch, "imagenet-ab", include_rejected=True)).values()))
    sessions = ElementTree.fromstring(document).findall("metadata")

    flags = [(s.findtext("assignment_id"), s.findtext("selected"), s.findtext("assignment_state")) for s in sessions]
    assert flags == [("3AMYWKA6YLE80HK90YYHI2YEL2Y06L", "True", "approved"), ("REJ", "False", "rejected")]


def test_imagenet_ab_lists_every_click_in_time_order_as_published(imagenet_batch):
    ImageNetRecord.objects.filter(assignment__state="approved").update(
        selected_record=[{"x": 0.1, "y": 0.1, "time": 1000}, {"x": 0.3, "y": 0.3, "time": 3000}],
        deselected_record=[{"x": 0.2, "y": 0.2, "time": 2000}],
    )
    document = next(iter(tar_members(export_bytes(imagenet_batch, "imagenet-ab")).values()))
    session = ElementTree.fromstring(document).find("metadata")

    assert [click.findtext("time") for click in session.findall("selectedRecord")] == ["1000", "2000", "3000"]
    assert (session.findtext("selectedCount"), session.findtext("selected")) == ("3", "True")


@pytest.fixture
def coco_batch():
    dataset = factories.DatasetFactory(name="coco-mini", kind=TaskKind.COCO)
    car = factories.CategoryFactory(dataset=dataset, key="3", name="car", supercategory="vehicle")
    factories.CategoryFactory(dataset=dataset, key="2", name="bicycle", supercategory="vehicle")
    image = factories.ImageFactory(dataset=dataset, key="459214", width=640, height=428)
    factories.GroundTruthObjectFactory(image=image, category=car)
    batch = factories.BatchFactory(dataset=dataset, name="coco-round-1")
    assignment = factories.AssignmentFactory(
        hit__batch=batch, hit__index=7, state=Assignment.State.APPROVED, interface_variant="magnifier"
    )
    page = factories.HitPageFactory(hit=assignment.hit, index=8, image=image)
    factories.CocoRecordFactory(
        assignment=assignment, page=page, image=image, time_spent=22283,
        action_histories=[
            {"actionType": "add", "iconType": "3", "pointFrom": None, "pointTo": {"x": 0.58312, "y": 0.588},
             "timeAt": 16686},
            {"actionType": "add", "iconType": "2", "pointFrom": None, "pointTo": {"x": 0.1, "y": 0.2}, "timeAt": 16723},
            {"actionType": "move", "iconType": "2", "pointFrom": {"x": 0.1, "y": 0.2},
             "pointTo": {"x": 0.5921, "y": 0.6389}, "timeAt": 17000},
            {"actionType": "remove", "iconType": "3", "pointFrom": {"x": 0.58312, "y": 0.588}, "timeAt": 18000},
        ],
        final_positions={"2": {"x": 0.5921, "y": 0.6389}},
    )
    PageSubmission.objects.create(
        assignment=assignment, page=page, client_save_id="6f1c1d2e-0000-4000-8000-000000000001",
        time_spent_ms=22283, client={"viewport": {"w": 1280, "h": 800}, "dpr": 2, "user_agent": "Firefox"},
    )
    return batch


def test_coco_ab_export_has_the_published_fields_and_types(coco_batch):
    anonymise = WorkerAnonymiser(salt=b"fixed salt")
    records = json.loads(export_bytes(coco_batch, "coco-ab", anonymise=anonymise))
    worker = Assignment.objects.get(hit__batch=coco_batch).worker

    assert records == [{
        "image_id": 459214,
        "page_id": 8,
        "hit_id": "coco-round-1-7",
        "worker_id": anonymise(worker.hashed_id),
        "originalImageWidth": 640,
        "originalImageHeight": 428,
        "imageWidth": 450,
        "imageHeight": 450,
        "actionHistories": [
            {"actionType": "add", "iconType": "car", "pointFrom": None, "pointTo": {"x": 0.583, "y": 0.588},
             "timeAt": 16686},
            {"actionType": "add", "iconType": "bicycle", "pointFrom": None, "pointTo": {"x": 0.1, "y": 0.2},
             "timeAt": 16723},
            {"actionType": "move", "iconType": "bicycle", "pointFrom": {"x": 0.1, "y": 0.2},
             "pointTo": {"x": 0.592, "y": 0.639}, "timeAt": 17000},
            {"actionType": "remove", "iconType": "car", "pointFrom": {"x": 0.583, "y": 0.588}, "timeAt": 18000},
        ],
        "categoryHistories": [{"categoryIndex": 1, "categoryName": "Animal", "timeAt": 10815, "usingKeyboard": False}],
        "mouseTracking": [{"x": 0.679, "y": 0.862, "timeAt": 15725}],
        "timeSpent": 22283,
    }]


def test_jsonl_keeps_the_extras_the_published_formats_lost(coco_batch, imagenet_batch):
    coco_line, = export_bytes(coco_batch, "jsonl").decode().splitlines()
    coco = json.loads(coco_line)
    assert coco["interface_variant"] == "magnifier"
    assert coco["client"] == {"viewport": {"w": 1280, "h": 800}, "dpr": 2, "user_agent": "Firefox"}
    assert coco["finalPositions"] == {"2": {"x": 0.5921, "y": 0.6389}}
    assert coco["actionHistories"][0]["pointTo"] == {"x": 0.58312, "y": 0.588}

    ImageNetRecord.objects.filter(assignment__state="approved").update(
        deselected_record=[{"x": 0.1, "y": 0.2, "time": 1641425053000}]
    )
    lines = export_bytes(imagenet_batch, "jsonl", include_rejected=True).decode().splitlines()
    records = [json.loads(line) for line in lines]
    assert [(r["assignment_state"], r["deselectedRecord"]) for r in records] == [
        ("approved", [{"x": 0.1, "y": 0.2, "time": 1641425053000}]), ("rejected", []),
    ]


def test_worker_ids_are_anonymised_stable_within_an_export_and_unlinkable_across(imagenet_batch):
    record = ImageNetRecord.objects.get(assignment__state="approved")
    worker = record.assignment.worker
    other_image = factories.ImageFactory(dataset=imagenet_batch.dataset, key="n01440764_9", label=record.image.label)
    factories.ImageNetRecordFactory(assignment=record.assignment, page=record.page, image=other_image)

    def exported_ids(data):
        return [s.findtext("worker_id") for document in tar_members(data).values()
                for s in ElementTree.fromstring(document).findall("metadata")]

    first = exported_ids(export_bytes(imagenet_batch, "imagenet-ab"))
    second = exported_ids(export_bytes(imagenet_batch, "imagenet-ab"))
    assert len(first) == 2 and first[0] == first[1]
    assert len(first[0]) == 10 and int(first[0], 16) >= 0
    assert first[0] not in (worker.external_id, worker.hashed_id[:10].upper())
    assert first[0] != second[0]
    salt = b"known only to whoever made the export"
    expected = hmac.new(salt, worker.hashed_id.encode(), hashlib.sha256).hexdigest()[:10].upper()
    assert WorkerAnonymiser(salt=salt)(worker.hashed_id) == expected


class DiscardingSink(io.RawIOBase):
    def writable(self):
        return True

    def write(self, data):
        return len(data)


def _generated_batch(record_count, name):
    dataset = factories.DatasetFactory(name=f"{name}-data")
    category = factories.CategoryFactory(dataset=dataset)
    batch = factories.BatchFactory(dataset=dataset, name=name)
    assignment = factories.AssignmentFactory(hit__batch=batch, state=Assignment.State.APPROVED)
    page = factories.HitPageFactory(hit=assignment.hit, category=category)
    images = Image.objects.bulk_create(
        Image(dataset=dataset, key=f"{name}_{i}", file=f"images/{name}_{i}.JPEG", width=500, height=375, label=category)
        for i in range(record_count)
    )
    trace = [{"x": i / 100, "y": i / 100, "time": 1641425051000 + i * 16} for i in range(60)]
    ImageNetRecord.objects.bulk_create(
        ImageNetRecord(assignment=assignment, page=page, image=image, selected=True, mouse_tracking=trace,
                       selected_record=trace[-1:], hovered_record=[], image_position={"x": 0, "y": 0},
                       image_width=200, image_height=150)
        for image in images
    )
    return batch


def _peak_export_memory(batch, export_format):
    tracemalloc.start()
    services.write_export(batch, export_format, DiscardingSink())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


@pytest.mark.slow
@pytest.mark.parametrize("export_format", ["imagenet-ab", "jsonl"])
def test_export_memory_does_not_grow_with_the_record_count(export_format, monkeypatch):
    monkeypatch.setattr(services, "ITERATOR_CHUNK_SIZE", 50)
    monkeypatch.setattr(imagenet_ab, "IMAGES_PER_OBJECT_QUERY", 50)
    small, large = _generated_batch(100, "small"), _generated_batch(1000, "large")

    small_peak, large_peak = _peak_export_memory(small, export_format), _peak_export_memory(large, export_format)

    # Ten times the records; held in memory they would take about ten times the peak.
    assert large_peak < 1.5 * small_peak, (small_peak, large_peak)


def test_export_ab_command_writes_the_file_and_names_bad_input(imagenet_batch, tmp_path):
    out = tmp_path / "ab" / "imagenet-ab.tar.gz"
    call_command("export_ab", "imagenet-round-1", "--format", "imagenet-ab", "--out", str(out), verbosity=0)
    assert list(tar_members(out.read_bytes())) == ["train_xml/n01440764/n01440764_105.xml"]

    with pytest.raises(CommandError, match="batch 'nope' does not exist"):
        call_command("export_ab", "nope", "--format", "jsonl", "--out", str(out), verbosity=0)
    with pytest.raises(CommandError, match="coco-ab exports coco-style batches; batch imagenet-round-1 is imagenet"):
        call_command("export_ab", "imagenet-round-1", "--format", "coco-ab", "--out", str(out), verbosity=0)


@pytest.fixture
def staff_client():
    client = APIClient()
    client.force_authenticate(get_user_model().objects.create_user("admin", is_staff=True))
    return client


def test_export_job_api_runs_the_export_and_gives_a_download_url(
    imagenet_batch, staff_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            "/api/exports/", {"batch": "imagenet-round-1", "format": "imagenet-ab", "include": ["rejected"]},
            format="json",
        )
    assert response.status_code == 202, response.json()

    job = staff_client.get(f"/api/exports/{response.json()['id']}/").json()
    assert (job["status"], job["progress"], job["record_count"], job["include_rejected"]) == ("done", 1.0, 2, True)
    assert job["download_url"].startswith("http://testserver/files/exports/imagenet-round-1-imagenet-ab-")
    stored = ExportJob.objects.get(pk=job["id"]).file.read()
    assert list(tar_members(stored)) == ["train_xml/n01440764/n01440764_105.xml"]


def test_a_failing_export_job_keeps_the_error_and_leaves_no_partial_file(imagenet_batch, monkeypatch, settings):
    def fail_half_way(batch, export_format, out, *args):
        out.write(b"half an export")
        raise OSError("disk full")

    monkeypatch.setattr(services, "write_export", fail_half_way)
    job = ExportJob.objects.create(batch=imagenet_batch, format="jsonl")

    services.run_export_job(job.pk)

    job.refresh_from_db()
    assert (job.status, job.error, bool(job.file)) == ("failed", "disk full", False)
    assert not list((settings.MEDIA_ROOT / "exports").iterdir())


def test_export_job_api_refuses_a_format_of_the_other_task_kind(imagenet_batch, staff_client):
    response = staff_client.post("/api/exports/", {"batch": "imagenet-round-1", "format": "coco-ab"}, format="json")

    assert response.status_code == 400
    assert "format" in response.json()["error"]["fields"]
    assert not ExportJob.objects.exists()


def test_export_job_api_is_for_staff_only(imagenet_batch):
    job = ExportJob.objects.create(batch=imagenet_batch, format="jsonl")
    anonymous, worker = APIClient(), APIClient()
    worker.force_authenticate(get_user_model().objects.create_user("crowd-worker"))

    for client in (anonymous, worker):
        assert client.post("/api/exports/", {"batch": "imagenet-round-1", "format": "jsonl"}).status_code in (401, 403)
        assert client.get(f"/api/exports/{job.pk}/").status_code in (401, 403)
    assert ExportJob.objects.count() == 1


def test_admin_action_on_batches_runs_an_export_job(imagenet_batch, client, django_capture_on_commit_callbacks):
    client.force_login(get_user_model().objects.create_superuser("root", password="pw"))

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/admin/annotator/batch/", {
            "action": "export_published_format", "_selected_action": [imagenet_batch.pk],
        }, follow=True)

    job = ExportJob.objects.get()
    assert (job.format, job.status, job.record_count, job.created_by.username) == ("imagenet-ab", "done", 1, "root")
    assert f"export job <a href=\"/admin/annotator/exportjob/{job.pk}/change/\">{job.pk}</a> queued" in \
        response.content.decode()
    assert "download" in client.get(f"/admin/annotator/exportjob/{job.pk}/change/").content.decode()


def test_export_job_streams_into_s3_storage_as_a_multipart_upload(imagenet_batch, settings):
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    with moto.mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="luab-exports")
        settings.STORAGES = {**settings.STORAGES, "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {"bucket_name": "luab-exports", "region_name": "us-east-1", "access_key": "test",
                        "secret_key": "test"},
        }}
        job = ExportJob.objects.create(batch=imagenet_batch, format="jsonl", include_rejected=True)

        services.run_export_job(job.pk)

        job.refresh_from_db()
        assert (job.status, job.record_count) == ("done", 2)
        body = s3.get_object(Bucket="luab-exports", Key=job.file.name)["Body"].read().decode()
        assert [json.loads(line)["assignment_state"] for line in body.splitlines()] == ["approved", "rejected"]
        assert s3.list_multipart_uploads(Bucket="luab-exports").get("Uploads", []) == []
