"""The whole MTurk lifecycle over HTTP against a local fake of the requester API, driven by annotator's signals."""
from decimal import Decimal

import pytest
from django.core.management import call_command

from annotator.models import Event, Provider
from annotator.providers import services
from devtools.fake_mturk import FakeMTurk
from tests.factories import BatchFactory, HitFactory
from tests.markets import REJECTION_FEEDBACK, approve_and_reject, repost_and_bonus, use_mturk_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def market(monkeypatch, settings):
    with FakeMTurk() as fake:
        use_mturk_client(monkeypatch, settings, fake.endpoint_url)
        yield fake


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
    approved, rejected = approve_and_reject(good, bad, django_capture_on_commit_callbacks)
    assert market.assignments[good]["AssignmentStatus"] == "Approved"
    assert market.assignments[bad]["AssignmentStatus"] == "Rejected"
    assert market.assignments[bad]["RequesterFeedback"] == REJECTION_FEEDBACK

    repost_and_bonus(rejected, approved, django_capture_on_commit_callbacks)
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
