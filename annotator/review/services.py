"""Writes for review: automatic decisions by the rules, admin decisions and overrides, re-posting, blocks, bonuses.

Every decision goes through Assignment.transition, appends Events and sends annotator.signals.assignment_decided,
whose receivers (the crowd providers) call the market after commit.
"""
import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from tqdm import tqdm

from .. import rules, signals
from ..models import Assignment, Event, Hit
from . import selectors

logger = logging.getLogger(__name__)

ACTIVE = (Assignment.State.ACCEPTED, Assignment.State.IN_PROGRESS, Assignment.State.SUBMITTED)


@dataclass(frozen=True)
class BatchReview:
    reviewed: int
    approved: int
    rejected: int
    changed: int
    decisions: list

    @property
    def rejection_rate(self):
        return self.rejected / self.reviewed if self.reviewed else 0.0


def evaluate_assignments(assignments, claimed_codes=None):
    """{assignment id: rules.Decision} for assignments of one batch, from their summaries (two queries)."""
    assignments = list(assignments)
    if not assignments:
        return {}
    batch = assignments[0].hit.batch
    thresholds = rules.thresholds_for(batch)
    summaries = selectors.work_summaries([a.id for a in assignments])
    n_pages = selectors.page_counts({a.hit_id for a in assignments})
    claimed_codes = claimed_codes or {}
    return {
        a.id: rules.evaluate(
            batch.task_kind, summaries[a.id], n_pages[a.hit_id], thresholds,
            completion_code_ok=rules.check_completion_code(a, claimed_codes.get(a.id, "")),
        )
        for a in assignments
    }


def auto_review(assignment_id, claimed_code=""):
    """Decide a submitted assignment by the rules; an assignment already decided is left as it is."""
    with transaction.atomic():
        assignment = (
            Assignment.objects.select_for_update(of=("self",)).select_related("hit__batch", "worker")
            .get(pk=assignment_id)
        )
        if assignment.state != Assignment.State.SUBMITTED:
            logger.info("assignment %s is %s: nothing to review", assignment.pk, assignment.state)
            return None
        decision = evaluate_assignments([assignment], {assignment.pk: claimed_code})[assignment.pk]
        _record_auto_decision(assignment, decision)
        return decision


def _record_auto_decision(assignment, decision):
    Event.objects.create(
        type=Event.Type.AUTO_REVIEWED, batch=assignment.hit.batch, hit=assignment.hit, assignment=assignment,
        worker=assignment.worker, data=decision.as_review(),
    )
    source, review, feedback = Assignment.DecisionSource.AUTO, decision.as_review(), decision.feedback()
    if assignment.state == Assignment.State.SUBMITTED:
        _decide(assignment, decision.approve, source, review, feedback, actor=None)
    else:
        _override(assignment, decision.approve, feedback, None, source, review)


def review_batch(batch, apply=False, show_progress=False, chunk_size=500):
    """Re-run the rules on every submitted or decided assignment of a batch; apply changes the decisions.

    Decisions an admin made are reported but never changed by the rules.
    """
    assignments = list(selectors.assignments_to_review(batch))
    decisions = []
    approved = rejected = changed = 0
    progress = tqdm(total=len(assignments), desc=f"review {batch.name}", unit="HIT", disable=not show_progress)
    for start in range(0, len(assignments), chunk_size):
        chunk = assignments[start:start + chunk_size]
        evaluated = evaluate_assignments(chunk)
        with transaction.atomic():
            for assignment in chunk:
                decision = evaluated[assignment.pk]
                approved += decision.approve
                rejected += not decision.approve
                decisions.append((assignment, decision))
                target = Assignment.State.APPROVED if decision.approve else Assignment.State.REJECTED
                if assignment.state == target or assignment.decision_source == Assignment.DecisionSource.ADMIN:
                    continue
                changed += 1
                if apply:
                    _apply_rules_decision(assignment.pk, decision)
        progress.update(len(chunk))
    progress.close()
    return BatchReview(reviewed=len(assignments), approved=approved, rejected=rejected, changed=changed,
                       decisions=decisions)


def _apply_rules_decision(assignment_id, decision):
    assignment = (
        Assignment.objects.select_for_update(of=("self",)).select_related("hit__batch", "worker").get(pk=assignment_id)
    )
    if assignment.decision_source != Assignment.DecisionSource.ADMIN:
        _record_auto_decision(assignment, decision)


def decide(assignment, approve, actor, feedback=""):
    """An admin's decision: on a submitted assignment a first decision, on a decided one an override."""
    feedback = _clean_feedback(feedback, approve)
    with transaction.atomic():
        assignment = (
            Assignment.objects.select_for_update(of=("self",)).select_related("hit__batch", "worker")
            .get(pk=assignment.pk)
        )
        if assignment.state == Assignment.State.SUBMITTED:
            _decide(assignment, approve, Assignment.DecisionSource.ADMIN, assignment.review, feedback, actor)
        elif assignment.state in selectors.DECIDED:
            _override(assignment, approve, feedback, actor, Assignment.DecisionSource.ADMIN, assignment.review)
        else:
            raise ValidationError(
                {"state": f"assignment {assignment.pk} is {assignment.state}: only submitted work can be decided"}
            )
        return assignment


def bulk_decide(assignment_ids, approve, actor, feedback=""):
    """Apply one admin decision (with one feedback text) to many assignments; all or nothing."""
    feedback = _clean_feedback(feedback, approve)
    target = Assignment.State.APPROVED if approve else Assignment.State.REJECTED
    with transaction.atomic():
        assignments = list(Assignment.objects.filter(pk__in=assignment_ids).order_by("pk"))
        missing = set(assignment_ids) - {a.pk for a in assignments}
        if missing:
            raise ValidationError({"assignments": f"no assignments with ids {sorted(missing)}"})
        changed = 0
        for assignment in assignments:
            if assignment.state != target:
                decide(assignment, approve, actor, feedback)
                changed += 1
        return changed


def _clean_feedback(feedback, approve):
    feedback = (feedback or "").strip()
    if len(feedback) > rules.FEEDBACK_MAX_CHARS:
        raise ValidationError(
            {"feedback": f"{len(feedback)} characters; the market accepts at most {rules.FEEDBACK_MAX_CHARS}"}
        )
    if not approve and not feedback:
        raise ValidationError({"feedback": "a rejection needs feedback that tells the worker why"})
    return feedback or "Thank you for your work on this HIT. It has been approved."


def _override(assignment, approve, feedback, actor, source, review):
    target = Assignment.State.APPROVED if approve else Assignment.State.REJECTED
    if assignment.state == target:
        return
    Event.objects.create(
        type=Event.Type.OVERRIDDEN, batch=assignment.hit.batch, hit=assignment.hit, assignment=assignment,
        worker=assignment.worker, actor=actor,
        data={"from": assignment.state, "to": target, "source": source, "feedback": feedback},
    )
    _decide(assignment, approve, source, review, feedback, actor)


def _decide(assignment, approve, source, review, feedback, actor):
    """Move to approved/rejected, record it, tell the providers, keep the HIT's status and re-posting right."""
    previous_state = assignment.state
    target = Assignment.State.APPROVED if approve else Assignment.State.REJECTED
    assignment.transition(target)
    assignment.decision_source = source
    assignment.review = review
    assignment.feedback = feedback
    assignment.reviewed_at = timezone.now()
    assignment.save(update_fields=["state", "decision_source", "review", "feedback", "reviewed_at"])
    Event.objects.create(
        type=Event.Type.APPROVED if approve else Event.Type.REJECTED, batch=assignment.hit.batch,
        hit=assignment.hit, assignment=assignment, worker=assignment.worker, actor=actor,
        data={"source": source, "feedback": feedback, "previous_state": previous_state},
    )
    signals.assignment_decided.send(
        sender=Assignment, assignment=assignment, previous_state=previous_state, actor=actor
    )
    _update_hit(assignment.hit)


def _update_hit(hit):
    """COMPLETED once the HIT has the approved assignments its batch asks for; else re-post what is missing."""
    hit = Hit.objects.select_for_update().select_related("batch").get(pk=hit.pk)
    required = hit.batch.assignments_per_hit
    states = list(hit.assignments.values_list("state", flat=True))
    approved = states.count(Assignment.State.APPROVED)
    if approved >= required:
        if hit.status != Hit.Status.COMPLETED:
            hit.status = Hit.Status.COMPLETED
            hit.save(update_fields=["status"])
        return
    if hit.status == Hit.Status.COMPLETED:
        hit.status = Hit.Status.PUBLISHED if hit.published_at else Hit.Status.PENDING
        hit.save(update_fields=["status"])
    missing = required - approved - sum(state in ACTIVE for state in states)
    if missing > 0 and Assignment.State.REJECTED in states:
        # The provider re-posts after commit and records the REPOSTED event (once per target).
        signals.hit_needs_repost.send(sender=Hit, hit=hit, count=missing)


def block_worker(worker, actor, reason):
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "say why the worker is blocked (kept in the audit log)"})
    with transaction.atomic():
        worker.blocked = True
        worker.blocked_reason = reason
        worker.save(update_fields=["blocked", "blocked_reason"])
        Event.objects.create(type=Event.Type.BLOCKED, worker=worker, actor=actor, data={"reason": reason})


def unblock_worker(worker, actor):
    with transaction.atomic():
        worker.blocked = False
        worker.blocked_reason = ""
        worker.save(update_fields=["blocked", "blocked_reason"])
        Event.objects.create(type=Event.Type.UNBLOCKED, worker=worker, actor=actor, data={})


def parse_amount(value):
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValidationError({"amount": f"{value!r} is not an amount like 0.50"}) from None
    if not amount.is_finite() or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        raise ValidationError({"amount": f"{value} must be a positive amount in cents, like 0.50"})
    return amount


def grant_bonus(assignment, amount, actor, reason):
    """Ask the provider to pay a bonus on a decided assignment.

    The provider's receiver pays after commit, then adds it to Assignment.bonus_paid and records BONUSED, so a
    grant is counted once, when the market took it.
    """
    amount = parse_amount(amount)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "the worker sees the reason for a bonus; it cannot be empty"})
    if len(reason) > rules.FEEDBACK_MAX_CHARS:
        raise ValidationError({"reason": f"at most {rules.FEEDBACK_MAX_CHARS} characters"})
    if assignment.state not in selectors.DECIDED:
        raise ValidationError(
            {"assignment": f"assignment {assignment.pk} is {assignment.state}: bonus decided work only"}
        )
    with transaction.atomic():
        signals.bonus_granted.send(sender=Assignment, assignment=assignment, amount=amount, reason=reason, actor=actor)
