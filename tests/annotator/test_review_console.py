import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from annotator import report, rules
from annotator.models import Assignment, Event, ImageNetRecord, TaskKind
from annotator.review import services
from annotator.worker.tokens import make_token
from tests import factories
from tests.annotator.review_data import good_imagenet, spam_imagenet, submitted_assignment

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


def console_urls(assignment):
    batch, worker = assignment.hit.batch_id, assignment.worker_id
    return {
        "get": ["/review/", f"/review/batches/{batch}/", f"/review/assignments/{assignment.pk}/",
                f"/review/workers/{worker}/"],
        "post": [f"/review/batches/{batch}/decide/", f"/review/batches/{batch}/rerun/",
                 f"/review/assignments/{assignment.pk}/decide/", f"/review/assignments/{assignment.pk}/bonus/",
                 f"/review/workers/{worker}/block/", f"/review/workers/{worker}/unblock/"],
    }


@pytest.mark.parametrize("who", ["anonymous", "worker"])
def test_anonymous_users_and_non_staff_cannot_reach_the_console(who):
    assignment = good_imagenet()
    client = Client()
    if who == "worker":
        client.force_login(get_user_model().objects.create_user("crowd", password="x" * 12))
    urls = console_urls(assignment)
    for url in urls["get"]:
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url
    for url in urls["post"]:
        response = client.post(url, {"decision": "approve", "assignments": [assignment.pk], "reason": "x",
                                     "amount": "1.00"})
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url
    assignment.refresh_from_db()
    assert assignment.state == Assignment.State.SUBMITTED and not Event.objects.exists()


def test_worker_token_gives_no_access_to_review():
    assignment = good_imagenet()
    response = Client().get("/review/", HTTP_AUTHORIZATION=f"Bearer {make_token(assignment)}")
    assert response.status_code == 302


def test_console_forms_are_csrf_protected(admin_user):
    assignment = good_imagenet()
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    for url in console_urls(assignment)["post"]:
        response = client.post(url, {"decision": "reject", "reject_feedback": "no", "assignments": [assignment.pk]})
        assert response.status_code == 403, url
    page = client.get(f"/review/batches/{assignment.hit.batch_id}/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = client.post(f"/review/batches/{assignment.hit.batch_id}/decide/", {
        "csrfmiddlewaretoken": token, "decision": "reject", "reject_feedback": "no", "assignments": [assignment.pk],
    })
    assert response.status_code == 302
    assignment.refresh_from_db()
    assert assignment.state == Assignment.State.REJECTED


def test_dashboard_shows_progress_rates_time_wage_warning_and_cost(staff_client):
    good = good_imagenet(minutes=20)
    batch = good.hit.batch
    spam = spam_imagenet(batch=batch, minutes=20)
    services.auto_review(good.pk)
    services.auto_review(spam.pk)

    page = staff_client.get(f"/review/batches/{batch.pk}/").content.decode()

    assert "1 / 2 HITs" in page
    assert "50.0% approved" in page and "50.0% rejected" in page
    assert "20.0 min median per HIT" in page and "20.0 min" in page.split('id="assignments"')[1]
    # $1.50 for 20 minutes is $4.50 an hour: below the $7.25 minimum.
    assert "Effective hourly wage $4.50 is below the minimum of $7.25" in page
    assert "$1.80" in page and "$0.30 market fee" in page
    assert "recall 0.025 &lt; 0.333 on 360 in-class images" in page


def test_time_per_hit_comes_from_the_pages_measured_time_not_the_accept_to_submit_span(staff_client):
    """A simulated crowd submits within a second of accepting; its pages measured 9.8 minutes of work."""
    assignment = good_imagenet(minutes=9.8)
    Assignment.objects.filter(pk=assignment.pk).update(accepted_at=assignment.submitted_at)
    services.auto_review(assignment.pk)
    batch = assignment.hit.batch

    page = staff_client.get(f"/review/batches/{batch.pk}/").content.decode()

    assert "9.8 min median per HIT" in page and "$9.18 per hour" in page
    assert report.build_report(batch)["time"]["median_minutes_per_hit"] == pytest.approx(9.8)
    assert "9.8 min working on its pages" in staff_client.get(f"/review/assignments/{assignment.pk}/").content.decode()


def test_no_wage_warning_when_the_wage_is_above_the_minimum(staff_client):
    assignment = good_imagenet(minutes=9)
    page = staff_client.get(f"/review/batches/{assignment.hit.batch_id}/").content.decode()
    assert "$10.00 per hour" in page and "below the minimum" not in page


def test_bulk_reject_from_the_dashboard_needs_feedback(staff_client):
    first = good_imagenet()
    batch = first.hit.batch
    assignments = [first, good_imagenet(batch=batch)]
    url = f"/review/batches/{batch.pk}/decide/"
    ids = [a.pk for a in assignments]

    response = staff_client.post(url, {"decision": "reject", "reject_feedback": "", "assignments": ids}, follow=True)
    assert "feedback: a rejection needs feedback" in response.content.decode()
    assert not Assignment.objects.filter(state=Assignment.State.REJECTED).exists()

    response = staff_client.post(url, {"decision": "reject", "reject_feedback": "Random clicks.", "assignments": ids},
                                 follow=True)
    assert "2 assignments rejected." in response.content.decode()
    assert list(Assignment.objects.values_list("feedback", flat=True).distinct()) == ["Random clicks."]


def test_playback_page_escapes_worker_data_and_shows_the_rules_and_agreement(staff_client):
    assignment = spam_imagenet()
    page = assignment.hit.pages.first()
    category = factories.CategoryFactory(dataset=assignment.hit.batch.dataset, name="<b>tench</b>")
    page.category = category
    page.save()
    image = factories.ImageFactory(dataset=assignment.hit.batch.dataset, key="</script><script>alert(1)</script>")
    page.items.create(image=image, position=0, in_class=True)
    ImageNetRecord.objects.create(assignment=assignment, page=page, image=image, selected=True,
                                  selected_record=[{"x": 0.4, "y": 0.6, "time": 1}], image_width=100, image_height=100)
    Assignment.objects.filter(pk=assignment.pk).update(model_agreement=0.75)
    services.auto_review(assignment.pk)

    html = staff_client.get(f"/review/assignments/{assignment.pk}/").content.decode()

    assert "<script>alert(1)</script>" not in html and "<b>tench</b>" not in html
    assert "\\u003C/script\\u003E" in html
    assert "selections 12 &lt; 30" in html
    assert "0.750" in html


def test_coco_playback_carries_the_icon_actions(staff_client):
    assignment = submitted_assignment(kind=TaskKind.COCO, n_pages=2, n_gt_categories=2, n_tagged_correct=2,
                                      n_icons=2, n_icons_on_mask=2)
    page = assignment.hit.pages.first()
    page.image = factories.ImageFactory(dataset=assignment.hit.batch.dataset, key="42")
    page.save()
    factories.CocoRecordFactory(assignment=assignment, page=page, image=page.image)

    html = staff_client.get(f"/review/assignments/{assignment.pk}/").content.decode()

    assert '"actionType": "add"' in html and '"image_key": "42"' in html


def test_worker_page_blocks_unblocks_and_the_bonus_form_reaches_the_provider(staff_client):
    assignment = good_imagenet()
    services.auto_review(assignment.pk)
    worker = assignment.worker

    staff_client.post(f"/review/workers/{worker.pk}/block/", {"reason": "spam <3"})
    worker.refresh_from_db()
    assert worker.blocked and worker.blocked_reason == "spam <3"
    page = staff_client.get(f"/review/workers/{worker.pk}/").content.decode()
    assert "spam &lt;3" in page and "100% approved" in page
    staff_client.post(f"/review/workers/{worker.pk}/unblock/")
    worker.refresh_from_db()
    assert not worker.blocked

    response = staff_client.post(f"/review/assignments/{assignment.pk}/bonus/",
                                 {"amount": "0.75", "reason": "thorough"}, follow=True)
    assert "Bonus of $0.75 sent to the provider." in response.content.decode()


def test_override_from_the_playback_page(staff_client, admin_user):
    assignment = spam_imagenet()
    services.auto_review(assignment.pk)

    staff_client.post(f"/review/assignments/{assignment.pk}/decide/", {"decision": "approve", "approve_feedback": ""})

    assignment.refresh_from_db()
    assert assignment.state == Assignment.State.APPROVED
    assert Event.objects.get(assignment=assignment, type=Event.Type.OVERRIDDEN).actor == admin_user


def test_overriding_a_rejection_never_sends_the_rejection_text(staff_client):
    assignment = spam_imagenet()
    services.auto_review(assignment.pk)
    assignment.refresh_from_db()
    rejection_text = assignment.feedback
    url = f"/review/assignments/{assignment.pk}/decide/"

    page = staff_client.get(f"/review/assignments/{assignment.pk}/").content.decode()
    approve_box = re.search(r'<textarea name="approve_feedback"[^>]*>(.*?)</textarea>', page, re.S).group(1)
    reject_box = re.search(r'<textarea name="reject_feedback"[^>]*>(.*?)</textarea>', page, re.S).group(1)
    assert re.search(r'value="approve"[^>]*checked', page)
    assert "Unfortunately" not in approve_box and "Unfortunately" in reject_box

    # The form as the page left it: approve chosen, the rejection's words still in their own box.
    staff_client.post(url, {"decision": "approve", "approve_feedback": approve_box, "reject_feedback": reject_box})
    assignment.refresh_from_db()
    assert assignment.state == Assignment.State.APPROVED
    assert assignment.feedback == rules.APPROVAL_FEEDBACK
    sent = Event.objects.get(assignment=assignment, type=Event.Type.APPROVED).data["feedback"]
    assert sent == rules.APPROVAL_FEEDBACK and rejection_text != sent

    # Back to a rejection: the approval's thanks cannot be sent with it.
    response = staff_client.post(url, {"decision": "reject", "reject_feedback": rules.APPROVAL_FEEDBACK}, follow=True)
    assert "this is the text sent with the approval; write feedback for the rejection" in response.content.decode()
    assignment.refresh_from_db()
    assert assignment.state == Assignment.State.APPROVED
    staff_client.post(url, {"decision": "reject", "reject_feedback": "The clicks missed the objects."})
    assignment.refresh_from_db()
    assert (assignment.state, assignment.feedback) == (Assignment.State.REJECTED, "The clicks missed the objects.")


def test_event_tables_spell_out_the_data_instead_of_printing_dicts(staff_client):
    assignment = spam_imagenet()
    services.auto_review(assignment.pk)

    page = staff_client.get(f"/review/assignments/{assignment.pk}/").content.decode()
    events = page.split('id="events"')[1]
    assert "{" not in events and "[" not in events
    assert "<dt>reasons</dt><dd>recall 0.025 &lt; 0.333 on 360 in-class images" in events
    assert "<dt>approve</dt><dd>no</dd>" in events
    worker_page = staff_client.get(f"/review/workers/{assignment.worker_id}/").content.decode()
    assert "{&#x27;" not in worker_page and "<dt>source</dt><dd>auto</dd>" in worker_page


def test_batch_admin_links_to_the_console(admin_client):
    assignment = good_imagenet()
    page = admin_client.get("/admin/annotator/batch/").content.decode()
    assert f'href="/review/batches/{assignment.hit.batch_id}/"' in page


def test_batch_admin_refuses_unknown_rule_thresholds(admin_client):
    assignment = good_imagenet()
    batch = assignment.hit.batch
    url = f"/admin/annotator/batch/{batch.pk}/change/"
    form = admin_client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data["rule_thresholds"] = '{"min_icon_accuracy": 0.5}'

    response = admin_client.post(url, data)

    assert "unknown threshold for imagenet-style review" in response.content.decode()
    batch.refresh_from_db()
    assert batch.rule_thresholds == {}

    data["rule_thresholds"] = '{"min_recall": 0.5}'
    assert admin_client.post(url, data).status_code == 302
    batch.refresh_from_db()
    assert batch.rule_thresholds == {"min_recall": 0.5}


def test_rerun_button_reapplies_the_rules_with_the_batch_thresholds(staff_client, django_capture_on_commit_callbacks):
    assignment = good_imagenet()
    services.auto_review(assignment.pk)
    batch = assignment.hit.batch
    batch.rule_thresholds = {"min_recall": 0.99}
    batch.save()

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(f"/review/batches/{batch.pk}/rerun/", follow=True)

    assert "The rules are being re-run on" in response.content.decode()
    assignment.refresh_from_db()
    assert assignment.state == Assignment.State.REJECTED
    assert assignment.review["reasons"][0]["message"] == "recall 0.944 < 0.99 on 360 in-class images"


def test_console_pages_allow_only_our_own_scripts_and_no_framing(staff_client):
    assignment = good_imagenet()
    for url in console_urls(assignment)["get"]:
        response = staff_client.get(url)
        assert response.status_code == 200, url
        policy = response["Content-Security-Policy"]
        directives = {name: sources for name, *sources in (part.split() for part in policy.split(";"))}
        assert directives["script-src"] == ["'self'"] and directives["frame-ancestors"] == ["'none'"], url
        assert directives["object-src"] == ["'none'"] and directives["base-uri"] == ["'none'"], url
        assert "unsafe" not in policy, url
        assert not re.search(rb"<[^>]+\son[a-z]+=", response.content), f"{url} has an inline event handler"


def test_the_dashboard_median_time_per_hit_comes_from_the_database_in_the_same_queries_whatever_the_batch(
        staff_client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from annotator.review.selectors import batch_dashboard

    batch = factories.BatchFactory()

    def finished(minutes, state=Assignment.State.APPROVED):
        submitted_assignment(batch=batch, minutes=minutes, n_pages=1)
        Assignment.objects.filter(hit__batch=batch, state=Assignment.State.SUBMITTED).update(state=state)

    for minutes in (10, 40, 20):
        finished(minutes)
    factories.AssignmentFactory(hit__batch=batch, state=Assignment.State.ACCEPTED)  # still working: not counted
    assert batch_dashboard(batch)["median_minutes_per_hit"] == pytest.approx(20)
    finished(30, Assignment.State.REJECTED)
    with CaptureQueriesContext(connection) as few:
        assert batch_dashboard(batch)["median_minutes_per_hit"] == pytest.approx(25)  # (20 + 30) / 2
    for minutes in range(1, 12):
        finished(minutes)
    with CaptureQueriesContext(connection) as many:
        batch_dashboard(batch)
    assert len(many) == len(few)
    assert staff_client.get(f"/review/batches/{batch.pk}/").status_code == 200


def test_the_dashboard_page_reads_aggregates_and_one_page_of_rows_whatever_the_batch(staff_client, monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from annotator.review import views

    monkeypatch.setattr(views, "ASSIGNMENTS_PER_PAGE", 2)
    batch = factories.BatchFactory()

    def load():
        with CaptureQueriesContext(connection) as queries:
            response = staff_client.get(f"/review/batches/{batch.pk}/")
        assert response.status_code == 200
        return response, [query["sql"] for query in queries]

    for minutes in (10, 20, 30):
        submitted_assignment(batch=batch, minutes=minutes, n_pages=1)
    _, few = load()
    for minutes in range(1, 8):
        submitted_assignment(batch=batch, minutes=minutes, n_pages=1)
    response, many = load()
    assert len(many) == len(few)
    assert len(response.context["page"].object_list) == 2 and response.context["page"].paginator.num_pages == 5
    filtered = staff_client.get(f"/review/batches/{batch.pk}/", {"state": Assignment.State.APPROVED})
    assert filtered.context["page"].paginator.count == 0 and not filtered.context["page"].object_list
    assert response.context["stats"]["median_minutes_per_hit"] == pytest.approx(5.5)  # (5 + 6) / 2, of 1..7, 10, 20, 30
    # No query loads the batch's assignments: each one that reads them aggregates or reads a page (LIMIT).
    loads = [sql for sql in many if '"annotator_assignment"' in sql and "LIMIT" not in sql
             and not re.search(r"\b(COUNT|SUM)\(", sql)]
    assert not loads
