"""The mturk provider against botocore's own service model (Stubber checks every request's shape and our values)."""
import hashlib
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from botocore.exceptions import ParamValidationError
from botocore.stub import Stubber
from django.core.exceptions import ImproperlyConfigured, ValidationError

from annotator import events, signals
from annotator.models import Assignment, Event, Hit, Provider
from annotator.providers import mturk, services
from tests.factories import AssignmentFactory, BatchFactory, HitFactory, WorkerFactory
from tests.markets import use_mturk_client

pytestmark = pytest.mark.django_db

HIT_TYPE_ID = "3HITTYPE0000000000000000000001"
QUESTION_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2006-07-14/ExternalQuestion.xsd"

# What MTurk stores from the task page's externalSubmit form.
ANSWER_XML = (
    '<?xml version="1.0" encoding="ASCII"?><QuestionFormAnswers xmlns="http://mechanicalturk.amazonaws.com/'
    'AWSMechanicalTurkDataSchemas/2005-10-01/QuestionFormAnswers.xsd"><Answer><QuestionIdentifier>completion_code'
    "</QuestionIdentifier><FreeText>9F3A00C2D1E4B7A8</FreeText></Answer></QuestionFormAnswers>"
)


@pytest.fixture
def client(monkeypatch, settings):
    return use_mturk_client(monkeypatch, settings)


@pytest.fixture
def stubber(client):
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


@pytest.fixture
def batch():
    return BatchFactory(provider=Provider.MTURK, reward=Decimal("1.50"),
                        provider_config={"title": "Find the tench", "frame_height": 800})


def mturk_assignment(state=Assignment.State.SUBMITTED, **kwargs):
    hit = HitFactory(batch=BatchFactory(provider=Provider.MTURK), external_id="3HIT00000000000000000000000001",
                     status=Hit.Status.PUBLISHED)
    worker = WorkerFactory(provider=Provider.MTURK, external_id="A1WORKER0000001")
    return AssignmentFactory(hit=hit, worker=worker, state=state, external_id="3ASG00000000000000000000000001",
                             **kwargs)


def token(key):
    return hashlib.sha256(key.encode()).hexdigest()[:64]


def test_publish_creates_the_hit_type_and_external_question_hits(batch, stubber):
    hits = [HitFactory(batch=batch, index=i, max_assignments=1) for i in range(2)]
    stubber.add_response("create_hit_type", {"HITTypeId": HIT_TYPE_ID}, {
        "AutoApprovalDelayInSeconds": 259200,
        "AssignmentDurationInSeconds": 3600,
        "Reward": "1.50",
        "Title": "Find the tench",
        "Keywords": "image, labeling, annotation",
        "Description": "Look at images and mark what they show.",
        "QualificationRequirements": [
            {"QualificationTypeId": "000000000000000000L0", "Comparator": "GreaterThanOrEqualTo",
             "IntegerValues": [90], "ActionsGuarded": "Accept"},
            {"QualificationTypeId": "00000000000000000071", "Comparator": "EqualTo",
             "LocaleValues": [{"Country": "US"}], "ActionsGuarded": "Accept"},
        ],
    })
    for i, hit in enumerate(hits):
        question = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<ExternalQuestion xmlns="{QUESTION_NS}">'
            f"<ExternalURL>https://annotate.example.org/task/{hit.pk}/</ExternalURL>"
            "<FrameHeight>800</FrameHeight></ExternalQuestion>"
        )
        stubber.add_response("create_hit_with_hit_type", {"HIT": {"HITId": f"3HIT0000000000000000000000000{i}"}}, {
            "HITTypeId": HIT_TYPE_ID, "MaxAssignments": 1, "LifetimeInSeconds": 604800, "Question": question,
            "RequesterAnnotation": f"{batch.name}#{hit.index}", "UniqueRequestToken": token(f"publish:{hit.pk}"),
        })

    references = services.publish_batch(batch)

    assert references == {0: "3HIT00000000000000000000000000", 1: "3HIT00000000000000000000000001"}
    assert set(Hit.objects.filter(batch=batch).values_list("status", flat=True)) == {Hit.Status.PUBLISHED}
    operations = list(Event.objects.filter(batch=batch, type=Event.Type.MARKET_CALL)
                      .values_list("data__operation", flat=True))
    assert operations == ["CreateHITType", "CreateHITWithHITType", "CreateHITWithHITType"]
    # Publishing again touches nothing: every HIT is already on the market.
    assert services.publish_batch(batch) == references


def test_a_request_that_differs_from_the_expected_one_fails(batch, client):
    HitFactory(batch=batch)
    batch.reward = Decimal("2.00")
    with Stubber(client) as stub:
        stub.add_response("create_hit_type", {"HITTypeId": HIT_TYPE_ID},
                          {**mturk.hit_type_params(batch), "Reward": "1.50"})
        with pytest.raises(AssertionError, match="Reward"):
            services.publish_batch(batch)


def test_the_service_model_refuses_a_malformed_request(batch, client):
    with Stubber(client) as stub:
        stub.add_response("create_hit_type", {"HITTypeId": HIT_TYPE_ID})
        with pytest.raises(ParamValidationError, match="Reward"):
            client.create_hit_type(**{**mturk.hit_type_params(batch), "Reward": 1.5})


def test_publish_refuses_a_plain_http_task_url_before_any_market_call(batch, settings, stubber):
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8000"
    HitFactory(batch=batch)
    with pytest.raises(ImproperlyConfigured, match="https"):
        services.publish_batch(batch)
    assert not Hit.objects.filter(batch=batch, status=Hit.Status.PUBLISHED).exists()


def test_sync_pages_through_assignments_and_mirrors_them(batch, stubber):
    hit = HitFactory(batch=batch, external_id="3HIT00000000000000000000000001", status=Hit.Status.PUBLISHED)
    known_worker = WorkerFactory(provider=Provider.MTURK, external_id="A1KNOWN")
    in_progress = AssignmentFactory(hit=hit, worker=known_worker, state=Assignment.State.IN_PROGRESS)
    submitted_at = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
    stubber.add_response("list_assignments_for_hit", {
        "NextToken": "page2", "NumResults": 1,
        "Assignments": [{"AssignmentId": "3ASG1", "WorkerId": "A1KNOWN", "HITId": hit.external_id,
                         "AssignmentStatus": "Submitted", "SubmitTime": submitted_at, "Answer": ANSWER_XML}],
    }, {"HITId": hit.external_id, "MaxResults": 100})
    stubber.add_response("list_assignments_for_hit", {
        "NumResults": 2,
        "Assignments": [{"AssignmentId": "3ASG2", "WorkerId": "A1NEW", "HITId": hit.external_id,
                         "AssignmentStatus": "Approved", "SubmitTime": submitted_at,
                         "ApprovalTime": submitted_at},
                        {"AssignmentId": "3ASG3", "WorkerId": "A1NEVERONOURPAGE", "HITId": hit.external_id,
                         "AssignmentStatus": "Submitted", "SubmitTime": submitted_at}],
    }, {"HITId": hit.external_id, "MaxResults": 100, "NextToken": "page2"})
    submitted = []
    signals.assignment_submitted.connect(lambda sender, assignment, **kw: submitted.append(assignment.external_id),
                                         weak=False, dispatch_uid="test-sync")
    try:
        result = services.sync_batch(batch)
    finally:
        signals.assignment_submitted.disconnect(dispatch_uid="test-sync")

    assert (result.hits, result.created, result.updated) == (1, 2, 1)
    in_progress.refresh_from_db()
    assert (in_progress.external_id, in_progress.state) == ("3ASG1", Assignment.State.SUBMITTED)
    auto_approved = Assignment.objects.get(external_id="3ASG2")
    assert auto_approved.state == Assignment.State.APPROVED
    assert auto_approved.worker.provider == Provider.MTURK
    # Both submissions go to review, including the one we have no data for (rule 4 decides it).
    assert sorted(submitted) == ["3ASG1", "3ASG3"]
    synced = Event.objects.get(assignment=in_progress, type=Event.Type.SYNCED)
    assert synced.data["claimed_completion_code"] == "9F3A00C2D1E4B7A8"
    # The market already approved 3ASG2, so no decision is sent for it.
    assert events.last_market_decision(auto_approved) == Assignment.State.APPROVED
    assert services.send_decision(auto_approved) is False


def test_sync_sends_a_decision_whose_task_was_lost(stubber):
    assignment = mturk_assignment(Assignment.State.REJECTED, feedback="Only 2 of 10 pages were completed.")
    hit = assignment.hit
    stubber.add_response("list_assignments_for_hit", {"NumResults": 1, "Assignments": [{
        "AssignmentId": assignment.external_id, "WorkerId": assignment.worker.external_id, "HITId": hit.external_id,
        "AssignmentStatus": "Submitted"}]}, {"HITId": hit.external_id, "MaxResults": 100})
    stubber.add_response("reject_assignment", {}, {
        "AssignmentId": assignment.external_id, "RequesterFeedback": "Only 2 of 10 pages were completed."})
    assert services.sync_batch(hit.batch).decisions_sent == 1
    assignment.refresh_from_db()
    assert assignment.state == Assignment.State.REJECTED


def test_approve_is_sent_once_however_often_the_task_runs(stubber):
    assignment = mturk_assignment(Assignment.State.APPROVED, feedback="Thank you, careful work.")
    stubber.add_response("approve_assignment", {}, {
        "AssignmentId": assignment.external_id, "RequesterFeedback": "Thank you, careful work.",
    })
    assert services.send_decision(assignment) is True
    assert services.send_decision(assignment) is False
    assert Event.objects.filter(assignment=assignment, data__operation="ApproveAssignment").count() == 1


def test_rejection_feedback_is_capped_at_1024_characters(stubber):
    long_feedback = "Recall 0.21 < 0.333 on 360 in-class images. " * 50
    assignment = mturk_assignment(Assignment.State.REJECTED, feedback=long_feedback)
    capped = long_feedback.strip()[:1023] + "\u2026"
    stubber.add_response("reject_assignment", {}, {
        "AssignmentId": assignment.external_id, "RequesterFeedback": capped,
    })
    assert services.send_decision(assignment) is True
    assert len(capped) == 1024


def test_an_overridden_rejection_is_approved_with_override(stubber):
    assignment = mturk_assignment(Assignment.State.REJECTED, feedback="Too few selections.")
    stubber.add_response("reject_assignment", {}, {
        "AssignmentId": assignment.external_id, "RequesterFeedback": "Too few selections.",
    })
    services.send_decision(assignment)
    assignment.state, assignment.feedback = Assignment.State.APPROVED, ""
    assignment.save()
    stubber.add_response("approve_assignment", {}, {
        "AssignmentId": assignment.external_id, "OverrideRejection": True,
    })
    assert services.send_decision(assignment) is True


def test_bonus_is_paid_once_with_a_token_from_our_keys(stubber):
    assignment = mturk_assignment(Assignment.State.APPROVED)
    key = f"bonus:{assignment.uuid}:grant-1"
    stubber.add_response("send_bonus", {}, {
        "WorkerId": "A1WORKER0000001", "BonusAmount": "0.75", "AssignmentId": assignment.external_id,
        "Reason": "Excellent clicks", "UniqueRequestToken": token(key),
    })
    assert services.pay_bonus(assignment, "0.75", "Excellent clicks", "grant-1") is True
    assert services.pay_bonus(assignment, "0.75", "Excellent clicks", "grant-1") is False
    assignment.refresh_from_db()
    assert assignment.bonus_paid == Decimal("0.75")
    assert Event.objects.get(assignment=assignment, type=Event.Type.BONUSED).data["key"] == key


def test_a_bonus_the_market_already_has_counts_as_paid(stubber):
    assignment = mturk_assignment(Assignment.State.APPROVED)
    stubber.add_client_error("send_bonus", service_error_code="RequestError",
                             service_message="The UniqueRequestToken was already used (request 42)")
    assert services.pay_bonus(assignment, "1.00", "Thanks", "grant-9") is True
    assert Event.objects.filter(assignment=assignment, type=Event.Type.BONUSED).count() == 1


def test_bonus_amount_must_be_positive():
    assignment = mturk_assignment(Assignment.State.APPROVED)
    with pytest.raises(ValidationError, match="amount"):
        services.pay_bonus(assignment, "0", "Thanks", "grant-1")
    assert not Event.objects.filter(type=Event.Type.BONUSED).exists()


def test_repost_adds_assignments_once_per_target(stubber):
    hit = mturk_assignment(Assignment.State.REJECTED).hit
    key = f"repost:{hit.pk}:2"
    stubber.add_response("create_additional_assignments_for_hit", {}, {
        "HITId": hit.external_id, "NumberOfAdditionalAssignments": 1, "UniqueRequestToken": token(key),
    })
    assert services.repost_hit(hit, 1, 2) is True
    assert services.repost_hit(hit, 1, 2) is False
    hit.refresh_from_db()
    assert hit.max_assignments == 2


def test_expire_sets_a_past_expiry_once(stubber):
    hit = mturk_assignment().hit
    stubber.add_response("update_expiration_for_hit", {}, {"HITId": hit.external_id, "ExpireAt": mturk.EXPIRE_NOW})
    assert services.expire_hit(hit) is True
    assert services.expire_hit(hit) is False
    hit.refresh_from_db()
    assert hit.status == Hit.Status.EXPIRED


def test_notify_sends_100_workers_per_call_and_resumes_after_a_failure(batch, stubber):
    workers = [WorkerFactory(provider=Provider.MTURK, external_id=f"A{i:05d}") for i in range(250)]
    ids = sorted(w.external_id for w in workers)
    worker_pks = [w.pk for w in workers]
    stubber.add_response("notify_workers", {"NotifyWorkersFailureStatuses": []}, {
        "Subject": "New HITs", "MessageText": "More images are waiting.", "WorkerIds": ids[:100]})
    stubber.add_client_error("notify_workers", service_error_code="ServiceFault", service_message="try again")
    with pytest.raises(Exception, match="try again"):
        services.notify_workers(batch, worker_pks, "New HITs", "More images are waiting.")
    # The retry skips the first hundred, who already have the message.
    stubber.add_response("notify_workers", {"NotifyWorkersFailureStatuses": []}, {
        "Subject": "New HITs", "MessageText": "More images are waiting.", "WorkerIds": ids[100:200]})
    stubber.add_response("notify_workers", {"NotifyWorkersFailureStatuses": [
        {"NotifyWorkersFailureCode": "HardFailure", "NotifyWorkersFailureMessage": "blocked you", "WorkerId": "A00249"}
    ]}, {"Subject": "New HITs", "MessageText": "More images are waiting.", "WorkerIds": ids[200:]})
    failures = services.notify_workers(batch, worker_pks, "New HITs", "More images are waiting.")
    assert failures == {"A00249": "blocked you"}
    assert services.notify_workers(batch, worker_pks, "New HITs", "More images are waiting.") == {}


def test_client_endpoint_follows_the_settings(settings, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings.MTURK_ENDPOINT_URL = None
    settings.MTURK_SANDBOX = True
    assert mturk.make_client().meta.endpoint_url == "https://mturk-requester-sandbox.us-east-1.amazonaws.com"
    settings.MTURK_SANDBOX = False
    assert mturk.make_client().meta.endpoint_url == "https://mturk-requester.us-east-1.amazonaws.com"
    settings.MTURK_ENDPOINT_URL = "http://127.0.0.1:9999"
    assert mturk.make_client().meta.endpoint_url == "http://127.0.0.1:9999"


def test_the_market_gets_the_batchs_assignment_duration_the_one_after_which_our_assignments_expire():
    batch = BatchFactory(provider=Provider.MTURK, provider_config={"assignment_duration": 900})
    assert mturk.hit_type_params(batch)["AssignmentDurationInSeconds"] == 900
    assert mturk.hit_type_params(BatchFactory(provider=Provider.MTURK))["AssignmentDurationInSeconds"] == 3600


def test_blocking_and_unblocking_a_worker_reach_the_market(stubber, django_capture_on_commit_callbacks):
    from django.contrib.auth import get_user_model

    from annotator.review import services as review_services

    worker = WorkerFactory(provider=Provider.MTURK, external_id="A1SPAMMER0000001")
    staff = get_user_model().objects.create_user("staff", password="x" * 12, is_staff=True)
    stubber.add_response("create_worker_block", {}, {"WorkerId": "A1SPAMMER0000001", "Reason": "random clicks"})
    stubber.add_response("delete_worker_block", {}, {"WorkerId": "A1SPAMMER0000001",
                                                     "Reason": "unblocked by the requester"})
    with django_capture_on_commit_callbacks(execute=True):
        review_services.block_worker(worker, staff, "random clicks")
    with django_capture_on_commit_callbacks(execute=True):
        review_services.unblock_worker(worker, staff)
    assert list(Event.objects.filter(worker=worker, type=Event.Type.MARKET_CALL)
                .values_list("data__operation", flat=True)) == ["CreateWorkerBlock", "DeleteWorkerBlock"]


def test_a_decision_the_market_refuses_is_recorded_for_staff_and_swept_again(stubber):
    from django.utils import timezone

    from annotator import sweeper
    from annotator.review import selectors

    assignment = mturk_assignment(Assignment.State.REJECTED, feedback="Only 2 of 10 pages were completed.",
                                  reviewed_at=timezone.now())
    stubber.add_client_error("reject_assignment", service_error_code="RequestError",
                             service_message="This operation can be called with a status of: Submitted")
    assert services.send_decision(assignment) is True
    assert selectors.market_states([assignment.pk])[assignment.pk] == (
        "RejectAssignment refused: This operation can be called with a status of: Submitted")
    assert events.last_market_decision(assignment) is None
    assert assignment in sweeper.undelivered_decisions(older_than=-1)
