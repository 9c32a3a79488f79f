"""Prolific's submission.status.change webhook: set up as Prolific documents it, verified (signature, age, replay),
deduplicated by X-Event-ID, ordered by its signed timestamp; and the periodic sync for calls that never came."""
import json
import time
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.test import Client

from annotator import events
from annotator.models import Assignment, Hit, MarketNotification, Provider
from annotator.providers import prolific, services, tasks
from annotator.worker import services as worker_services
from tests.factories import BatchFactory, HitFactory
from tests.markets import fake_prolific

WEBHOOK = "/api/markets/prolific/webhook/"


@pytest.fixture
def market(settings):
    with fake_prolific(settings) as fake:
        fake.secret = settings.PROLIFIC_WEBHOOK_SECRET = "whsec-test"
        yield fake


def published_hit():
    batch = BatchFactory(provider=Provider.PROLIFIC, reward=Decimal("1.50"), min_hourly_wage=Decimal("9.00"))
    HitFactory(batch=batch)
    services.publish_batch(batch)
    return Hit.objects.get(batch=batch)


def working(market, hit, participant="PWORKER"):
    submission_id, _ = market.join(hit.external_id, participant)
    assignment = worker_services.accept_assignment(hit, participant, submission_id)
    return submission_id, assignment


def post(body, headers):
    return Client().post(WEBHOOK, data=body, content_type="application/json",
                         **{f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()
                            if k != "Content-Type"})


@pytest.mark.django_db(transaction=True)
def test_the_subscription_is_set_up_and_confirmed_and_prolific_calls_reach_us(market, live_server, settings, capsys):
    settings.PROLIFIC_WEBHOOK_SECRET = ""
    call_command("prolific_webhook", "--workspace", "workspace-1", "--target-url", live_server.url + WEBHOOK)
    printed = capsys.readouterr().out
    (subscription,) = market.subscriptions.values()
    assert subscription["is_enabled"] and subscription["event_type"] == "submission.status.change"
    assert f"PROLIFIC_WEBHOOK_SECRET={market.secret}" in printed
    settings.PROLIFIC_WEBHOOK_SECRET = market.secret

    hit = published_hit()
    submission_id, assignment = working(market, hit)
    market.return_submission(submission_id)  # Prolific calls the webhook
    assert market.deliveries[-1]["status"] == 200, market.deliveries
    assignment.refresh_from_db()
    assert assignment.state == Assignment.State.RETURNED


@pytest.mark.django_db
def test_a_signed_call_is_applied_once_whatever_its_redeliveries(market):
    hit = published_hit()
    submission_id, assignment = working(market, hit)
    market.submissions[submission_id]["status"] = "AWAITING REVIEW"
    body, headers = market.signed_call(submission_id, event_id="evt-1")
    answer = post(body, headers)
    assert answer.status_code == 200, answer.content
    assert answer.json()["applied"] is True
    assignment.refresh_from_db()
    assert assignment.state == Assignment.State.SUBMITTED
    # Prolific delivers the same event again, signed anew a second later.
    body, headers = market.signed_call(submission_id, event_id="evt-1", timestamp=time.time() + 1)
    again = post(body, headers)
    assert again.status_code == 200 and again.json()["applied"] is False
    assert "already received" in again.json()["reason"]
    assert MarketNotification.objects.count() == 1


@pytest.mark.django_db
def test_an_older_status_arriving_late_does_not_overwrite_a_newer_one(market, django_capture_on_commit_callbacks):
    hit = published_hit()
    submission_id, assignment = working(market, hit)
    now = time.time()
    market.submissions[submission_id]["status"] = "AWAITING REVIEW"
    older = market.signed_call(submission_id, event_id="evt-old", timestamp=now - 5)
    market.submissions[submission_id]["status"] = "RETURNED"
    newer = market.signed_call(submission_id, event_id="evt-new", timestamp=now)
    assert post(*newer).json()["applied"] is True
    late = post(*older)
    assert late.status_code == 200 and late.json()["applied"] is False
    assert "RETURNED" in late.json()["reason"] and "newer" in late.json()["reason"]
    assignment.refresh_from_db()
    assert assignment.state == Assignment.State.RETURNED


@pytest.mark.django_db
def test_unsigned_wrongly_signed_stale_and_reused_calls_are_refused(market, settings):
    hit = published_hit()
    submission_id, assignment = working(market, hit)
    market.submissions[submission_id]["status"] = "RETURNED"
    body, headers = market.signed_call(submission_id, event_id="evt-a")

    unsigned = post(body, {k: v for k, v in headers.items() if k != "X-Prolific-Request-Signature"})
    assert unsigned.status_code == 401
    assert "X-Prolific-Request-Signature: missing" in unsigned.json()["error"]["message"]
    forged = post(body, {**headers, "X-Prolific-Request-Signature": prolific.signature("guess", headers[
        "X-Prolific-Request-Timestamp"], body)})
    assert forged.status_code == 401 and "does not match" in forged.json()["error"]["message"]
    tampered = post(body.replace(b"RETURNED", b"APPROVED"), headers)
    assert tampered.status_code == 401
    stale = post(*market.signed_call(submission_id, event_id="evt-b", timestamp=time.time() - 3600))
    assert stale.status_code == 401 and "at most 300 s" in stale.json()["error"]["message"]
    assignment.refresh_from_db()
    assert assignment.state == Assignment.State.ACCEPTED
    assert MarketNotification.objects.count() == 0

    assert post(body, headers).status_code == 200
    reused = post(body, {**headers, "X-Event-ID": "evt-fresh-looking"})
    assert reused.status_code == 409 and "replay" in reused.json()["error"]["message"]

    settings.PROLIFIC_WEBHOOK_SECRET = ""
    assert post(body, headers).status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize("payload, field", [
    ({"event_type": "study.status.change", "resource_id": "s", "participant_id": "p", "status": "ACTIVE"},
     "event_type"),
    ({"event_type": "submission.status.change", "participant_id": "p", "status": "ACTIVE"}, "resource_id"),
    ({"event_type": "submission.status.change", "resource_id": "s", "participant_id": "p", "status": 3}, "status"),
])
def test_a_signed_call_with_a_bad_payload_names_the_field_and_writes_nothing(market, payload, field):
    body = json.dumps(payload).encode()
    timestamp = str(int(time.time()))
    answer = post(body, {"X-Prolific-Request-Timestamp": timestamp, "X-Event-ID": "evt",
                         "X-Prolific-Request-Signature": prolific.signature("whsec-test", timestamp, body)})
    assert answer.status_code == 400
    assert field in answer.json()["error"]["fields"]
    assert MarketNotification.objects.count() == 0


@pytest.mark.django_db
def test_the_periodic_sync_brings_what_no_webhook_call_brought(market, django_capture_on_commit_callbacks):
    hit = published_hit()
    submission_id, assignment = working(market, hit)
    market.submissions[submission_id]["status"] = "TIMED-OUT"  # its webhook call was lost
    other = BatchFactory(provider=Provider.MTURK)  # not a Prolific batch: left alone
    assert services.sync_market_batches(Provider.PROLIFIC) == [hit.batch.pk]
    assert other.pk not in services.sync_market_batches(Provider.PROLIFIC)
    tasks.sync_batch(hit.batch.pk)
    assignment.refresh_from_db()
    assert assignment.state == Assignment.State.EXPIRED


@pytest.mark.django_db
def test_a_decision_taken_before_the_participant_was_back_on_prolific_goes_when_prolific_awaits_review(
        market, django_capture_on_commit_callbacks):
    hit = published_hit()
    submission_id, assignment = working(market, hit)
    worker_services.submit_assignment(assignment, partial=True)
    with django_capture_on_commit_callbacks(execute=True):
        assignment = Assignment.objects.get(pk=assignment.pk)  # the rules rejected it: too early for Prolific
        assignment.transition(Assignment.State.REJECTED)
        assignment.save()
        services.send_decision(assignment)
    assert market.submissions[submission_id]["status"] == "ACTIVE"
    assert events.last_market_decision(assignment) is None

    market.submissions[submission_id]["status"] = "AWAITING REVIEW"  # the participant is back with the code
    with django_capture_on_commit_callbacks(execute=True):
        assert post(*market.signed_call(submission_id)).json()["applied"] is True
    assert market.submissions[submission_id]["status"] == "REJECTED"
    assert events.last_market_decision(assignment) == Assignment.State.REJECTED
