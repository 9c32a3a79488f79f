"""Every task family, from its public entry point through a real Celery worker process to what the user sees.

The worker is started the way the README says (`celery -A config worker -Q default,gpu`, with beat for the
sweepers), on the configured broker (Redis in CI) and on the embedded filesystem broker (tests/workers.py). Nothing
here runs a task inline: what reaches the worker is what a deployment would send it.
"""
import json
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from annotator.models import Assignment, Batch, Event, ExportJob, Hit, Image, ImageScore, Provider
from devtools import demo_data
from devtools.fake_mturk import FakeMTurk
from devtools.simulator import InProcessTransport, PROFILES, load_ground_truth, simulate_assignment
from tests import factories
from tests.training.job_data import TINY_CONFIG, tiny_imagenet_dataset
from tests.workers import WorkerProcess, broker_kinds, poll
from training.models import JobStatus, ModelVersion, TrainingJob
from training.services.jobs import NOT_QUEUED

pytestmark = [pytest.mark.celery_worker, pytest.mark.slow]


@pytest.fixture(scope="module")
def fake_market():
    """A fake MTurk requester API the worker process reaches over HTTP (started before the worker: its URL is in the
    worker's environment)."""
    with FakeMTurk() as market:
        yield market


@pytest.fixture(scope="module", params=broker_kinds())
def celery_worker_process(request, django_db_setup, tmp_path_factory, fake_market):
    """The module's worker talks to the fake market. (The sweeper tests have a worker with beat of their own.)"""
    process = WorkerProcess(tmp_path_factory.mktemp(f"worker-{request.param}"), broker=request.param,
                            extra_env={"MTURK_ENDPOINT_URL": fake_market.endpoint_url,
                                       "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                                       "PUBLIC_BASE_URL": "https://annotate.example.org"})
    yield process
    process.stop()


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("staff", password="x" * 12, is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(staff):
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def staff_api(staff):
    client = APIClient()
    client.force_authenticate(staff)
    return client


def approved_imagenet_batch():
    """An approved ImageNet-style assignment with one record, as the export needs."""
    assignment = factories.AssignmentFactory(state=Assignment.State.APPROVED)
    dataset = assignment.hit.batch.dataset
    page = factories.HitPageFactory(hit=assignment.hit, category=factories.CategoryFactory(dataset=dataset))
    image = factories.ImageFactory(dataset=dataset, label=page.category)
    factories.ImageNetRecordFactory(assignment=assignment, page=page, image=image)
    return assignment.hit.batch


# --- exports and reports ------------------------------------------------------------------------------------------


def test_an_export_job_from_the_api_reaches_a_download(celery_worker, staff_api):
    batch = approved_imagenet_batch()

    response = staff_api.post("/api/exports/", {"batch": batch.name, "format": "jsonl"}, format="json")
    assert response.status_code == 202, response.content

    job = poll(lambda: staff_api.get(f"/api/exports/{response.json()['id']}/").json(),
               lambda job: job["status"] in ("done", "failed"), 60, celery_worker, "the export to finish")
    assert job["status"] == "done", job["error"]
    assert job["record_count"] == 1
    download = staff_api.get(job["download_url"])
    assert download.status_code == 200
    lines = b"".join(download.streaming_content if download.streaming else [download.content]).splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["imageID"]


def test_an_export_left_pending_is_picked_up_by_the_sweeper(beat_worker, staff_api):
    """A job created while no worker could take its message (the unregistered-task bug, a broker outage) is found by
    beat's sweeper once it is older than SWEEP_AFTER, and run."""
    batch = approved_imagenet_batch()
    job = ExportJob.objects.create(batch=batch, format="jsonl")  # pending, its message never sent
    ExportJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timezone.timedelta(minutes=30))

    job = poll(lambda: ExportJob.objects.get(pk=job.pk), lambda job: job.status != ExportJob.Status.PENDING, 60,
               beat_worker, "the sweeper to queue the pending export")
    job = poll(lambda: ExportJob.objects.get(pk=job.pk), lambda job: job.status == ExportJob.Status.DONE, 60,
               beat_worker, "the export to finish")
    assert job.record_count == 1 and job.file
    assert "annotator.tasks.sweep_work" in beat_worker.log_text()


def test_the_byproduct_report_admin_action_lists_the_report(celery_worker, staff_client):
    batch = approved_imagenet_batch()

    response = staff_client.post("/admin/annotator/batch/", {
        "action": "build_byproduct_report", "_selected_action": [batch.pk]}, follow=True)
    assert response.status_code == 200 and "report" in response.content.decode()

    page = poll(lambda: staff_client.get("/review/reports/").content.decode(), lambda html: "report-link" in html,
                90, celery_worker, "the report to be listed")
    link = page.split('class="report-link" href="')[1].split('"')[0]
    report = staff_client.get(link)
    assert report.status_code == 200
    html = b"".join(report.streaming_content if report.streaming else [report.content]).decode()
    assert batch.name in html and "click" in html.lower()


# --- review ---------------------------------------------------------------------------------------------------------


def test_a_submission_is_decided_by_the_worker_and_rerunning_the_rules_applies_new_thresholds(
        celery_worker, staff_client):
    hit = factories.make_coco_hit(n_pages=2)
    batch = hit.batch
    outcome = simulate_assignment(InProcessTransport(), batch, hit, load_ground_truth([hit]), "W-SPAMMER",
                                  PROFILES["spammer"], seed=1)
    assert outcome.status == "submitted", outcome.error
    assignment = Assignment.objects.get(hit=hit)

    assignment = poll(lambda: Assignment.objects.get(pk=assignment.pk),
                      lambda a: a.state != Assignment.State.SUBMITTED, 60, celery_worker, "the automatic review")
    assert assignment.state == Assignment.State.REJECTED, assignment.review
    assert "rejected" in staff_client.get(f"/review/assignments/{assignment.pk}/").content.decode()

    # The requester lowers every threshold and re-runs the rules from the console: the batch review runs on the worker.
    Batch.objects.filter(pk=batch.pk).update(
        rule_thresholds={"min_recall": 0, "min_icon_accuracy": 0, "min_completed_page_share": 0})
    response = staff_client.post(f"/review/batches/{batch.pk}/rerun/")
    assert response.status_code == 302
    assignment = poll(lambda: Assignment.objects.get(pk=assignment.pk),
                      lambda a: a.state == Assignment.State.APPROVED, 60, celery_worker, "the batch review")
    assert assignment.decision_source == Assignment.DecisionSource.AUTO


# --- market calls ----------------------------------------------------------------------------------------------------


def test_a_decision_in_the_console_reaches_the_market_through_the_worker(celery_worker, staff_client, fake_market,
                                                                         settings):
    settings.PUBLIC_BASE_URL = "https://annotate.example.org"
    settings.MTURK_ENDPOINT_URL = fake_market.endpoint_url
    batch = factories.BatchFactory(provider=Provider.MTURK, reward=Decimal("1.50"), status=Batch.Status.DRAFT)
    hit = factories.HitFactory(batch=batch, index=0)

    # Publishing from the admin queues the market call; the worker creates the HIT on the market.
    staff_client.post("/admin/annotator/batch/", {"action": "publish_on_market", "_selected_action": [batch.pk]})
    hit = poll(lambda: Hit.objects.get(pk=hit.pk), lambda h: h.external_id, 60, celery_worker, "the HIT on the market")
    assert hit.external_id in fake_market.hits

    market_assignment = fake_market.add_submission(hit.external_id, "A1WORKER")
    assignment = factories.AssignmentFactory(hit=hit, external_id=market_assignment, state=Assignment.State.SUBMITTED,
                                             worker=factories.WorkerFactory(provider=Provider.MTURK))
    response = staff_client.post(f"/review/assignments/{assignment.pk}/decide/",
                                 {"decision": "reject", "reject_feedback": "Only 4 of the 20 pages were done."})
    assert response.status_code == 302

    poll(lambda: fake_market.assignments[market_assignment]["AssignmentStatus"], lambda s: s == "Rejected", 60,
         celery_worker, "the rejection on the market")
    assert fake_market.assignments[market_assignment]["RequesterFeedback"] == "Only 4 of the 20 pages were done."
    call = poll(lambda: Event.objects.filter(assignment=assignment, type=Event.Type.MARKET_CALL).first(),
                lambda event: event is not None, 30, celery_worker, "the market call in the event log")
    assert call.data["market_decision"] == "rejected"


# --- expiry ---------------------------------------------------------------------------------------------------------


def test_beat_expires_work_past_its_deadline_and_frees_the_place(beat_worker):
    """Beat queues expire_overdue_assignments every SWEEP_INTERVAL; the worker expires the overdue assignment only."""
    hit = factories.HitFactory(batch=factories.BatchFactory(status=Batch.Status.PUBLISHED), status=Hit.Status.PUBLISHED,
                               max_assignments=2)
    late = factories.AssignmentFactory(hit=hit, state=Assignment.State.ACCEPTED,
                                       deadline=timezone.now() - timezone.timedelta(minutes=1))
    on_time = factories.AssignmentFactory(hit=hit, state=Assignment.State.ACCEPTED,
                                          deadline=timezone.now() + timezone.timedelta(hours=1))

    poll(lambda: Assignment.objects.get(pk=late.pk).state, lambda state: state == Assignment.State.EXPIRED, 60,
         beat_worker, "the overdue assignment to expire")
    assert Assignment.objects.get(pk=on_time.pk).state == Assignment.State.ACCEPTED
    assert "annotator.tasks.expire_overdue_assignments" in beat_worker.log_text()


# --- display versions ------------------------------------------------------------------------------------------------


def test_an_import_hands_its_display_versions_to_the_worker(celery_worker, tmp_path):
    data = tmp_path / "imagenet"
    demo_data.generate_imagenet(data, seed=1, per_class=1)
    call_command("import_imagenet", str(data), name="shapes", defer_display=True, verbosity=0)
    assert Image.objects.filter(display_file="").exists()

    poll(lambda: Image.objects.filter(display_file="").count(), lambda missing: missing == 0, 120, celery_worker,
         "the display versions")
    image = Image.objects.filter(dataset__name="shapes").first()
    assert (celery_worker.media_root / image.display_file.name).exists()


# --- training and inference ----------------------------------------------------------------------------------------


def test_a_training_job_from_the_api_registers_a_model_that_scores_the_dataset(celery_worker, staff_api):
    dataset, _ = tiny_imagenet_dataset(train_per_class=2, val_per_class=1)
    response = staff_api.post("/api/training/jobs/create/", {"dataset": dataset.name, "config": TINY_CONFIG},
                              format="json")
    assert response.status_code == 201, response.content
    seen = []

    def read_job():
        seen.append(staff_api.get(f"/api/training/jobs/{response.json()['id']}/").json())
        return seen[-1]

    job = poll(read_job, lambda job: job["status"] in ("succeeded", "failed", "cancelled"), 300, celery_worker,
               "the training job")
    assert job["status"] == "succeeded", job["error"]
    assert any(state["status"] == "running" and state["progress"].get("step") for state in seen), seen
    assert [entry["epoch"] for entry in job["epoch_metrics"]] == [1, 2] and job["attempts"] == 1
    assert "val_top1" in job["metrics"]
    version = ModelVersion.objects.get(job_id=job["id"])
    assert version.manifest_hash == job["manifest_hash"] != ""
    assert version.name in json.dumps(staff_api.get("/api/training/models/").json())
    stored = TrainingJob.objects.get(pk=job["id"]).artifacts
    for name in ("checkpoint", "config", "metrics", "curves"):
        assert default_storage.exists(stored[name]), name
    assert default_storage.open(stored["curves"]).read(8) == b"\x89PNG\r\n\x1a\n"

    assert staff_api.post(f"/api/training/models/{version.pk}/promote/").status_code == 200
    inference = staff_api.post(f"/api/training/models/{version.pk}/inference/", {}, format="json")
    assert inference.status_code == 201, inference.content
    scored = poll(lambda: staff_api.get(f"/api/training/inference/{inference.json()['id']}/").json(),
                  lambda job: job["status"] in ("succeeded", "failed"), 180, celery_worker, "the inference job")
    assert scored["status"] == "succeeded", scored["error"]
    assert scored["summary"]["images_scored"] == 6  # every train image
    assert ImageScore.objects.filter(model_version=version.name).count() == 6


def test_a_queued_training_job_whose_message_was_lost_is_sent_again_by_the_sweeper(beat_worker):
    dataset, _ = tiny_imagenet_dataset(train_per_class=1, val_per_class=0)
    # What create_training_job leaves when the broker refused the message: queued, marked NOT_QUEUED.
    job = TrainingJob.objects.create(dataset=dataset, config={**TINY_CONFIG, "epochs": 1}, error=NOT_QUEUED,
                                     celery_task_id="never-sent", source=TrainingJob.Source.API)
    job = poll(lambda: TrainingJob.objects.get(pk=job.pk), lambda j: j.is_finished, 300, beat_worker,
               "the swept training job")
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert "training.tasks.sweep_jobs" in beat_worker.log_text()
