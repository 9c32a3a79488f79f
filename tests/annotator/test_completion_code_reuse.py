"""Reused and forged completion codes (issue 9, abuse): a code pays for its own assignment once, and nothing else.

The only place our codes are checked is review's rule 4: the code an MTurk worker typed into the HIT reaches us in
the market's Answer XML at sync and is compared with the HMAC of that assignment. The link provider does not check
our codes at all (the market checks its own study code in the completion URL), so there the tests show that a
second submit or a second entry can never produce a second code or move the payment to another market assignment.
"""
import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from botocore.stub import Stubber

from annotator import models, rules
from annotator.providers import mturk
from annotator.review import services as review_services
from annotator.signals import assignment_submitted
from annotator.worker import services
from annotator.worker.tokens import completion_code, make_token
from tests.annotator.test_worker_api import call, save_all_pages
from tests.factories import make_imagenet_hit
from tests.markets import use_mturk_client

pytestmark = pytest.mark.django_db

ANSWER_XML = (
    '<?xml version="1.0" encoding="ASCII"?><QuestionFormAnswers xmlns="http://mechanicalturk.amazonaws.com/'
    'AWSMechanicalTurkDataSchemas/2005-10-01/QuestionFormAnswers.xsd"><Answer><QuestionIdentifier>completion_code'
    "</QuestionIdentifier><FreeText>{code}</FreeText></Answer></QuestionFormAnswers>"
)


def submitted_through_the_api(client, hit, worker_id, market_assignment_id):
    assignment = services.accept_assignment(hit, worker_id, market_assignment_id, "https://workersandbox.mturk.com/")
    token = make_token(assignment)
    save_all_pages(client, hit, token)
    answer = call(client, token, "POST", "submit", {})
    assert answer.status_code == 200, answer.content
    assignment.refresh_from_db()
    return assignment, token, answer.json()["completion_code"]


def mturk_hit_for_two(external_id):
    """A one-page MTurk HIT that two workers may take, under the id the market gave it."""
    hit = make_imagenet_hit(n_pages=1, provider=models.Provider.MTURK)
    hit.external_id = external_id
    hit.max_assignments = 2
    hit.save()
    return hit


def forged_code(assignment_uuid):
    """Right shape (16 upper-case hex, the same message), keyed with a secret that is not ours."""
    message = f"completion:{assignment_uuid}".encode()
    return hmac.new(b"a-guessed-secret", message, hashlib.sha256).hexdigest()[:16].upper()


@pytest.fixture
def mturk_client(monkeypatch, settings):
    with Stubber(use_mturk_client(monkeypatch, settings)) as stub:
        yield stub
        stub.assert_no_pending_responses()


def market_assignment(assignment_id, worker_id, hit, code):
    return {
        "AssignmentId": assignment_id, "WorkerId": worker_id, "HITId": hit.external_id,
        "AssignmentStatus": "Submitted", "SubmitTime": datetime(2026, 9, 1, 12, 0, tzinfo=UTC),
        "Answer": ANSWER_XML.format(code=code),
    }


def rules_fired(assignment):
    decision = review_services.auto_review(assignment.pk)
    assignment.refresh_from_db()
    return assignment.state, [reason.rule for reason in decision.reasons]


@pytest.mark.parametrize("claim", ["own", "reused", "forged"])
def test_a_code_passes_only_for_the_assignment_it_was_issued_to(client, mturk_client, claim):
    """Worker A does the HIT and gets a code; worker B never opens our page and hands A's (or a forged) code to the
    market. At sync the code is read from B's Answer XML; rule 4 refuses it unless it is B's own."""
    hit = mturk_hit_for_two("3HITREPLAY0000000000000000001")
    first, _, first_code = submitted_through_the_api(client, hit, "A1HONEST", "3ASGHONEST")
    # B exists on our side only through the market (its uuid is fixed once the sync creates it): sync once with
    # no code to learn its uuid, then again with the claim under test.
    mturk_client.add_response("list_assignments_for_hit", {"NumResults": 1, "Assignments": [
        market_assignment("3ASGREPLAY", "A1REPLAYER", hit, ""),
    ]}, {"HITId": hit.external_id, "MaxResults": 100})
    mturk.MTurkProvider().sync(hit.batch)
    second = models.Assignment.objects.get(external_id="3ASGREPLAY")
    claimed = {"own": completion_code(second.uuid), "reused": first_code, "forged": forged_code(second.uuid)}[claim]
    assert claimed.isupper() and len(claimed) == 16
    models.Event.objects.create(type=models.Event.Type.SYNCED, assignment=second, data={
        "market_status": "Submitted", "claimed_completion_code": mturk.claimed_completion_code(
            market_assignment("3ASGREPLAY", "A1REPLAYER", hit, claimed)),
    })

    assert rules.check_completion_code(second, claimed) is (claim == "own")
    state, fired = rules_fired(second)
    # B has no annotation either way (rule "pages_completed" rejects it); the code decides only rule 4's reason.
    assert state == models.Assignment.State.REJECTED
    assert ("no_annotation" in fired) is (claim != "own")
    # A's own work and code are untouched by B's reuse of them.
    first.refresh_from_db()
    assert first.completion_code == first_code and first.external_id == "3ASGHONEST"


def test_a_reused_code_in_the_market_answer_is_refused_at_sync(client, mturk_client):
    """The whole market path: both assignments come back from ListAssignmentsForHIT with A's code in the Answer."""
    hit = mturk_hit_for_two("3HITREPLAY0000000000000000002")
    first, _, first_code = submitted_through_the_api(client, hit, "A1HONEST", "3ASGHONEST")
    mturk_client.add_response("list_assignments_for_hit", {"NumResults": 2, "Assignments": [
        market_assignment("3ASGHONEST", "A1HONEST", hit, first_code),
        market_assignment("3ASGREPLAY", "A1REPLAYER", hit, first_code),
    ]}, {"HITId": hit.external_id, "MaxResults": 100})
    mturk.MTurkProvider().sync(hit.batch)
    second = models.Assignment.objects.get(external_id="3ASGREPLAY")

    assert rules_fired(second) == (models.Assignment.State.REJECTED, ["selections", "pages_completed", "no_annotation"])
    state, fired = rules_fired(first)
    assert "no_annotation" not in fired and "pages_completed" not in fired


def test_submitting_again_after_the_decision_gives_the_same_code_and_changes_nothing(client):
    hit = make_imagenet_hit(n_pages=1)
    assignment, token, code = submitted_through_the_api(client, hit, "W1", "SESSION-1")
    review_services.auto_review(assignment.pk)
    assignment.refresh_from_db()
    decided_state, reviewed_at = assignment.state, assignment.reviewed_at
    assert decided_state in (models.Assignment.State.APPROVED, models.Assignment.State.REJECTED)
    events_before = models.Event.objects.count()
    received = []

    def receiver(sender, assignment, **kwargs):
        received.append(assignment.pk)

    assignment_submitted.connect(receiver)
    try:
        answers = [call(client, token, "POST", "submit", body) for body in ({}, {"partial": True}, {})]
    finally:
        assignment_submitted.disconnect(receiver)

    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert {answer.json()["completion_code"] for answer in answers} == {code}
    assignment.refresh_from_db()
    assert (assignment.state, assignment.reviewed_at, assignment.completion_code) == (decided_state, reviewed_at, code)
    assert received == [], "a second submit went to review (and so to the market) again"
    assert models.Event.objects.count() == events_before


def test_a_submit_body_cannot_choose_the_code():
    """The submit body has no place for a code: an unknown field is ignored or refused, never echoed back."""
    from django.test import Client

    client = Client()
    hit = make_imagenet_hit(n_pages=1)
    other_hit = make_imagenet_hit(n_pages=1)
    _, _, first_code = submitted_through_the_api(client, hit, "W1", "S1")
    second = services.accept_assignment(other_hit, "W2", "S2")
    token = make_token(second)
    save_all_pages(client, other_hit, token)
    answer = call(client, token, "POST", "submit", {"completion_code": first_code, "partial": False})
    assert answer.status_code in (200, 400)
    if answer.status_code == 200:
        assert answer.json()["completion_code"] == completion_code(second.uuid) != first_code


def test_entering_again_with_another_market_assignment_keeps_the_code_on_the_first(client):
    """After submitting, the task URL is opened again with a made-up assignmentId / a new study session. Without
    the token of the work (another browser) that gives nothing: no token, no code. The browser that kept the token
    resumes the same assignment and sees the same code, and the decision still goes to the market assignment the
    work was submitted under (else the first would never be paid or rejected and the second paid instead)."""
    hit = make_imagenet_hit(n_pages=1, provider=models.Provider.MTURK)
    assignment, kept_token, code = submitted_through_the_api(client, hit, "A1WORKER", "3ASGFIRST")

    response = client.get(f"/task/{hit.pk}/", {
        "workerId": "A1WORKER", "assignmentId": "3ASGSECOND", "hitId": hit.external_id,
        "turkSubmitTo": "https://evil.example.com",
    })
    assert response.status_code == 409
    bootstrap = response.context["bootstrap"]
    assert bootstrap["token"] is None and code.encode() not in response.content
    resumed = call(client, kept_token, "POST", "resume", {"entry": bootstrap["resume"]["entry"]})
    assert resumed.status_code == 200, resumed.content
    token = resumed.json()["token"]
    assert call(client, token, "GET", "assignment").json()["completion_code"] == code
    assert models.Assignment.objects.filter(hit=hit).count() == 1
    assignment.refresh_from_db()
    assert assignment.external_id == "3ASGFIRST"
    assert assignment.turk_submit_to == "https://workersandbox.mturk.com/"
    answer = call(client, token, "POST", "submit", {}).json()
    assert answer["completion_code"] == code and answer["market_assignment_id"] == "3ASGFIRST"
    assert answer["turk_submit_to"] == "https://workersandbox.mturk.com/mturk/externalSubmit"
