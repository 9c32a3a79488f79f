"""A broker outage never fails a submission, and the sweeper (annotator/sweeper.py) does the work it left undone."""
import logging
import threading
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from annotator import models, signals, sweeper
from annotator.models import Assignment, Event
from annotator.providers import services as provider_services
from annotator.providers import tasks as provider_tasks
from annotator.review import services as review_services
from annotator.review import tasks as review_tasks
from config.celery import send_task
from tests.annotator.review_data import good_imagenet, spam_imagenet
from tests.annotator.test_worker_api import accept, call, save_all_pages
from tests.broker import UNREACHABLE_BROKER, broker  # noqa: F401  (fixture)
from tests.factories import make_imagenet_hit

pytestmark = pytest.mark.django_db


def decision_events(assignment):
    return Event.objects.filter(assignment=assignment, type__in=[Event.Type.APPROVED, Event.Type.REJECTED]).count()


@pytest.mark.django_db(transaction=True)  # real commits: the review is queued inside the submit request
def test_a_submission_with_the_broker_down_succeeds_and_the_sweeper_reviews_it(client, broker, caplog, monkeypatch):
    hit = make_imagenet_hit(n_pages=2)
    assignment, token = accept(hit)
    save_all_pages(client, hit, token)
    broker.down()
    publishes = spy_on_publishes(monkeypatch, review_tasks.auto_review)

    with caplog.at_level(logging.WARNING, logger="config.celery"):
        response = call(client, token, "POST", "submit", {})

    assert response.status_code == 200, response.content
    assert response.json()["completion_code"], "the worker gets their code although the review could not be queued"
    # One publish attempt without kombu's retry loop: the request is not held up by the broker.
    assert [options.get("retry") for options in publishes] == [False]
    assert "broker unreachable" in caplog.text and "auto_review" in caplog.text
    assignment.refresh_from_db()
    assert assignment.state == Assignment.State.SUBMITTED and assignment.reviewed_at is None

    # Still down: the sweep queues nothing and says so; the assignment waits.
    assert sweeper.sweep_work(older_than=0) == {"reviews": 0, "decisions": 0, "bonuses": 0, "reposts": 0, "exports": 0}
    assignment.refresh_from_db()
    assert assignment.state == Assignment.State.SUBMITTED

    broker.up()
    call_command("sweep_work", "--older-than", "0")
    assignment.refresh_from_db()
    assert assignment.state in (Assignment.State.APPROVED, Assignment.State.REJECTED)
    assert assignment.decision_source == Assignment.DecisionSource.AUTO and decision_events(assignment) == 1

    # Nothing left: the next sweep queues nothing.
    assert sweeper.sweep_work(older_than=0) == {"reviews": 0, "decisions": 0, "bonuses": 0, "reposts": 0, "exports": 0}


def spy_on_publishes(monkeypatch, task):
    """The options of every apply_async of task (still published, or refused, as before)."""
    publishes = []
    publish = task.apply_async

    def recording(*args, **options):
        publishes.append(options)
        return publish(*args, **options)

    monkeypatch.setattr(task, "apply_async", recording)
    return publishes


def test_a_send_to_a_broker_that_is_down_tries_once_and_the_next_ones_skip_it(broker, monkeypatch):
    broker.down()
    publishes = spy_on_publishes(monkeypatch, review_tasks.auto_review)
    assert send_task(review_tasks.auto_review, [1]) is False
    assert [options.get("retry") for options in publishes] == [False]
    # Marked down for a while: the next sends do not even try (only one request per process pays the timeout).
    assert send_task(review_tasks.auto_review, [2]) is False
    assert len(publishes) == 1


def test_the_sweeper_leaves_fresh_submissions_to_their_own_review(broker):
    assignment = good_imagenet()  # submitted a moment ago; its review is probably still in the queue
    assert sweeper.sweep_work(older_than=600) == {"reviews": 0, "decisions": 0, "bonuses": 0, "reposts": 0, "exports": 0}
    assert sweeper.sweep_work(older_than=0)["reviews"] == 1
    assignment.refresh_from_db()
    assert assignment.state == Assignment.State.APPROVED


def test_inline_sweep_reviews_without_a_broker(broker, capsys):
    good, spam = good_imagenet(), spam_imagenet()
    broker.down()
    call_command("sweep_work", "--older-than", "0", "--inline")
    assert "2 reviews, 0 decisions, 0 bonuses, 0 reposts, 0 exports done" in capsys.readouterr().out
    good.refresh_from_db()
    spam.refresh_from_db()
    assert (good.state, spam.state) == (Assignment.State.APPROVED, Assignment.State.REJECTED)


def test_sweep_command_refuses_a_negative_age():
    with pytest.raises(CommandError, match="--older-than: -1 seconds"):
        call_command("sweep_work", "--older-than", "-1")


def test_a_review_task_run_twice_decides_once(monkeypatch):
    queued = []
    monkeypatch.setattr(provider_tasks.send_decision, "apply_async", lambda args=(), **options: queued.append(args))
    assignment = spam_imagenet()

    first = review_tasks.auto_review.apply(args=[assignment.pk]).get()
    second = review_tasks.auto_review.apply(args=[assignment.pk]).get()

    assert first["approve"] is False and second is None
    assignment.refresh_from_db()
    assert assignment.state == Assignment.State.REJECTED
    assert decision_events(assignment) == 1
    assert Event.objects.filter(assignment=assignment, type=Event.Type.AUTO_REVIEWED).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_redelivered_review_running_beside_the_first_decides_once():
    """The broker redelivers a review whose worker it thinks is gone while the first still runs: the row lock
    makes the second wait and then find the assignment decided."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL")
    assignment = spam_imagenet()
    results, start = [], threading.Barrier(2)

    def review():
        try:
            start.wait()
            results.append(review_services.auto_review(assignment.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=review) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(result is None for result in results) == [False, True]
    assert decision_events(assignment) == 1


def test_the_sweeper_sends_the_market_decisions_the_market_lacks(monkeypatch):
    queued = []
    monkeypatch.setattr(provider_tasks.send_decision, "apply_async", lambda args=(), **options: queued.extend(args))
    lost, delivered, link = good_imagenet(), good_imagenet(), good_imagenet()
    for assignment in (lost, delivered):
        models.Batch.objects.filter(pk=assignment.hit.batch_id).update(provider=models.Provider.MTURK)
        Assignment.objects.filter(pk=assignment.pk).update(external_id=f"MT-{assignment.pk}")
    for assignment in (lost, delivered, link):
        review_services.auto_review(assignment.pk)
    queued.clear()  # the decisions queued after commit; say the broker lost them all
    Event.objects.create(type=Event.Type.MARKET_CALL, assignment=delivered, data={"market_decision": "approved"})

    assert sweeper.sweep_work(older_than=0) == {"reviews": 0, "decisions": 1, "bonuses": 0, "reposts": 0, "exports": 0}
    assert queued == [lost.pk], "the link batch has no market; the delivered decision is not sent again"


def test_worker_requests_succeed_while_the_throttle_cache_is_down(client, settings, caplog):
    """CACHE_URL on the same Redis as the broker: a Redis outage must not fail the worker API's throttle."""
    from config.cache import FailOpenRedisCache

    hit = make_imagenet_hit(n_pages=2)
    assignment, token = accept(hit)
    settings.CACHES = {"default": {"BACKEND": "config.cache.FailOpenRedisCache", "LOCATION": UNREACHABLE_BROKER,
                                   "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1}}}
    try:
        with caplog.at_level(logging.WARNING, logger="config.cache"):
            save_all_pages(client, hit, token)
            response = call(client, token, "POST", "submit", {})
        assert response.status_code == 200, response.content
        assert "cache unreachable" in caplog.text
    finally:
        FailOpenRedisCache.down_until = 0.0


@pytest.mark.django_db(transaction=True)  # real commits: the export is queued after commit
def test_an_export_started_with_the_broker_down_is_run_by_the_sweeper_once(broker, tmp_path, settings):
    from annotator.exports import services as export_services
    from tests.factories import BatchFactory

    settings.MEDIA_ROOT = str(tmp_path)
    batch = BatchFactory(task_kind=models.TaskKind.IMAGENET)
    broker.down()
    job = export_services.start_export_job(batch, "jsonl")  # the admin's or the API's request: no error
    job.refresh_from_db()
    assert job.status == models.ExportJob.Status.PENDING

    broker.up()
    assert sweeper.sweep_work(older_than=600)["exports"] == 0  # just created: its own message may still come
    assert sweeper.sweep_work(older_than=0)["exports"] == 1
    job.refresh_from_db()
    assert job.status == models.ExportJob.Status.DONE and job.file.name
    assert export_services.run_export_job(job.pk).file.name == job.file.name  # a late duplicate changes nothing
    assert sweeper.sweep_work(older_than=0)["exports"] == 0


def test_the_sweeper_pays_a_bonus_grant_the_broker_lost_once(admin_user):
    """The grant is recorded (BONUS_REQUESTED) with the decision; its task after commit never ran (a broker
    outage): the sweep pays it, with the grant's own key, and a second sweep pays nothing more."""
    assignment = good_imagenet()
    review_services.auto_review(assignment.pk)
    assignment.refresh_from_db()
    review_services.grant_bonus(assignment, "0.50", admin_user, "great work")  # no commit: the task never ran
    requested = Event.objects.get(assignment=assignment, type=Event.Type.BONUS_REQUESTED)
    assert requested.data["amount"] == "0.50" and requested.data["reason"] == "great work"
    assert sweeper.sweep_work(older_than=600)["bonuses"] == 0  # just granted: its own task may still come

    assert sweeper.sweep_work(older_than=0, inline=True)["bonuses"] == 1
    assignment.refresh_from_db()
    assert assignment.bonus_paid == Decimal("0.50")
    paid = Event.objects.get(assignment=assignment, type=Event.Type.BONUSED)
    assert paid.data["key"] == requested.data["key"]
    assert sweeper.sweep_work(older_than=0, inline=True)["bonuses"] == 0
    assignment.refresh_from_db()
    assert assignment.bonus_paid == Decimal("0.50")


def test_the_sweeper_queues_a_lost_bonus_and_repost_with_their_arguments(monkeypatch):
    queued = []
    for name in ("pay_bonus", "repost_hit"):
        monkeypatch.setattr(getattr(provider_tasks, name), "apply_async",
                            lambda args=(), _name=name, **options: queued.append((_name, tuple(args))))
    assignment = good_imagenet()
    hit = assignment.hit
    models.Hit.objects.filter(pk=hit.pk).update(max_assignments=1)
    hit.refresh_from_db()
    signals.bonus_granted.send(sender=Assignment, assignment=assignment, amount=Decimal("1.25"), reason="thanks",
                               actor=None)
    signals.hit_needs_repost.send(sender=models.Hit, hit=hit, count=2)
    assert queued == []  # after commit only, and this test never commits

    outcome = sweeper.sweep_work(older_than=0)
    assert (outcome["bonuses"], outcome["reposts"]) == (1, 1)
    request_key = Event.objects.get(type=Event.Type.BONUS_REQUESTED).data["request_key"]
    assert sorted(queued) == [("pay_bonus", (assignment.pk, "1.25", "thanks", request_key)),
                              ("repost_hit", (hit.pk, 2, 3))]


def test_a_repost_the_market_took_is_not_sent_again(monkeypatch):
    queued = []
    monkeypatch.setattr(provider_tasks.repost_hit, "apply_async", lambda args=(), **options: queued.append(args))
    assignment = good_imagenet()
    hit = assignment.hit
    signals.hit_needs_repost.send(sender=models.Hit, hit=hit, count=1)
    requested = Event.objects.get(type=Event.Type.REPOST_REQUESTED)
    provider_services.repost_hit(hit, 1, requested.data["target_max_assignments"])  # the task did run

    assert sweeper.sweep_work(older_than=0)["reposts"] == 0
    assert queued == []


# ---------------------------------------------------------------- work past its deadline (issue 14)


def test_the_sweeper_expires_open_work_past_its_deadline_and_frees_its_place(client, capsys):
    from datetime import timedelta

    from django.utils import timezone

    hit = make_imagenet_hit(n_pages=1)
    hit.max_assignments = 5
    hit.save()
    past, future = timezone.now() - timedelta(seconds=1), timezone.now() + timedelta(hours=1)
    cases = {  # worker: (state, deadline, expired by the sweep)
        "ACCEPTED-LATE": (Assignment.State.ACCEPTED, past, True),
        "WORKING-LATE": (Assignment.State.IN_PROGRESS, past, True),
        "WORKING": (Assignment.State.IN_PROGRESS, future, False),
        "SUBMITTED-LATE": (Assignment.State.SUBMITTED, past, False),
        "IMPORTED": (Assignment.State.ACCEPTED, None, False),
    }
    taken = {name: accept(hit, name)[0] for name in cases}
    for name, (state, deadline, _) in cases.items():
        Assignment.objects.filter(pk=taken[name].pk).update(state=state, deadline=deadline)

    assert sweeper.expire_overdue_assignments() == 2
    states = dict(Assignment.objects.values_list("worker__external_id", "state"))
    for name, (state, _, expires) in cases.items():
        assert states[name] == (Assignment.State.EXPIRED if expires else state), name
    events = Event.objects.filter(type=Event.Type.EXPIRED).order_by("pk")
    assert sorted(event.data["from"] for event in events) == ["accepted", "in_progress"]
    assert all(event.hit == hit and event.batch == hit.batch for event in events)
    assert sweeper.expire_overdue_assignments() == 0
    # The places are free: two more workers can take the HIT.
    for name in ("NEW1", "NEW2"):
        assert client.get(f"/task/{hit.pk}/?workerId={name}&assignmentId=S-{name}").status_code == 200
    assert client.get(f"/task/{hit.pk}/?workerId=NEW3&assignmentId=S-NEW3").status_code == 409

    Assignment.objects.filter(worker__external_id="WORKING").update(deadline=past)
    call_command("sweep_work", "--older-than", "0", "--inline")
    assert capsys.readouterr().out.strip().endswith("; 1 expired")


@pytest.mark.django_db(transaction=True)
def test_a_submit_holding_its_row_is_never_expired_under_it():
    """The sweep locks each row with SKIP LOCKED: a submit in progress (its row locked) wins; the next sweep finds
    it submitted. (PostgreSQL: SQLite has no row locks, its writes are serialised.)"""
    if connection.vendor != "postgresql":
        pytest.skip("row locks are a PostgreSQL matter")
    from datetime import timedelta

    from django.db import connections, transaction
    from django.utils import timezone

    hit = make_imagenet_hit(n_pages=1)
    assignment, _ = accept(hit)
    Assignment.objects.filter(pk=assignment.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    locked, release = threading.Event(), threading.Event()

    def submit_in_progress():
        try:
            with transaction.atomic():
                row = Assignment.objects.select_for_update().get(pk=assignment.pk)
                locked.set()
                release.wait(10)
                row.state = Assignment.State.SUBMITTED
                row.save(update_fields=["state"])
        finally:
            connections.close_all()

    thread = threading.Thread(target=submit_in_progress)
    thread.start()
    assert locked.wait(10)
    try:
        assert sweeper.expire_overdue_assignments() == 0
    finally:
        release.set()
        thread.join()
    assert sweeper.expire_overdue_assignments() == 0
    assignment.refresh_from_db()
    assert assignment.state == Assignment.State.SUBMITTED
