"""benchmarks/campaign.py's reconciliation: it passes on what was stored once and names every loss or duplicate."""
import json
import uuid

import pytest

from annotator import models
from annotator.worker import services
from annotator.worker.tokens import make_token
from benchmarks.campaign import BATCH_NAMES, Ledger, LoadDriver, reconcile
from tests.annotator import worker_bodies as bodies
from tests.factories import make_coco_hit, make_imagenet_hit

pytestmark = pytest.mark.django_db


def post(client, token, path, body):
    response = client.post(f"/api/worker/{path}", data=json.dumps(body), content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code in (200, 201), response.content
    return response


@pytest.fixture
def campaign(client, django_capture_on_commit_callbacks):
    """Two workers' whole HITs (one of each kind) through the worker API, with the ledger a client would keep."""
    ledger = Ledger()
    for hit in (make_imagenet_hit(n_pages=2, name=BATCH_NAMES["imagenet"]),
                make_coco_hit(n_pages=2, name=BATCH_NAMES["coco"])):
        worker = f"c0-diligent-{hit.pk}"
        token = make_token(services.accept_assignment(hit, worker, f"A-{worker}"))
        kind = hit.batch.task_kind
        for page in hit.pages.order_by("index"):
            if kind == "imagenet":
                key = bodies.candidate_ids(page)[0]
                events = [{"type": "move", "image_id": key, "x": 0.5, "y": 0.5, "time": bodies.now_ms()}]
            else:
                events = [{"type": "category", "categoryIndex": 0, "categoryName": "person", "timeAt": 100,
                           "usingKeyboard": False}]
            flush = bodies.event_flush(events)
            post(client, token, f"pages/{page.index}/events", flush)
            post(client, token, f"pages/{page.index}/events", flush)  # a retry stores nothing more
            ledger.add("events", (hit.pk, worker, flush["batch_id"]), (page.index, len(events)))
            save = bodies.imagenet_save(page) if kind == "imagenet" else bodies.coco_save(page)
            post(client, token, f"pages/{page.index}/save", save)
            ledger.add("saves", (hit.pk, worker, save["save_id"]), (page.index, kind, len(save["records"])))
        with django_capture_on_commit_callbacks(execute=True):  # the automatic review runs (Celery eager)
            post(client, token, "submit", {"partial": False})
        ledger.add("submits", (hit.pk, worker), {"partial": False})
    return ledger


def test_what_was_stored_once_and_reviewed_reconciles(campaign):
    result = reconcile(campaign, timeout_s=0, out=None)
    assert result.ok, result.problems
    assert result.checks["event batches acknowledged"] == 4 and result.checks["page saves acknowledged"] == 4
    assert result.checks["ImageNet-style records"] == 2 * 48 and result.checks["COCO-style records"] == 2
    assert result.checks["submitted, not decided by the automatic review"] == 0


def test_a_lost_record_event_batch_or_save_fails_the_reconciliation(campaign):
    models.ImageNetRecord.objects.filter(pk=models.ImageNetRecord.objects.first().pk).delete()
    models.EventBatch.objects.filter(pk=models.EventBatch.objects.first().pk).delete()
    hit, worker, _ = next(iter(campaign.saves))
    campaign.add("saves", (hit, worker, str(uuid.uuid4())), (1, "imagenet", 48))  # acknowledged, never stored
    result = reconcile(campaign, timeout_s=0, out=None)
    assert not result.ok
    assert result.checks["saved pages with the wrong record count"] == 1
    assert result.checks["event batches lost"] == 1
    assert result.checks["page saves lost or misplaced"] == 1


def test_a_submit_left_unreviewed_fails_the_reconciliation(campaign):
    models.Assignment.objects.filter(hit__batch__name=BATCH_NAMES["coco"]).update(
        state=models.Assignment.State.SUBMITTED, decision_source="", reviewed_at=None)
    result = reconcile(campaign, timeout_s=0, out=None)
    assert not result.ok
    assert result.checks["submitted, not decided by the automatic review"] == 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_paced_crowd_hands_in_at_the_end_and_all_it_was_told_is_stored_once(live_server):
    """LoadDriver's workers are devtools.simulator's, paced: they flush and save at (sped-up) human times, hand in
    what they saved when the run ends, and the ledger of acknowledged writes reconciles with the database."""
    hits = {"imagenet": [make_imagenet_hit(n_pages=3, name=BATCH_NAMES["imagenet"])],
            "coco": [make_coco_hit(n_pages=2, name=BATCH_NAMES["coco"])]}
    models.Hit.objects.update(max_assignments=100)
    driver = LoadDriver(live_server.url, hits, n_workers=2, minutes=0.05, pace=200, mix="diligent=1", ramp_s=0)

    driver.run()

    assert driver.counters["hits failed"] == driver.counters["hits crashed"] == 0, driver.stats.failures
    assert driver.counters["hits submitted"] + driver.counters["hits submitted partial"] >= 2
    counts = driver.ledger.counts()
    assert counts["page saves"] and counts["event batches"] and counts["submits"] >= 2
    result = reconcile(driver.ledger, timeout_s=10, out=None)
    assert result.ok, result.problems
