"""A whole collection round on Prolific without a CSV, against the local fake Prolific: the webhook set up as Prolific
documents it, the batch published from the admin, participants who take a place on Prolific and work through the
real task pages and worker API, the automatic review, the decisions, the re-post and a bonus reaching Prolific, and
Prolific's webhook calls coming back. Every market call runs in a real Celery worker process (tests/workers.py)."""
import io
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from annotator.models import Assignment, Batch, Event, Hit, MarketNotification, Provider
from annotator.providers import prolific
from devtools.fake_prolific import FakeProlific
from devtools.simulator import PROFILES, InProcessTransport, load_ground_truth, simulate_assignment
from tests import factories
from tests.workers import WorkerProcess, broker_kinds, poll

pytestmark = [pytest.mark.celery_worker, pytest.mark.slow]

TOKEN = "lifecycle-token"
PUBLIC_BASE_URL = "https://annotate.example.org"


@pytest.fixture(scope="module")
def fake_prolific():
    """Started before the worker: its URL is in the worker's environment."""
    with FakeProlific(token=TOKEN) as market:
        yield market


@pytest.fixture(scope="module", params=broker_kinds())
def celery_worker_process(request, django_db_setup, tmp_path_factory, fake_prolific):
    process = WorkerProcess(tmp_path_factory.mktemp(f"worker-{request.param}"), broker=request.param, extra_env={
        "PROLIFIC_API_URL": fake_prolific.url, "PROLIFIC_API_TOKEN": TOKEN, "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
    })
    yield process
    process.stop()


def test_a_collection_round_on_prolific_without_a_csv(celery_worker, live_server, fake_prolific, settings):
    market = fake_prolific
    market.reset()  # the server outlives one test (the worker has its URL); its state does not
    settings.PUBLIC_BASE_URL = PUBLIC_BASE_URL
    settings.PROLIFIC_API_URL, settings.PROLIFIC_API_TOKEN = market.url, TOKEN
    staff = get_user_model().objects.create_user("staff", password="x" * 12, is_staff=True, is_superuser=True)
    console = Client()
    console.force_login(staff)

    # The requester subscribes our webhook (secret, subscription, confirmation) and sets the secret it prints.
    printed = io.StringIO()
    call_command("prolific_webhook", "--workspace", "workspace-1", "--target-url",
                 f"{live_server.url}/api/markets/prolific/webhook/", stdout=printed)
    settings.PROLIFIC_WEBHOOK_SECRET = printed.getvalue().split("PROLIFIC_WEBHOOK_SECRET=")[1].strip()

    hit = factories.make_imagenet_hit(n_pages=2, provider=Provider.PROLIFIC, status=Batch.Status.DRAFT,
                                      reward=Decimal("1.50"), min_hourly_wage=Decimal("9.00"))
    Hit.objects.filter(pk=hit.pk).update(status=Hit.Status.PENDING)
    batch = hit.batch

    # Publishing from the admin: the worker creates the study on Prolific and publishes it.
    console.post("/admin/annotator/batch/", {"action": "publish_on_market", "_selected_action": [batch.pk]})
    hit = poll(lambda: Hit.objects.get(pk=hit.pk), lambda h: h.status == Hit.Status.PUBLISHED, 90, celery_worker,
               "the study on Prolific")
    study = market.studies[hit.external_id]
    assert study["status"] == "ACTIVE" and study["total_available_places"] == 1
    assert study["reward"] == 150 and study["estimated_completion_time"] == 10
    truth = load_ground_truth([hit])

    def participant(participant_id, profile):
        """Takes the study's place on Prolific, works through our task page, goes back to Prolific with the code."""
        submission_id, url = market.join(hit.external_id, participant_id)
        assert url.startswith(f"{PUBLIC_BASE_URL}/task/{hit.pk}/?PROLIFIC_PID={participant_id}")
        outcome = simulate_assignment(InProcessTransport(), batch, hit, truth, participant_id, PROFILES[profile],
                                      seed=1, market_assignment_id=submission_id)
        assert outcome.status == "submitted", outcome.error
        assert outcome.completion_code == prolific.study_completion_code(hit)
        market.complete(submission_id, outcome.completion_code)  # Prolific calls our webhook: AWAITING REVIEW
        return submission_id

    # A spammer: the worker's automatic review rejects it, and the rejection reaches Prolific.
    spam = participant("PSPAMMER", "spammer")
    poll(lambda: market.submissions[spam]["status"], lambda status: status == "REJECTED", 90, celery_worker,
         "the rejection on Prolific")
    rejection = next(body for operation, id, body in market.calls if operation == "transition-submission"
                     and id == spam)
    assert rejection["action"] == "REJECT" and len(rejection["message"]) >= 100
    # The rejected place is open again: Prolific gave it back itself, our HIT re-posted it (no extra place bought).
    poll(lambda: Event.objects.filter(hit=hit, type=Event.Type.REPOSTED).exists(), bool, 90, celery_worker,
         "the re-post")
    assert market.studies[hit.external_id]["total_available_places"] == 1
    assert Hit.objects.get(pk=hit.pk).max_assignments == 2

    # A diligent participant takes the freed place: approved by the rules, paid on Prolific, then a bonus.
    good = participant("PDILIGENT", "diligent")
    poll(lambda: market.submissions[good]["status"], lambda status: status == "APPROVED", 90, celery_worker,
         "the approval on Prolific")
    approved = Assignment.objects.get(external_id=good)
    answer = console.post(f"/review/assignments/{approved.pk}/bonus/", {"amount": "0.75", "reason": "Careful work"})
    assert answer.status_code == 302
    poll(lambda: market.payments, lambda payments: len(payments) == 1, 90, celery_worker, "the bonus on Prolific")
    assert market.payments[0]["participant"] == "PDILIGENT" and market.payments[0]["amount"] == "0.75"
    poll(lambda: Assignment.objects.get(pk=approved.pk).bonus_paid, lambda paid: paid == Decimal("0.75"), 90,
         celery_worker, "the bonus recorded")

    # Prolific's webhook calls all reached us and were verified; the console shows the market's last word.
    assert market.deliveries and all(d["status"] == 200 for d in market.deliveries), market.deliveries
    assert MarketNotification.objects.filter(resource_id=good, status="AWAITING REVIEW", applied=True).exists()
    page = console.get(f"/review/batches/{batch.pk}/").content.decode()
    assert "approved: on the market" in page and "rejected: on the market" in page
