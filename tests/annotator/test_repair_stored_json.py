"""repair_stored_json (issue 14, point 4): rows stored before bodies were limited in depth stop breaking pages."""
import json

import pytest
from django.core.management import call_command
from django.db import connection

from annotator import models
from annotator.worker.validation import MAX_JSON_DEPTH, nesting_depth
from tests.annotator import worker_bodies as bodies
from tests.annotator.test_worker_api import accept, call
from tests.factories import make_imagenet_hit

pytestmark = pytest.mark.django_db

LEVELS = 900  # what the old code stored (it answered 500 only from about 990)


def store_raw(model, field, pk, text):
    """Write JSON text into a row as the old code did (raw SQL: the ORM would have to decode and re-encode it)."""
    table, column = model._meta.db_table, model._meta.get_field(field).column
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {column} = %s WHERE id = %s", [text, pk])


@pytest.fixture
def poisoned(client):
    """An assignment whose page 0 has a flushed event and a save, each with an extra field 900 levels deep."""
    hit = make_imagenet_hit(n_pages=2)
    assignment, token = accept(hit)
    page = hit.pages.get(index=0)
    hover = {"type": "hover", "image_id": bodies.candidate_ids(page)[0], "action": "enter", "time": bodies.now_ms()}
    assert call(client, token, "POST", "pages/0/events", bodies.event_flush([hover])).status_code == 201
    assert call(client, token, "POST", "pages/0/save", bodies.imagenet_save(page)).status_code == 201
    deep = "[" * LEVELS + "]" * LEVELS
    batch = models.EventBatch.objects.get()
    submission = models.PageSubmission.objects.get()
    store_raw(models.EventBatch, "events", batch.pk, json.dumps([hover])[:-2] + f', "extra": {deep}}}]')
    store_raw(models.PageSubmission, "client", submission.pk, f'{{"user_agent": "pytest", "extra": {deep}}}')
    return assignment, token, batch, submission


def pages(assignment, batch, submission):
    return ["/admin/annotator/eventbatch/%d/change/" % batch.pk,
            "/admin/annotator/pagesubmission/%d/change/" % submission.pk,
            "/admin/annotator/assignment/%d/change/" % assignment.pk]


def test_rows_stored_too_deep_are_found_and_repaired_and_pages_read_them_again(poisoned, client, admin_client):
    assignment, token, batch, submission = poisoned
    with pytest.raises(RecursionError):  # what such a row did to the admin's page (and, under gunicorn, the worker's)
        admin_client.get(pages(assignment, batch, submission)[0])

    call_command("repair_stored_json", verbosity=0)

    response = call(client, token, "GET", "pages/0")
    assert response.status_code == 200
    (event,) = response.json()["resume"]["events"]
    assert event["type"] == "hover" and nesting_depth(json.dumps(event["extra"]).encode()) == MAX_JSON_DEPTH - 2
    for url in pages(assignment, batch, submission):
        assert admin_client.get(url).status_code == 200, url
    submission.refresh_from_db()
    assert submission.client["user_agent"] == "pytest"
    assert nesting_depth(json.dumps(submission.client).encode()) == MAX_JSON_DEPTH


def test_a_second_run_changes_nothing_and_says_so(poisoned, capsys):
    call_command("repair_stored_json")
    first = capsys.readouterr().out
    call_command("repair_stored_json")

    assert "EventBatch.events: 1 row(s) repaired" in first and "PageSubmission.client: 1 row(s) repaired" in first
    assert capsys.readouterr().out == "0 row(s) repaired in all\n"
