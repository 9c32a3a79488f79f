"""annotator/review/tasks.py: the automatic review task survives a database that drops out mid-review."""
import pytest
from django.db import OperationalError

from annotator.models import Assignment
from annotator.review import services, tasks
from tests.annotator.review_data import good_imagenet

pytestmark = pytest.mark.django_db


def test_a_review_interrupted_by_a_database_restart_is_retried_and_decides(monkeypatch):
    assignment = good_imagenet()
    calls = []
    review = services.auto_review

    def restart_once(assignment_id):
        calls.append(assignment_id)
        if len(calls) == 1:
            raise OperationalError("terminating connection due to administrator command")
        return review(assignment_id)

    monkeypatch.setattr(services, "auto_review", restart_once)
    tasks.auto_review.apply(args=[assignment.pk], throw=False)

    assert calls == [assignment.pk, assignment.pk]
    assignment.refresh_from_db()
    assert assignment.state == Assignment.State.APPROVED
    assert assignment.decision_source == Assignment.DecisionSource.AUTO


def test_a_review_that_fails_otherwise_is_not_retried(monkeypatch):
    assignment = good_imagenet()
    calls = []

    def broken(assignment_id):
        calls.append(assignment_id)
        raise ValueError("a bug, not an outage")

    monkeypatch.setattr(services, "auto_review", broken)
    with pytest.raises(ValueError):
        tasks.auto_review.apply(args=[assignment.pk], throw=True)
    assert calls == [assignment.pk]
