"""Concurrent requests on one assignment (issue 14, point 5), on PostgreSQL with real threads and connections: a
retry sent while the original is still in flight gets the original's answer, a conflicting save 409, never 500;
a market decision in flight locks only its assignment's row."""
import json
import threading

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import Client

from annotator import models
from annotator.providers import services as provider_services
from annotator.providers.link import LinkProvider
from annotator.worker import services
from tests.annotator import worker_bodies as bodies
from tests.annotator.test_worker_api import accept
from tests.factories import make_imagenet_hit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("row locks and READ COMMITTED snapshots: PostgreSQL (SQLite runs one write at a time)")


@pytest.fixture
def slow_first_save(monkeypatch):
    """The first save to get the assignment's lock holds it a while after writing its page, so that the others
    arrive while it is in flight and wait for the lock."""
    real_insert_rows = services.insert_rows

    def insert_rows(model, rows):
        real_insert_rows(model, rows)
        if model is models.PageSubmission:
            threading.Event().wait(0.5)

    monkeypatch.setattr(services, "insert_rows", insert_rows)


def post_together(token, path, raw_bodies):
    """POST each body from its own thread and connection, all released at once; [(status, json)] in any order."""
    answers, start = [], threading.Barrier(len(raw_bodies))

    def send(raw):
        try:
            client = Client(raise_request_exception=False)
            start.wait()
            response = client.post(f"/api/worker/{path}", data=raw, content_type="application/json",
                                   HTTP_AUTHORIZATION=f"Bearer {token}")
            answers.append((response.status_code, response.json() if response.status_code != 500 else None))
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(raw,)) for raw in raw_bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


def test_the_same_save_sent_again_while_in_flight_gets_the_originals_answer(slow_first_save):
    hit = make_imagenet_hit(n_pages=2)
    _, token = accept(hit)
    save = json.dumps(bodies.imagenet_save(hit.pages.get(index=0)))

    answers = post_together(token, "pages/0/save", [save] * 4)

    assert sorted(status for status, _ in answers) == [200, 200, 200, 201], answers
    assert all(body == {"saved": True, "next_page": 1} for _, body in answers)
    assert models.PageSubmission.objects.count() == 1 and models.ImageNetRecord.objects.count() == 48
    assert models.Event.objects.filter(type=models.Event.Type.PAGE_SAVED).count() == 1


def test_different_saves_of_one_page_at_once_store_one_and_the_rest_conflict(slow_first_save):
    hit = make_imagenet_hit(n_pages=2)
    _, token = accept(hit)
    page = hit.pages.get(index=0)
    saves = [json.dumps(bodies.imagenet_save(page)) for _ in range(8)]

    answers = post_together(token, "pages/0/save", saves)

    assert sorted(status for status, _ in answers) == [201] + [409] * 7, answers
    stored = str(models.PageSubmission.objects.get().client_save_id)
    for status, body in answers:
        if status == 409:
            assert body["error"]["message"] == f"page 0 is already saved by another save (save_id {stored})"
    assert models.ImageNetRecord.objects.count() == 48


def test_the_same_event_flush_sent_again_while_in_flight_is_stored_once():
    hit = make_imagenet_hit(n_pages=2)
    _, token = accept(hit)
    hover = {"type": "hover", "image_id": bodies.candidate_ids(hit.pages.get(index=0))[0], "action": "enter",
             "time": bodies.now_ms()}
    flush = json.dumps(bodies.event_flush([hover]))

    answers = post_together(token, "pages/0/events", [flush] * 4)

    assert sorted(status for status, _ in answers) == [200, 200, 200, 201], answers
    assert all(body == {"stored": 1} for _, body in answers)
    assert models.EventBatch.objects.count() == 1


def test_a_market_decision_in_flight_locks_its_assignment_only(monkeypatch):
    """Submit (and the entry, and review) lock the HIT, batch and worker rows; a decision being sent must not hold
    them too, or the two wait for each other (the deadlock seen under load)."""
    hit = make_imagenet_hit(n_pages=1)
    assignment, _ = accept(hit)
    models.Assignment.objects.filter(pk=assignment.pk).update(state=models.Assignment.State.APPROVED)
    calling, release = threading.Event(), threading.Event()

    def slow_approve(provider, assignment, override_rejection=False):
        calling.set()
        release.wait(10)

    monkeypatch.setattr(LinkProvider, "approve", slow_approve)
    sender = threading.Thread(target=lambda: (provider_services.send_decision(assignment), connection.close()))
    sender.start()
    try:
        assert calling.wait(10)
        with transaction.atomic():
            for model, pk in [(models.Hit, hit.pk), (models.Batch, hit.batch_id),
                              (models.Worker, assignment.worker_id)]:
                model.objects.select_for_update(nowait=True).get(pk=pk)
        with pytest.raises(DatabaseError, match="could not obtain lock"), transaction.atomic():
            models.Assignment.objects.select_for_update(nowait=True).get(pk=assignment.pk)
    finally:
        release.set()
        sender.join(20)
