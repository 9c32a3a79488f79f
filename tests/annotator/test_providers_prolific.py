"""The Prolific provider over HTTP against the local fake Prolific (devtools/fake_prolific.py), which checks every
request body against Prolific's published schema: publishing, sync, decisions, bonuses, re-posts, messages, expiry,
and the market's failures (401, 429, 5xx, a refused rejection)."""
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from annotator import signals, sweeper
from annotator.models import Assignment, Event, Hit, Provider
from annotator.providers import prolific, services
from annotator.worker import services as worker_services
from devtools.fake_prolific import FakeProlific
from tests.factories import BatchFactory, HitFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def market(settings):
    settings.PUBLIC_BASE_URL = "https://annotate.example.org"
    with FakeProlific(token="secret-token") as fake:
        settings.PROLIFIC_API_URL = fake.url
        settings.PROLIFIC_API_TOKEN = "secret-token"
        yield fake


def prolific_batch(**kwargs):
    defaults = {"provider": Provider.PROLIFIC, "reward": Decimal("1.50"), "min_hourly_wage": Decimal("9.00")}
    return BatchFactory(**{**defaults, **kwargs})


def published(n_hits=1, **kwargs):
    batch = prolific_batch(**kwargs)
    hits = [HitFactory(batch=batch, index=i) for i in range(n_hits)]
    call_command("publish", batch.name, verbosity=0)
    return batch, [Hit.objects.get(pk=hit.pk) for hit in hits]


def work_and_return(market, hit, participant, partial=True):
    """A participant takes a place on Prolific, opens our task URL, submits here and goes back with the code."""
    submission_id, url = market.join(hit.external_id, participant)
    assert f"PROLIFIC_PID={participant}" in url and f"SESSION_ID={submission_id}" in url
    assignment = worker_services.accept_assignment(hit, participant, submission_id)
    worker_services.submit_assignment(assignment, partial=partial)
    market.complete(submission_id, prolific.study_completion_code(hit))
    return submission_id


def decide(assignment, state, feedback, capture):
    with capture(execute=True):
        previous = assignment.state
        assignment.transition(state)
        assignment.feedback = feedback
        assignment.save()
        signals.assignments_decided.send(sender=Assignment, decided={assignment.pk: previous},
                                         batch_ids={assignment.hit.batch_id}, actor=None)


def test_publishing_creates_and_publishes_one_study_per_hit(market):
    batch, hits = published(n_hits=2, assignments_per_hit=1)
    for hit in hits:
        study = market.studies[hit.external_id]
        assert study["status"] == "ACTIVE"
        assert study["internal_name"] == f"{batch.name}#{hit.index}"
        assert study["external_study_url"] == (
            f"https://annotate.example.org/task/{hit.pk}/"
            "?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}")
        assert study["reward"] == 150
        # 1.50 at a minimum of 9.00 an hour: at most 10 minutes.
        assert study["estimated_completion_time"] == 10
        assert study["total_available_places"] == hit.max_assignments
        assert study["completion_codes"][0]["code"] == prolific.study_completion_code(hit)
    assert hits[0].status == Hit.Status.PUBLISHED
    # Publishing again creates nothing.
    calls = len(market.calls)
    services.publish_batch(batch)
    assert len(market.calls) == calls


def test_an_estimate_paying_under_the_minimum_hourly_rate_is_refused_before_any_call(market):
    batch = prolific_batch(provider_config={"estimated_minutes": 20})
    HitFactory(batch=batch)
    with pytest.raises(ValidationError) as refused:
        services.publish_batch(batch)
    assert "provider_config.estimated_minutes" in refused.value.message_dict
    assert "4.50 an hour, under the batch's minimum hourly rate 9.00" in str(refused.value)
    assert market.calls == []


def test_a_study_created_by_an_interrupted_attempt_is_published_not_created_again(market):
    batch = prolific_batch()
    HitFactory(batch=batch)
    market.fail_next("transition-study", 503)
    with pytest.raises(prolific.ProlificUnavailable):
        services.publish_batch(batch)
    assert len(market.studies) == 1
    services.publish_batch(batch)
    assert len(market.studies) == 1
    assert next(iter(market.studies.values()))["status"] == "ACTIVE"


def test_sync_decisions_bonus_repost_messages_and_expiry_reach_prolific(market, django_capture_on_commit_callbacks):
    batch, hits = published(n_hits=2)
    good = work_and_return(market, hits[0], "PGOOD")
    bad = work_and_return(market, hits[1], "PSPAM")
    result = services.sync_batch(batch)
    assert (result.hits, result.created) == (2, 0)
    approved = Assignment.objects.get(external_id=good)
    rejected = Assignment.objects.get(external_id=bad)
    assert approved.state == rejected.state == Assignment.State.SUBMITTED

    decide(approved, Assignment.State.APPROVED, "", django_capture_on_commit_callbacks)
    decide(rejected, Assignment.State.REJECTED, "You selected 4 images; at least 30 are needed.",
           django_capture_on_commit_callbacks)
    assert market.submissions[good]["status"] == "APPROVED"
    assert market.submissions[bad]["status"] == "REJECTED"
    reject_call = next(body for op, id, body in market.calls if op == "transition-submission" and id == bad)
    assert reject_call["message"].startswith("You selected 4 images; at least 30 are needed.")
    assert reject_call["rejection_category"] == "LOW_EFFORT"

    with django_capture_on_commit_callbacks(execute=True):
        signals.hit_needs_repost.send(sender=Hit, hit=rejected.hit, count=1)
        signals.bonus_granted.send(sender=Assignment, assignment=approved, amount=Decimal("0.40"),
                                   reason="Careful clicks", actor=None)
    # Prolific gave the rejected place back itself: the study already has the place the re-post wants.
    assert market.studies[hits[1].external_id]["total_available_places"] == 1
    assert market.payments == [{"payment": market.payments[0]["payment"], "participant": "PGOOD", "amount": "0.40"}]
    assert Assignment.objects.get(pk=approved.pk).bonus_paid == Decimal("0.40")

    # A second re-post, beyond the released place, raises the study's places.
    assert services.repost_hit(Hit.objects.get(pk=hits[1].pk), 1, 3) is True
    assert market.studies[hits[1].external_id]["total_available_places"] == 2

    # Running every task again makes no market call that changes anything (and pays nothing twice).
    calls_before = [call for call in market.calls if call[0] != "get-study"]
    assert services.send_decision(approved) is False
    bonus_event = Event.objects.get(type=Event.Type.BONUS_REQUESTED, assignment=approved)
    assert services.pay_bonus(approved, Decimal("0.40"), "Careful clicks", bonus_event.data["request_key"]) is False
    assert [call for call in market.calls if call[0] != "get-study"] == calls_before
    assert len(market.payments) == 1

    assert services.notify_workers(batch, [approved.worker_id, rejected.worker_id], "Thanks",
                                   "Round 2 opens Monday.") == {}
    assert sorted((m["ids"], m["body"]) for m in market.messages) == [
        (["PGOOD"], "Thanks\n\nRound 2 opens Monday."), (["PSPAM"], "Thanks\n\nRound 2 opens Monday.")]
    assert services.expire_hit(hits[0]) is True
    assert market.studies[hits[0].external_id]["status"] == "PAUSED"
    operations = set(Event.objects.filter(type=Event.Type.MARKET_CALL).values_list("data__operation", flat=True))
    assert operations == {
        "create-study", "publish-study", "approve-submission", "reject-submission", "set-up-bonus", "pay-bonus",
        "increase-places", "message-participants", "pause-study",
    }


def test_a_decision_made_on_prolific_is_synced_and_never_sent_back(market, django_capture_on_commit_callbacks):
    batch, (hit,) = published()
    submission = work_and_return(market, hit, "PWEB")
    services.sync_batch(batch)
    assert "AWAITING REVIEW" in console_row(Assignment.objects.get(external_id=submission))
    market.submissions[submission]["status"] = "APPROVED"  # approved on Prolific's own site
    with django_capture_on_commit_callbacks(execute=True):
        services.sync_batch(batch)
    assignment = Assignment.objects.get(external_id=submission)
    assert assignment.state == Assignment.State.APPROVED
    assert services.last_market_decision(assignment) == Assignment.State.APPROVED
    assert not [call for call in market.calls if call[0] == "transition-submission"]


@pytest.mark.parametrize("status, state", [("RETURNED", Assignment.State.RETURNED),
                                           ("TIMED-OUT", Assignment.State.EXPIRED)])
def test_a_returned_or_timed_out_submission_frees_its_place(market, status, state):
    batch, (hit,) = published()
    submission_id, _ = market.join(hit.external_id, "PLEAVER")
    assignment = worker_services.accept_assignment(hit, "PLEAVER", submission_id)
    market._set_status(submission_id, status)
    services.sync_batch(batch)
    assignment.refresh_from_db()
    assert assignment.state == state
    assert Event.objects.filter(assignment=assignment, type__in=[Event.Type.RETURNED, Event.Type.EXPIRED]).exists()
    # The place is free here too: another participant takes it.
    other = worker_services.accept_assignment(hit, "PNEXT", "S2")
    assert other.state == Assignment.State.ACCEPTED


# --- the market's failures -------------------------------------------------------------------------------------------


def submitted_assignment(market):
    batch, (hit,) = published()
    submission = work_and_return(market, hit, "PFAIL")
    assignment = Assignment.objects.get(hit=hit)
    assignment.external_id = submission
    assignment.save()
    return assignment


def test_a_wrong_token_is_an_error_and_nothing_counts_as_sent(market, settings, django_capture_on_commit_callbacks):
    assignment = submitted_assignment(market)
    settings.PROLIFIC_API_TOKEN = "not-the-token"
    assignment.transition(Assignment.State.APPROVED)
    assignment.save()
    with pytest.raises(prolific.ProlificAuthError) as error:
        services.send_decision(assignment)
    assert error.value.status == 401
    assert services.last_market_decision(assignment) is None
    settings.PROLIFIC_API_TOKEN = "secret-token"
    assert services.send_decision(assignment) is True
    assert market.submissions[assignment.external_id]["status"] == "APPROVED"


def test_429_is_waited_out_and_retried(market, django_capture_on_commit_callbacks):
    assignment = submitted_assignment(market)
    market.fail_next("transition-submission", 429, times=2, retry_after=0)
    assignment.transition(Assignment.State.APPROVED)
    assignment.save()
    assert services.send_decision(assignment) is True
    assert market.submissions[assignment.external_id]["status"] == "APPROVED"
    assert [op for op, *_ in market.calls].count("transition-submission") == 3


def test_a_server_error_raises_for_the_task_to_retry(market):
    assignment = submitted_assignment(market)
    market.fail_next("transition-submission", 502)
    assignment.transition(Assignment.State.APPROVED)
    assignment.save()
    with pytest.raises(prolific.ProlificUnavailable):
        services.send_decision(assignment)
    assert services.last_market_decision(assignment) is None
    from annotator.providers import tasks

    assert prolific.ProlificUnavailable in tasks.send_decision.autoretry_for
    assert services.send_decision(assignment) is True


def test_a_refused_rejection_is_recorded_for_staff_and_sent_again_by_the_sweeper(market, settings):
    assignment = submitted_assignment(market)
    market.refuse_rejections("You have reached the rejection limit for this study.")
    assignment.transition(Assignment.State.REJECTED)
    assignment.feedback = "Only 4 of the 20 pages were done."
    assignment.reviewed_at = timezone.now()
    assignment.save()
    services.send_decision(assignment)
    refusal = Event.objects.get(assignment=assignment, type=Event.Type.MARKET_CALL, data__has_key="refused")
    assert refusal.data["refused"] == "You have reached the rejection limit for this study."
    assert market.submissions[assignment.external_id]["status"] == "AWAITING REVIEW"
    assert assignment in sweeper.undelivered_decisions(older_than=-1)
    # Staff see it in the review console, next to the assignment and on its page.
    assert "reject-submission refused: You have reached the rejection limit for this study." in console_row(assignment)
    detail = staff_client().get(f"/review/assignments/{assignment.pk}/").content.decode()
    assert "reject-submission refused: You have reached the rejection limit" in detail

    market.refuse_rejections(None)
    outcome = sweeper.sweep_work(older_than=-1, inline=True)
    assert outcome["decisions"] == 1
    assert market.submissions[assignment.external_id]["status"] == "REJECTED"
    assert assignment not in sweeper.undelivered_decisions(older_than=-1)
    assert "rejected: on the market" in console_row(assignment)


def staff_client():
    staff, _ = get_user_model().objects.get_or_create(username="console-staff", defaults={"is_staff": True})
    client = Client()
    client.force_login(staff)
    return client


def console_row(assignment):
    """The text of the assignment's row in the review console's batch page."""
    page = staff_client().get(f"/review/batches/{assignment.hit.batch_id}/").content.decode()
    row = page[page.index(f'data-assignment="{assignment.pk}"'):]
    return row[:row.index("</tr>")]


def test_every_request_body_is_checked_against_the_published_schema(market):
    import requests

    answer = requests.post(f"{market.url}/api/v1/studies/", json={"name": "x"},
                           headers={"Authorization": "Token secret-token"})
    assert answer.status_code == 400
    assert "description" in str(answer.json()["error"]["detail"])
    answer = requests.post(f"{market.url}/api/v1/studies/", json={}, headers={"Authorization": "Token nope"})
    assert answer.status_code == 401


def test_a_blocked_worker_is_kept_out_of_every_study_and_let_back_in(market, settings,
                                                                     django_capture_on_commit_callbacks):
    from annotator.review import services as review_services
    from devtools.fake_prolific import MarketError

    settings.PROLIFIC_BLOCKLIST_GROUP_ID = "blocklist-group"
    batch, (hit,) = published()
    assert market.studies[hit.external_id]["filters"] == [
        {"filter_id": "participant_group_blocklist", "selected_values": ["blocklist-group"]}]
    work_and_return(market, hit, "PBAD")
    worker = Assignment.objects.get(hit=hit).worker
    staff = get_user_model().objects.create_user("staff", password="x" * 12, is_staff=True)

    with django_capture_on_commit_callbacks(execute=True):
        review_services.block_worker(worker, staff, "clicked at random on every page")
    assert market.participant_groups["blocklist-group"] == {"PBAD"}
    _, (next_hit,) = published()
    with pytest.raises(MarketError, match="not eligible"):
        market.join(next_hit.external_id, "PBAD")
    assert Event.objects.get(worker=worker, type=Event.Type.MARKET_CALL).data["operation"] == "block-participant"

    with django_capture_on_commit_callbacks(execute=True):
        review_services.unblock_worker(worker, staff)
    assert market.participant_groups["blocklist-group"] == set()
    market.join(next_hit.external_id, "PBAD")


def test_the_demo_crowd_works_a_batch_on_a_fake_that_keeps_its_state(settings, tmp_path,
                                                                     django_capture_on_commit_callbacks):
    from devtools import prolific_crowd
    from tests.factories import make_imagenet_hit

    settings.PUBLIC_BASE_URL = "https://annotate.example.org"
    state = tmp_path / "fake-prolific.json"
    hits = [make_imagenet_hit(n_pages=2, provider=Provider.PROLIFIC, status="draft") for _ in range(2)]
    Hit.objects.filter(pk__in=[h.pk for h in hits]).update(status=Hit.Status.PENDING)
    with FakeProlific(token="demo-token", state_file=state) as fake:
        settings.PROLIFIC_API_URL, settings.PROLIFIC_API_TOKEN = fake.url, "demo-token"
        for hit in hits:
            services.publish_batch(hit.batch)
        with django_capture_on_commit_callbacks(execute=True):
            outcomes = prolific_crowd.run(hits[0].batch.name, fake.url, hits=1, out=lambda line: None)
        assert [o.status for o in outcomes] == ["submitted"]
        # Worked once: a second run has nothing left to do.
        assert prolific_crowd.run(hits[0].batch.name, fake.url, hits=1, out=lambda line: None) == []
    assignment = Assignment.objects.get(hit=hits[0])
    assert assignment.state == Assignment.State.APPROVED  # diligent, decided by the rules
    with FakeProlific(token="demo-token", state_file=state) as restarted:
        assert restarted.submissions[assignment.external_id]["status"] == "APPROVED"
        assert len(restarted.studies) == 2


def test_the_task_page_sends_the_participant_back_to_prolific_and_refuses_another_study(market):
    from tests.factories import make_imagenet_hit

    hit = make_imagenet_hit(n_pages=1, provider=Provider.PROLIFIC, status="draft")
    Hit.objects.filter(pk=hit.pk).update(status=Hit.Status.PENDING)
    services.publish_batch(hit.batch)
    hit.refresh_from_db()
    submission_id, url = market.join(hit.external_id, "PPAGE")
    client = Client()
    wrong_study = client.get(url.removeprefix("https://annotate.example.org").replace(hit.external_id, "otherstudy"))
    assert wrong_study.status_code == 400 and b"STUDY_ID" in wrong_study.content
    page = client.get(url.removeprefix("https://annotate.example.org"))
    assert page.status_code == 200
    assignment = Assignment.objects.get(hit=hit, worker__external_id="PPAGE")
    assert assignment.external_id == submission_id
    from annotator.worker import selectors

    worker_services.submit_assignment(assignment, partial=True)
    answer = selectors.submit_answer(Assignment.objects.get(pk=assignment.pk))
    code = prolific.study_completion_code(hit)
    assert answer["completion_code"] == code
    assert answer["redirect_url"] == f"https://app.prolific.com/submissions/complete?cc={code}"
    assert selectors.assignment_progress(Assignment.objects.get(pk=assignment.pk))["completion_code"] == code


def test_sync_follows_every_page_of_submissions(market):
    batch = prolific_batch()
    HitFactory(batch=batch, max_assignments=3)
    services.publish_batch(batch)
    hit = Hit.objects.get(batch=batch)
    for participant in ("P1", "P2", "P3"):  # the fake answers 2 submissions a page
        submission_id, _ = market.join(hit.external_id, participant)
        market.submissions[submission_id]["status"] = "AWAITING REVIEW"  # submitted on Prolific, never on our page
    result = services.sync_batch(batch)
    assert result.created == 3
    assert sorted(Assignment.objects.filter(hit=hit).values_list("worker__external_id", "state")) == [
        ("P1", "submitted"), ("P2", "submitted"), ("P3", "submitted")]
    assert [op for op, *_ in market.calls].count("list-submissions") == 2


def test_a_requester_messages_the_batchs_participants_from_the_command_line(market):
    import io

    from django.core.management.base import CommandError

    batch, (hit,) = published()
    work_and_return(market, hit, "PMSG")
    out = io.StringIO()
    call_command("message_workers", batch.name, "--subject", "Round 2", "--message", "Opens Monday at 9.", stdout=out)
    assert "1 of 1 workers reached" in out.getvalue()
    assert market.messages == [{"ids": ["PMSG"], "body": "Round 2\n\nOpens Monday at 9.", "study_id": hit.external_id}]
    # The same message again sends nothing; a worker who never worked on the batch is named.
    call_command("message_workers", batch.name, "--subject", "Round 2", "--message", "Opens Monday at 9.", stdout=out)
    assert len(market.messages) == 1
    with pytest.raises(CommandError, match="--worker: no work on batch .* from PSTRANGER"):
        call_command("message_workers", batch.name, "--subject", "s", "--message", "m", "--worker", "PSTRANGER")
