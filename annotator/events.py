"""The event log (annotator.models.Event), typed: one constructor per kind of event, and the readers of what they carry.

Each constructor takes, keyword-only, exactly the data its event carries and returns an unsaved Event: a bulk path
hands a list of them to bulk_create, a single one calls .save(). The HIT and batch are filled in from the assignment
or HIT. The data of each kind is a Struct below (its stored JSON: the fields in order, unset optional ones left
out); nothing outside this module reads event.data by key: the readers and selectors here do.
"""
from decimal import Decimal

import msgspec

from .models import Assignment, Event


class _Data(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What one kind of event carries (stored as its data)."""


def _stored(data):
    """The JSON a Struct is stored as; Django's choices (Provider.MTURK, Assignment.State...) as their values."""
    return msgspec.to_builtins(data, enc_hook=str)


def _event(type, data, *, batch=None, hit=None, assignment=None, worker=None, actor=None):
    if hit is None and assignment is not None:
        hit = assignment.hit
    if batch is None and hit is not None:
        batch = hit.batch
    return Event(type=type, batch=batch, hit=hit, assignment=assignment, worker=worker, actor=actor,
                 data=_stored(data) if isinstance(data, _Data) else data)


def _read(event, kind):
    return msgspec.convert(event.data, kind)


# --- the worker's path ---------------------------------------------------------------------------------------------

class Accepted(_Data):
    market_assignment_id: str
    deadline: str


def accepted(*, assignment):
    """A worker took a place on a HIT (under the market's assignment id, until its deadline)."""
    return _event(Event.Type.ACCEPTED, Accepted(market_assignment_id=assignment.external_id,
                                                deadline=assignment.deadline.isoformat()),
                  assignment=assignment, worker=assignment.worker)


class Resumed(_Data):
    state: str


def resumed(*, assignment):
    """The worker came back to the assignment (in the state it has now)."""
    return _event(Event.Type.RESUMED, Resumed(state=assignment.state), assignment=assignment,
                  worker=assignment.worker)


def page_saved_row(*, hit_id, assignment_id, page, summary, created_at):
    """A page was saved: its index and the PageSubmission summary, as a row for annotator.bulk.insert_rows (the
    page save and the AB importers write it in bulk with the records). No batch or worker: the hot path has ids."""
    return {"type": Event.Type.PAGE_SAVED, "hit": hit_id, "assignment": assignment_id,
            "data": {"page": page, **summary}, "created_at": created_at}


class Submitted(_Data):
    pages_saved: int
    n_pages: int
    partial: bool


def submitted(*, assignment, pages_saved, n_pages):
    """The worker handed the assignment in with pages_saved of its n_pages saved."""
    return _event(Event.Type.SUBMITTED, Submitted(pages_saved=pages_saved, n_pages=n_pages,
                                                  partial=pages_saved < n_pages),
                  assignment=assignment, worker=assignment.worker)


class Overdue(_Data, rename={"previous_state": "from"}):
    previous_state: str
    deadline: str


def overdue(*, assignment_id, hit_id, batch_id, worker_id, previous_state, deadline):
    """An open assignment expired past its deadline (EXPIRED); by ids, for the bulk sweep."""
    return Event(type=Event.Type.EXPIRED, batch_id=batch_id, hit_id=hit_id, assignment_id=assignment_id,
                 worker_id=worker_id,
                 data=_stored(Overdue(previous_state=previous_state, deadline=deadline.isoformat())))


# --- review ----------------------------------------------------------------------------------------------------------

def auto_reviewed(*, assignment, review):
    """The rules judged the assignment; review is what Assignment.review stores (rules.Decision.as_review)."""
    return _event(Event.Type.AUTO_REVIEWED, review, assignment=assignment, worker=assignment.worker)


class Overridden(_Data, rename={"previous_state": "from", "target": "to"}):
    previous_state: str
    target: str
    source: str
    feedback: str


def overridden(*, assignment, actor, previous_state, target, source, feedback):
    """A decision was turned into the other one."""
    return _event(Event.Type.OVERRIDDEN, Overridden(previous_state=previous_state, target=target, source=source,
                                                    feedback=feedback),
                  assignment=assignment, worker=assignment.worker, actor=actor)


class Decided(_Data):
    source: str
    feedback: str
    previous_state: str


def decided(*, assignment, actor, approved, source, feedback, previous_state):
    """The assignment was approved or rejected (APPROVED / REJECTED)."""
    return _event(Event.Type.APPROVED if approved else Event.Type.REJECTED,
                  Decided(source=source, feedback=feedback, previous_state=previous_state),
                  assignment=assignment, worker=assignment.worker, actor=actor)


class Blocked(_Data):
    reason: str


def blocked(*, worker, actor, reason):
    return _event(Event.Type.BLOCKED, Blocked(reason=reason), worker=worker, actor=actor)


def unblocked(*, worker, actor):
    return _event(Event.Type.UNBLOCKED, {}, worker=worker, actor=actor)


# --- the markets ---------------------------------------------------------------------------------------------------

class PublishedHit(_Data):
    provider: str
    reference: str


def published_hit(*, hit, provider, reference):
    """The HIT is on the market (reference: its task URL or market id)."""
    return _event(Event.Type.PUBLISHED, PublishedHit(provider=provider, reference=reference), hit=hit)


class PublishedBatch(_Data):
    provider: str
    hits: int


def published_batch(*, batch, provider, hits):
    return _event(Event.Type.PUBLISHED, PublishedBatch(provider=provider, hits=hits), batch=batch)


class SyncedBatch(_Data):
    provider: str
    hits: int
    created: int
    updated: int
    decisions_sent: int


def synced_batch(*, batch, provider, hits, created, updated, decisions_sent):
    return _event(Event.Type.SYNCED, SyncedBatch(provider=provider, hits=hits, created=created, updated=updated,
                                                 decisions_sent=decisions_sent), batch=batch)


class MarketRecord(_Data):
    """What passed between us and a market: a status a sync or webhook brought (SYNCED: the market_status, and the
    decision the market holds once it matches ours), or a call we made (MARKET_CALL: the operation, what was sent,
    and what came back or why it was refused)."""

    provider: str = ""  # always written; a row written by hand may lack it
    source: str | None = None
    operation: str | None = None
    refused: str | None = None
    path: str | None = None
    params: dict | None = None
    status: int | None = None
    blocked: bool | None = None
    market_status: str | None = None
    claimed_completion_code: str | None = None
    key: str | None = None
    market_decision: str | None = None
    payment_id: str | None = None
    reason: str | None = None
    study_id: str | None = None


def synced_assignment(*, assignment, worker, provider, source, market_status, claimed_completion_code=None,
                      market_decision=None):
    """The market's status of an assignment (and the decision it holds, once it matches ours)."""
    return _event(Event.Type.SYNCED, MarketRecord(
        provider=provider, source=source, market_status=market_status,
        claimed_completion_code=claimed_completion_code, market_decision=market_decision,
    ), assignment=assignment, worker=worker)


class Released(_Data):
    market_status: str


def released(*, assignment, worker, market_status):
    """The market gave the assignment's place back: RETURNED or EXPIRED, as the assignment now is."""
    kind = Event.Type.RETURNED if assignment.state == Assignment.State.RETURNED else Event.Type.EXPIRED
    return _event(kind, Released(market_status=market_status), assignment=assignment, worker=worker)


class HitExpired(_Data):
    provider: str


def hit_expired(*, hit, provider):
    """The HIT stopped taking new workers."""
    return _event(Event.Type.EXPIRED, HitExpired(provider=provider), hit=hit)


class BonusRequested(_Data):
    key: str
    request_key: str
    amount: str
    reason: str


def bonus_requested(*, assignment, key, request_key, amount, reason):
    """A bonus was granted; the market has not paid it yet (BONUSED with the same key says it has)."""
    return _event(Event.Type.BONUS_REQUESTED, BonusRequested(key=key, request_key=request_key, amount=str(amount),
                                                             reason=reason),
                  assignment=assignment, worker=assignment.worker)


class Bonused(_Data):
    provider: str
    amount: str
    amount_cents: int
    reason: str
    key: str


def bonused(*, assignment, provider, amount: Decimal, reason, key):
    return _event(Event.Type.BONUSED, Bonused(provider=provider, amount=f"{amount:.2f}",
                                              amount_cents=int(amount * 100), reason=reason, key=key),
                  assignment=assignment, worker=assignment.worker)


class RepostRequested(_Data):
    key: str
    count: int
    target_max_assignments: int


def repost_requested(*, hit, key, count, target_max_assignments):
    """The HIT needs more assignments; the market has not opened them yet (REPOSTED with the same key says it has)."""
    return _event(Event.Type.REPOST_REQUESTED, RepostRequested(key=key, count=count,
                                                               target_max_assignments=target_max_assignments),
                  hit=hit)


class Reposted(_Data):
    provider: str
    count: int
    max_assignments: int
    key: str


def reposted(*, hit, provider, count, max_assignments, key):
    return _event(Event.Type.REPOSTED, Reposted(provider=provider, count=count, max_assignments=max_assignments,
                                                key=key), hit=hit)


class Notified(_Data):
    provider: str
    key: str
    subject: str
    message: str
    workers: int
    failures: dict


def notified(*, batch, provider, key, subject, message, workers, failures):
    """Workers were messaged (workers: how many; failures: {worker id: the market's message})."""
    return _event(Event.Type.NOTIFIED, Notified(provider=provider, key=key, subject=subject, message=message,
                                                workers=workers, failures=failures), batch=batch)


def market_call(*, provider, operation, batch=None, hit=None, assignment=None, worker=None, **outcome):
    """One call to a market; outcome: MarketRecord's fields of a call (params, key, market_decision, refused...)."""
    return _event(Event.Type.MARKET_CALL, MarketRecord(provider=provider, operation=operation, **outcome),
                  batch=batch, hit=hit, assignment=assignment, worker=worker)


# --- readers ---------------------------------------------------------------------------------------------------------

def bonus_request(event):
    """A BONUS_REQUESTED event's grant."""
    return _read(event, BonusRequested)


def repost_request(event):
    """A REPOST_REQUESTED event's re-post."""
    return _read(event, RepostRequested)


def bonus_paid(event):
    """A BONUSED event's payment."""
    return _read(event, Bonused)


def market_record(event):
    """A SYNCED or MARKET_CALL event's exchange with the market."""
    return _read(event, MarketRecord)


def key_of(event):
    """The idempotency key an event carries (a request, or the market call or payment that did it), or None."""
    return event.data.get("key")


# --- selectors -------------------------------------------------------------------------------------------------------

def keys_done(type, **owners):
    """The idempotency keys the events of a type (of the given owners, e.g. hit=, assignment_id__in=) carry."""
    return set(Event.objects.filter(type=type, **owners).values_list("data__key", flat=True))


def has_key(type, key, **owners):
    """Whether an event of the type (of the given owners) carries this idempotency key: the work is done."""
    return Event.objects.filter(type=type, data__key=key, **owners).exists()


def market_call_keys(*, batch, operation, key_prefix):
    """The keys of the batch's calls of an operation under one request (its chunks already sent)."""
    return keys_done(Event.Type.MARKET_CALL, batch=batch, data__operation=operation, data__key__startswith=key_prefix)


def earlier_market_call(*, key, operation=None, **owners):
    """The latest MARKET_CALL (of the operation and owners) made under this key, as a MarketRecord, or None."""
    calls = Event.objects.filter(type=Event.Type.MARKET_CALL, data__key=key, **owners)
    if operation is not None:
        calls = calls.filter(data__operation=operation)
    event = calls.order_by("-created_at", "-id").first()
    return market_record(event) if event else None


def market_decisions(assignment):
    """The decisions the market holds for the assignment (an assignment or OuterRef("pk")), newest first."""
    return (Event.objects.filter(assignment=assignment, data__has_key="market_decision")
            .order_by("-created_at", "-id").values_list("data__market_decision", flat=True))


def last_market_decision(assignment):
    """The decision the market already has for this assignment ("approved"/"rejected"), or None."""
    return market_decisions(assignment).first()


def last_market_status(assignment):
    """The status the latest sync recorded for the assignment, or None."""
    return (Event.objects.filter(assignment=assignment, type=Event.Type.SYNCED, data__has_key="market_status")
            .order_by("-created_at", "-id").values_list("data__market_status", flat=True).first())
