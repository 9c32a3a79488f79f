"""Writes for review: automatic decisions by the rules, admin decisions and overrides, re-posting, blocks, bonuses.

Every decision goes through Assignment.transition, appends Events and sends annotator.signals.assignments_decided,
whose receivers (the crowd providers) call the market after commit.
"""
import json
import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from tqdm import tqdm

from .. import events, rules, signals
from ..models import Assignment, Event, Hit, Worker
from . import selectors

logger = logging.getLogger(__name__)



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
    """{assignment id: rules.Decision} for assignments of one batch (annotated with n_pages), from their
    summaries (one query)."""
    assignments = list(assignments)
    if not assignments:
        return {}
    batch = assignments[0].hit.batch
    thresholds = rules.thresholds_for(batch)
    summaries = selectors.work_summaries([a.id for a in assignments])
    claimed_codes = claimed_codes or {}
    # Rule 4 needs the code a worker claims only when we hold no annotation: read what the market sync recorded.
    unclaimed = [a.id for a in assignments if summaries[a.id].pages_completed == 0 and not claimed_codes.get(a.id)]
    if unclaimed:
        claimed_codes = {**claimed_codes, **selectors.claimed_completion_codes(unclaimed)}
    return {
        a.id: rules.evaluate(
            batch.task_kind, summaries[a.id], a.n_pages or 0, thresholds,
            completion_code_ok=rules.check_completion_code(a, claimed_codes.get(a.id, "")),
        )
        for a in assignments
    }


def _locked(assignment_ids):
    """The assignments, locked for this transaction, in id order (one query)."""
    return list(selectors.with_page_count(
        Assignment.objects.select_for_update(of=("self",)).select_related("hit__batch", "worker")
        .filter(pk__in=assignment_ids).order_by("pk")
    ))


def auto_review(assignment_id, claimed_code=""):
    """Decide a submitted assignment by the rules; an assignment already decided is left as it is."""
    with transaction.atomic():
        assignments = [a for a in _locked([assignment_id]) if a.state == Assignment.State.SUBMITTED]
        if not assignments:
            logger.info("assignment %s is not waiting for review", assignment_id)
            return None
        decision = evaluate_assignments(assignments, {assignment_id: claimed_code})[assignment_id]
        _apply_rule_decisions(assignments, {assignment_id: decision})
        return decision


def review_batch(batch, apply=False, show_progress=False, chunk_size=500):
    """Re-run the rules on every submitted or decided assignment of a batch; apply changes the decisions.

    Decisions an admin made are reported but never changed by the rules. Each chunk is one transaction.
    """
    ids = list(selectors.assignments_to_review(batch).values_list("pk", flat=True))
    decisions = []
    approved = rejected = changed = 0
    progress = tqdm(total=len(ids), desc=f"review {batch.name}", unit="HIT", disable=not show_progress)
    for start in range(0, len(ids), chunk_size):
        with transaction.atomic():
            assignments = (
                _locked(ids[start:start + chunk_size]) if apply
                else list(selectors.assignments_to_review(batch).filter(pk__in=ids[start:start + chunk_size]))
            )
            evaluated = evaluate_assignments(assignments)
            to_change = [
                a for a in assignments
                if a.state != _target(evaluated[a.pk].approve) and a.decision_source != Assignment.DecisionSource.ADMIN
            ]
            changed += len(to_change)
            decisions += [(a, evaluated[a.pk]) for a in assignments]
            approved += sum(decision.approve for decision in evaluated.values())
            rejected += sum(not decision.approve for decision in evaluated.values())
            if apply:
                _apply_rule_decisions(to_change, evaluated)
        progress.update(len(assignments))
    progress.close()
    return BatchReview(reviewed=len(ids), approved=approved, rejected=rejected, changed=changed,
                       decisions=decisions)


def _target(approve):
    return Assignment.State.APPROVED if approve else Assignment.State.REJECTED


def _apply_rule_decisions(assignments, decisions):
    reviewed = [events.auto_reviewed(assignment=a, review=decisions[a.pk].as_review()) for a in assignments]
    _apply_decisions(
        assignments, source=Assignment.DecisionSource.AUTO, actor=None, log=reviewed,
        verdicts={a.pk: (decisions[a.pk].approve, decisions[a.pk].feedback(), decisions[a.pk].as_review())
                  for a in assignments},
    )


def decide(assignment, approve, actor, feedback=""):
    """An admin's decision: on a submitted assignment a first decision, on a decided one an override."""
    bulk_decide([assignment.pk], approve, actor, feedback)
    assignment.refresh_from_db()
    return assignment


def bulk_decide(assignment_ids, approve, actor, feedback=""):
    """Apply one admin decision (with one feedback text) to many assignments; all or nothing. Returns the count."""
    feedback = _clean_feedback(feedback, approve)
    with transaction.atomic():
        assignments = _locked(assignment_ids)
        missing = set(assignment_ids) - {a.pk for a in assignments}
        if missing:
            raise ValidationError({"assignments": f"no assignments with ids {sorted(missing)}"})
        undecidable = [a for a in assignments if a.state not in Assignment.FINISHED_STATES]
        if undecidable:
            raise ValidationError({"assignments": "; ".join(
                f"assignment {a.pk} is {a.state}: only submitted work can be decided" for a in undecidable
            )})
        to_change = [a for a in assignments if a.state != _target(approve)]
        _refuse_feedback_of_the_other_decision(to_change, feedback, approve)
        _apply_decisions(
            to_change, source=Assignment.DecisionSource.ADMIN, actor=actor, log=[],
            verdicts={a.pk: (approve, feedback, a.review) for a in to_change},
        )
        return len(to_change)


def _clean_feedback(feedback, approve):
    feedback = (feedback or "").strip()
    if len(feedback) > rules.FEEDBACK_MAX_CHARS:
        raise ValidationError(
            {"feedback": f"{len(feedback)} characters; the market accepts at most {rules.FEEDBACK_MAX_CHARS}"}
        )
    if not approve and not feedback:
        raise ValidationError({"feedback": "a rejection needs feedback that tells the worker why"})
    return feedback or rules.APPROVAL_FEEDBACK


def _refuse_feedback_of_the_other_decision(assignments, feedback, approve):
    """An override never sends the worker the words written for the decision it reverses."""
    reused = [a.pk for a in assignments if a.state in Assignment.DECIDED_STATES and a.feedback.strip() == feedback]
    if reused:
        verb, other = ("approval", "rejection") if approve else ("rejection", "approval")
        raise ValidationError({"feedback": (
            f"assignment{'s' if len(reused) > 1 else ''} {', '.join(map(str, reused))}: this is the text sent with "
            f"the {other}; write feedback for the {verb}"
        )})


def _apply_decisions(assignments, source, actor, log, verdicts):
    """Approve or reject locked assignments in bulk: state, review and feedback, events (an override of a
    decision is logged as such), the decided signal for the providers, then the HITs' status and re-posting.

    verdicts: {assignment id: (approve, feedback, review)}.
    """
    now = timezone.now()
    decided = []
    for assignment in assignments:
        approve, feedback, review = verdicts[assignment.pk]
        previous_state = assignment.state
        target = _target(approve)
        if previous_state in Assignment.DECIDED_STATES:
            log.append(events.overridden(assignment=assignment, actor=actor, previous_state=previous_state,
                                         target=target, source=source, feedback=feedback))
        assignment.transition(target)
        assignment.decision_source = source
        assignment.review = review
        assignment.feedback = feedback
        assignment.reviewed_at = now
        log.append(events.decided(assignment=assignment, actor=actor, approved=approve, source=source,
                                  feedback=feedback, previous_state=previous_state))
        decided.append((assignment, previous_state))
    if not decided:
        return
    _write_decisions([assignment for assignment, _ in decided], now)
    _sort_events(log)
    Event.objects.bulk_create(log)
    signals.assignments_decided.send(
        sender=Assignment, decided={assignment.pk: previous_state for assignment, previous_state in decided},
        batch_ids={assignment.hit.batch_id for assignment, _ in decided}, actor=actor,
    )
    _update_hits({assignment.hit_id for assignment, _ in decided})


def _write_decisions(assignments, reviewed_at):
    """One UPDATE for a chunk of decisions (each with its own review and feedback).

    Django's bulk_update builds a CASE per row and field, which cost more than the whole review; a VALUES list
    joined in the UPDATE does the same in one short statement on PostgreSQL and SQLite.
    """
    table = Assignment._meta.db_table
    review = "CAST(v.review AS jsonb)" if connection.vendor == "postgresql" else "v.review"
    rows = ", ".join(["(%s, %s, %s, %s, %s)"] * len(assignments))
    params = [
        value
        for a in assignments
        for value in (a.pk, a.state, a.decision_source, json.dumps(a.review), a.feedback)
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH v(id, state, decision_source, review, feedback) AS (VALUES {rows}) "
            f"UPDATE {table} SET state = v.state, decision_source = v.decision_source, review = {review}, "
            f"feedback = v.feedback, reviewed_at = %s FROM v WHERE {table}.id = v.id",
            [*params, reviewed_at],
        )


def _sort_events(log):
    """Per assignment: auto-reviewed, overridden, then the decision (the audit trail reads in that order)."""
    order = {Event.Type.AUTO_REVIEWED: 0, Event.Type.OVERRIDDEN: 1}
    log.sort(key=lambda event: (event.assignment.pk, order.get(event.type, 2)))


def _update_hits(hit_ids):
    """COMPLETED once a HIT has the approved assignments its batch asks for; else re-post what is missing."""
    hits = list(Hit.objects.select_for_update(of=("self",)).select_related("batch").filter(pk__in=hit_ids))
    states = {}
    for hit_id, state in Assignment.objects.filter(hit_id__in=hit_ids).values_list("hit_id", "state"):
        states.setdefault(hit_id, []).append(state)
    changed = []
    for hit in hits:
        hit_states = states.get(hit.pk, [])
        required = hit.batch.assignments_per_hit
        approved = hit_states.count(Assignment.State.APPROVED)
        if approved >= required:
            status = Hit.Status.COMPLETED
        elif hit.status == Hit.Status.COMPLETED:
            status = Hit.Status.PUBLISHED if hit.published_at else Hit.Status.PENDING
        else:
            status = hit.status
        if status != hit.status:
            hit.status = status
            changed.append(hit)
        missing = required - approved - sum(state in Assignment.ACTIVE_STATES for state in hit_states)
        # Places re-posted earlier that nobody has taken yet already cover part of what is missing.
        open_places = max(0, hit.max_assignments - sum(state not in Assignment.RELEASED_STATES for state in hit_states))
        to_add = missing - open_places
        if approved < required and to_add > 0 and Assignment.State.REJECTED in hit_states:
            # The provider re-posts after commit and records the REPOSTED event (once per target).
            signals.hit_needs_repost.send(sender=Hit, hit=hit, count=to_add)
    for status in {hit.status for hit in changed}:
        Hit.objects.filter(pk__in=[hit.pk for hit in changed if hit.status == status]).update(status=status)


def block_worker(worker, actor, reason):
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "say why the worker is blocked (kept in the audit log)"})
    with transaction.atomic():
        worker.blocked = True
        worker.blocked_reason = reason
        worker.save(update_fields=["blocked", "blocked_reason"])
        events.blocked(worker=worker, actor=actor, reason=reason).save()
        signals.worker_block_changed.send(sender=Worker, worker=worker, blocked=True, reason=reason)


def unblock_worker(worker, actor):
    with transaction.atomic():
        worker.blocked = False
        worker.blocked_reason = ""
        worker.save(update_fields=["blocked", "blocked_reason"])
        events.unblocked(worker=worker, actor=actor).save()
        signals.worker_block_changed.send(sender=Worker, worker=worker, blocked=False, reason="")


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
    if assignment.state not in Assignment.DECIDED_STATES:
        raise ValidationError(
            {"assignment": f"assignment {assignment.pk} is {assignment.state}: bonus decided work only"}
        )
    with transaction.atomic():
        signals.bonus_granted.send(sender=Assignment, assignment=assignment, amount=amount, reason=reason, actor=actor)
