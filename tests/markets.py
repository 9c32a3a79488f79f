"""Crowd markets for the provider tests: boto3's MTurk client pointed at a stub or a fake, the fake Prolific, and a
decision sent as the review console sends it."""
from contextlib import contextmanager
from decimal import Decimal

import boto3

from annotator import signals
from annotator.models import Assignment, Hit
from annotator.providers import mturk
from devtools.fake_prolific import FakeProlific

PUBLIC_BASE_URL = "https://annotate.example.org"


def use_mturk_client(monkeypatch, settings, endpoint_url=mturk.SANDBOX_ENDPOINT):
    """The MTurk client the provider makes (test credentials, endpoint_url: the sandbox for botocore's Stubber, or
    a local fake); task URLs point at PUBLIC_BASE_URL."""
    settings.PUBLIC_BASE_URL = PUBLIC_BASE_URL
    client = boto3.client("mturk", region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing", endpoint_url=endpoint_url)
    monkeypatch.setattr(mturk, "make_client", lambda: client)
    return client


@contextmanager
def fake_prolific(settings, token="secret-token"):
    """The fake Prolific on a local port, with the settings pointing at it."""
    settings.PUBLIC_BASE_URL = PUBLIC_BASE_URL
    with FakeProlific(token=token) as fake:
        settings.PROLIFIC_API_URL = fake.url
        settings.PROLIFIC_API_TOKEN = token
        yield fake


REJECTION_FEEDBACK = "You selected 4 images; at least 30 are needed."
BONUS = Decimal("0.40")


def _decide(assignment, state, feedback, capture):
    """Decide as the review console does: the transition, saved, then assignments_decided (market calls on commit)."""
    with capture(execute=True):
        previous = assignment.state
        assignment.transition(state)
        assignment.feedback = feedback
        assignment.save()
        signals.assignments_decided.send(sender=Assignment, decided={assignment.pk: previous},
                                         batch_ids={assignment.hit.batch_id}, actor=None)


def approve_and_reject(good, bad, capture):
    """(approved, rejected): the submitted assignments with market ids good and bad, decided in the console."""
    approved = Assignment.objects.get(external_id=good)
    rejected = Assignment.objects.get(external_id=bad)
    assert approved.state == rejected.state == Assignment.State.SUBMITTED
    _decide(approved, Assignment.State.APPROVED, "", capture)
    _decide(rejected, Assignment.State.REJECTED, REJECTION_FEEDBACK, capture)
    return approved, rejected


def repost_and_bonus(rejected, approved, capture):
    """The rejected assignment's HIT re-posted for one more worker, the approved one's worker paid BONUS."""
    with capture(execute=True):
        signals.hit_needs_repost.send(sender=Hit, hit=rejected.hit, count=1)
        signals.bonus_granted.send(sender=Assignment, assignment=approved, amount=BONUS, reason="Careful clicks",
                                   actor=None)
