"""The admin's lists of the big tables (records, page items, events, event batches, ground truth): the same few
queries per page whatever the rows (no per-row queries), search by key prefix, estimated counts on PostgreSQL."""
import re
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotator.admin import IMAGE_KEY_SEARCH
from annotator.models import Event, EventBatch, PageItem
from tests import factories

pytestmark = pytest.mark.django_db

LISTS = ["imagenetrecord", "cocorecord", "pageitem", "event", "eventbatch", "groundtruthobject", "pagesubmission",
         "hitpage", "image"]


def add_rows(n):
    """n rows in each big table, each with related rows of its own (a per-row query would show)."""
    for _ in range(n):
        record = factories.ImageNetRecordFactory(assignment__external_id=f"A{uuid.uuid4().hex}")
        factories.CocoRecordFactory()
        factories.GroundTruthObjectFactory()
        assignment, page = record.assignment, record.page
        PageItem.objects.create(page=page, image=record.image, position=0, in_class=True)
        Event.objects.create(type=Event.Type.PAGE_SAVED, batch=page.hit.batch, hit=page.hit, assignment=assignment,
                             worker=assignment.worker)
        EventBatch.objects.create(assignment=assignment, page=page, client_batch_id=uuid.uuid4(), seq=0,
                                  events=[], client_sent_at=0)


def queries_of(client, url):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(queries)


SEARCHED = {"imagenetrecord": "img_", "cocorecord": "img_", "groundtruthobject": "img_", "image": "img_",
            "event": "A"}  # what every row of add_rows matches
URLS = [f"/admin/annotator/{model}/" for model in LISTS] + [
    f"/admin/annotator/{model}/?q={term}" for model, term in SEARCHED.items()
]


@pytest.mark.parametrize("url", URLS)
def test_a_list_page_runs_the_same_queries_for_2_or_12_rows(admin_client, url):
    add_rows(2)
    few = queries_of(admin_client, url)
    add_rows(10)
    assert queries_of(admin_client, url) == few <= 8
    if "?q=" in url:  # every row of add_rows matches the search
        assert admin_client.get(url).context["cl"].result_count >= 12


def search(client, model, term):
    response = client.get(f"/admin/annotator/{model}/", {"q": term})
    return response, list(response.context["cl"].result_list)


def test_records_are_found_by_their_image_key_or_its_start_as_the_help_text_says(admin_client):
    wanted = factories.ImageNetRecordFactory(image__key="n01440764_10026")
    same_class = factories.ImageNetRecordFactory(image__key="n01440764_9")
    factories.ImageNetRecordFactory(image__key="n01443537_10026")
    response, found = search(admin_client, "imagenetrecord", "n01440764_10026")
    assert found == [wanted] and IMAGE_KEY_SEARCH in response.content.decode()
    assert search(admin_client, "imagenetrecord", " n01440764_ ")[1] == [same_class, wanted]  # newest first
    assert search(admin_client, "imagenetrecord", "01440764")[1] == []  # from the key's start only
    assert search(admin_client, "imagenetrecord", "n0144%")[1] == []  # typed characters, not patterns


def test_events_are_found_by_the_start_of_their_assignment_or_hit_market_id(admin_client):
    by_assignment = factories.AssignmentFactory(external_id="A1B2C3")
    by_hit = factories.HitFactory(external_id="A1ZZZZ")
    Event.objects.create(type=Event.Type.ACCEPTED, assignment=by_assignment, hit=by_assignment.hit)
    Event.objects.create(type=Event.Type.PUBLISHED, hit=by_hit)
    Event.objects.create(type=Event.Type.PUBLISHED)
    found = search(admin_client, "event", "A1")[1]
    assert [event.type for event in found] == [Event.Type.PUBLISHED, Event.Type.ACCEPTED]
    assert [event.type for event in search(admin_client, "event", "A1B")[1]] == [Event.Type.ACCEPTED]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the pattern index is PostgreSQL's")
def test_a_key_prefix_search_is_an_index_scan_on_postgresql():
    from annotator.admin import ImageNetRecordAdmin
    from annotator.models import ImageNetRecord
    from django.contrib.admin.sites import site

    queryset, _ = ImageNetRecordAdmin(ImageNetRecord, site).get_search_results(
        None, ImageNetRecord.objects.order_by("-pk"), "n01440764_"
    )
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # an empty test table: only an index makes a plan without
        sql, params = queryset.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "image_key_prefix" in plan, plan


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the estimate is PostgreSQL's")
def test_an_unfiltered_big_list_counts_from_the_table_statistics(admin_client):
    add_rows(3)
    with connection.cursor() as cursor:  # what ANALYZE would record for a 20M-row table (rolled back after the test)
        cursor.execute("UPDATE pg_class SET reltuples = 20000000 WHERE oid = 'annotator_event'::regclass")
    response = admin_client.get("/admin/annotator/event/")
    assert response.context["cl"].result_count == 20_000_000 and len(response.context["cl"].result_list) == 3
    filtered = admin_client.get("/admin/annotator/event/", {"type__exact": Event.Type.PAGE_SAVED})
    assert filtered.context["cl"].result_count == 3  # a small estimate: counted exactly


def test_a_big_list_reads_only_the_json_columns_it_shows_and_keeps_the_action_checkboxes(admin_client):
    add_rows(1)
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get("/admin/annotator/imagenetrecord/")
    assert not any("mouse_tracking" in query["sql"] for query in queries.captured_queries)
    record = response.context["cl"].result_list[0]
    assert (f'<input type="checkbox" name="_selected_action" value="{record.pk}" class="action-select" '
            f'aria-label="Select this object for an action - {record}">') in response.content.decode()


def test_a_deep_page_reads_its_primary_keys_first_then_the_same_rows_with_their_joins(admin_client, monkeypatch):
    from annotator.admin import ImageNetRecordAdmin
    from annotator.models import ImageNetRecord

    monkeypatch.setattr(ImageNetRecordAdmin, "list_per_page", 2)
    add_rows(5)
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get("/admin/annotator/imagenetrecord/", {"p": 2})
    shown = list(response.context["cl"].result_list)
    assert shown == list(ImageNetRecord.objects.order_by("-pk")[2:4])
    paged = [query["sql"] for query in queries if "OFFSET" in query["sql"]]
    assert len(paged) == 1 and re.match(r'SELECT "annotator_imagenetrecord"\."id"( AS "pk")? FROM ', paged[0])
    with CaptureQueriesContext(connection) as queries:  # the rows and their joins: no query per row
        assert [str(record.assignment) + record.page.hit.batch.name + record.image.key for record in shown]
    assert not queries
