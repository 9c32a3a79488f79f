"""Market calls follow annotator's signals only once the deciding transaction has committed."""
from decimal import Decimal

import pytest
from django.db import transaction

from annotator import signals
from annotator.models import Assignment
from annotator.providers import tasks
from tests.factories import AssignmentFactory, HitFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch):
    calls = []
    for name in ("send_decision", "pay_bonus", "repost_hit"):
        monkeypatch.setattr(getattr(tasks, name), "apply_async",
                            lambda args=(), _name=name, **options: calls.append((_name, tuple(args))))
    return calls


def test_a_decision_is_queued_after_commit(queued, django_capture_on_commit_callbacks):
    assignment = AssignmentFactory(state=Assignment.State.APPROVED)
    with django_capture_on_commit_callbacks(execute=True):
        signals.assignments_decided.send(sender=Assignment, decided={assignment.pk: Assignment.State.SUBMITTED},
                                         batch_ids={assignment.hit.batch_id}, actor=None)
        assert queued == []
    assert queued == [("send_decision", (assignment.pk,))]


def test_nothing_is_queued_when_the_transaction_rolls_back(queued, django_capture_on_commit_callbacks):
    assignment = AssignmentFactory(state=Assignment.State.APPROVED)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                signals.bonus_granted.send(sender=Assignment, assignment=assignment, amount=Decimal("1.00"),
                                           reason="thanks", actor=None)
                signals.hit_needs_repost.send(sender=Assignment, hit=assignment.hit, count=1)
                raise RuntimeError("the decision failed")
    assert callbacks == []
    assert queued == []


def test_bonus_and_repost_carry_their_idempotency_keys(queued, django_capture_on_commit_callbacks):
    assignment = AssignmentFactory(state=Assignment.State.APPROVED)
    hit = HitFactory(max_assignments=1)
    with django_capture_on_commit_callbacks(execute=True):
        signals.bonus_granted.send(sender=Assignment, assignment=assignment, amount=Decimal("0.50"),
                                   reason="thanks", actor=None)
        signals.bonus_granted.send(sender=Assignment, assignment=assignment, amount=Decimal("0.50"),
                                   reason="thanks", actor=None)
        signals.hit_needs_repost.send(sender=Assignment, hit=hit, count=2)
    bonuses = [args for name, args in queued if name == "pay_bonus"]
    assert [args[:3] for args in bonuses] == [(assignment.pk, "0.50", "thanks")] * 2
    assert bonuses[0][3] != bonuses[1][3], "two grants are two payments"
    assert ("repost_hit", (hit.pk, 2, 3)) in queued
