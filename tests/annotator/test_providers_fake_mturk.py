"""The whole MTurk lifecycle over HTTP against a local fake of the requester API, driven by annotator's signals."""
from decimal import Decimal

import boto3
import pytest
from django.core.management import call_command

from annotator import signals
from annotator.models import Assignment, Event, Hit, Provider
from annotator.providers import mturk, services
from tests.annotator.fake_mturk import FakeMTurk
from tests.factories import BatchFactory, HitFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def market(monkeypatch, settings):
    settings.PUBLIC_BASE_URL = "https://annotate.example.org"
    with FakeMTurk() as fake:
        client = boto3.client("mturk", region_name="us-east-1", aws_access_key_id="testing",
                              aws_secret_access_key="testing", endpoint_url=fake.endpoint_url)
        monkeypatch.setattr(mturk, "make_client", lambda: client)
        yield fake


def decide(assignment, state, feedback, capture):
    with capture(execute=True):
        previous = assignment.state
        assignment.transition(state)
        assignment.feedback = feedback
        assignment.save()
        signals.assignments_decided.send(sender=Assignment, decided={assignment.pk: previous},
                                         batch_ids={assignment.hit.batch_id}, actor=None)


def test_publish_sync_decide_repost_bonus_expire(market, django_capture_on_commit_callbacks):
    batch = BatchFactory(provider=Provider.MTURK, reward=Decimal("1.50"))
    hits = [HitFactory(batch=batch, index=i) for i in range(2)]
    call_command("publish", batch.name, verbosity=0)
    for hit in hits:
        hit.refresh_from_db()
        assert hit.external_id in market.hits
        assert f"<ExternalURL>https://annotate.example.org/task/{hit.pk}/</ExternalURL>" in (
            market.hits[hit.external_id]["Question"])

    good = market.add_submission(hits[0].external_id, "A1GOODWORKER")
    bad = market.add_submission(hits[1].external_id, "A1SPAMMER")
    call_command("sync_hits", batch.name, stdout=open("/dev/null", "w"))
    approved = Assignment.objects.get(external_id=good)
    rejected = Assignment.objects.get(external_id=bad)
    assert approved.state == rejected.state == Assignment.State.SUBMITTED

    decide(approved, Assignment.State.APPROVED, "", django_capture_on_commit_callbacks)
    decide(rejected, Assignment.State.REJECTED, "You selected 4 images; at least 30 are needed.",
           django_capture_on_commit_callbacks)
    assert market.assignments[good]["AssignmentStatus"] == "Approved"
    assert market.assignments[bad]["AssignmentStatus"] == "Rejected"
    assert market.assignments[bad]["RequesterFeedback"] == "You selected 4 images; at least 30 are needed."

    with django_capture_on_commit_callbacks(execute=True):
        signals.hit_needs_repost.send(sender=Hit, hit=rejected.hit, count=1)
        signals.bonus_granted.send(sender=Assignment, assignment=approved, amount=Decimal("0.40"),
                                   reason="Careful clicks", actor=None)
    assert market.hits[hits[1].external_id]["MaxAssignments"] == 2
    assert [(b["WorkerId"], b["BonusAmount"]) for b in market.bonuses] == [("A1GOODWORKER", "0.40")]

    # A second worker takes the re-posted HIT; syncing again changes only what is new.
    market.add_submission(hits[1].external_id, "A1SECOND")
    result = services.sync_batch(batch)
    assert (result.created, result.updated) == (1, 0)

    # Running every task again makes no market call that changes anything.
    calls_before = len(market.calls)
    assert services.send_decision(approved) is False
    assert services.repost_hit(rejected.hit, 1, 2) is False
    assert len(market.calls) == calls_before

    assert services.expire_hit(hits[0]) is True
    assert market.hits[hits[0].external_id]["HITStatus"] == "Unassignable"
    services.notify_workers(batch, [approved.worker_id, rejected.worker_id], "Thanks", "Round 2 opens Monday.")
    assert sorted(market.notifications[0]["WorkerIds"]) == ["A1GOODWORKER", "A1SPAMMER"]
    operations = set(Event.objects.filter(batch=batch, type=Event.Type.MARKET_CALL)
                     .values_list("data__operation", flat=True))
    assert operations == {
        "CreateHITType", "CreateHITWithHITType", "ListAssignmentsForHIT", "ApproveAssignment", "RejectAssignment",
        "CreateAdditionalAssignmentsForHIT", "SendBonus", "UpdateExpirationForHIT", "NotifyWorkers",
    }
