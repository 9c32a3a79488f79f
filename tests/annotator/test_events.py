from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from annotator import events
from annotator.bulk import insert_rows
from annotator.models import Assignment, Event, Provider
from tests import factories

pytestmark = pytest.mark.django_db


def stored(event):
    event.save()
    return Event.objects.get(pk=event.pk)


def test_an_assignment_event_is_filed_under_its_hit_and_batch():
    assignment = factories.AssignmentFactory(external_id="A1", deadline=datetime(2026, 1, 2, 3, 4, tzinfo=UTC))
    event = stored(events.accepted(assignment=assignment))
    assert (event.type, event.assignment, event.hit, event.batch, event.worker) == (
        Event.Type.ACCEPTED, assignment, assignment.hit, assignment.hit.batch, assignment.worker)
    assert event.data == {"market_assignment_id": "A1", "deadline": "2026-01-02T03:04:00+00:00"}


def test_each_kind_stores_the_data_it_names_and_leaves_out_what_it_was_not_given():
    assignment = factories.AssignmentFactory(state=Assignment.State.APPROVED)
    call = stored(events.market_call(provider=Provider.MTURK, operation="ApproveAssignment", assignment=assignment,
                                     params={"AssignmentId": "A1"}, market_decision=Assignment.State.APPROVED))
    assert call.data == {"provider": "mturk", "operation": "ApproveAssignment", "params": {"AssignmentId": "A1"},
                         "market_decision": "approved"}
    synced = stored(events.synced_assignment(assignment=assignment, worker=assignment.worker,
                                             provider=Provider.MTURK, source="sync", market_status="Approved",
                                             claimed_completion_code=""))
    assert synced.data == {"provider": "mturk", "source": "sync", "market_status": "Approved",
                           "claimed_completion_code": ""}
    overridden = stored(events.overridden(assignment=assignment, actor=None, previous_state="rejected",
                                          target="approved", source="admin", feedback="ok"))
    assert overridden.data == {"from": "rejected", "to": "approved", "source": "admin", "feedback": "ok"}


def test_the_bulk_expiry_is_built_from_ids():
    assignment = factories.AssignmentFactory()
    deadline = datetime(2026, 1, 2, tzinfo=UTC)
    [event] = Event.objects.bulk_create([events.overdue(
        assignment_id=assignment.pk, hit_id=assignment.hit_id, batch_id=assignment.hit.batch_id,
        worker_id=assignment.worker_id, previous_state="accepted", deadline=deadline)])
    event = Event.objects.get(pk=event.pk)
    assert (event.type, event.assignment_id, event.batch_id) == (Event.Type.EXPIRED, assignment.pk,
                                                                 assignment.hit.batch_id)
    assert event.data == {"from": "accepted", "deadline": "2026-01-02T00:00:00+00:00"}


def test_a_constructor_refuses_data_its_kind_does_not_carry():
    with pytest.raises(TypeError):
        events.market_call(provider=Provider.PROLIFIC, operation="pay-bonus", amount="1.00")


def test_the_readers_give_typed_values():
    assignment = factories.AssignmentFactory()
    requested = stored(events.bonus_requested(assignment=assignment, key="bonus:x:k", request_key="k",
                                              amount=Decimal("1.50"), reason="thanks"))
    assert events.bonus_request(requested) == events.BonusRequested(key="bonus:x:k", request_key="k",
                                                                    amount="1.50", reason="thanks")
    assert events.key_of(requested) == "bonus:x:k"
    paid = stored(events.bonused(assignment=assignment, provider=Provider.LINK, amount=Decimal("1.5"),
                                 reason="thanks", key="bonus:x:k"))
    assert events.bonus_paid(paid).amount_cents == 150
    refused = stored(events.market_call(provider=Provider.PROLIFIC, operation="approve-submission",
                                        assignment=assignment, refused="already reviewed", status=400))
    report = events.market_record(refused)
    assert (report.operation, report.refused, report.market_decision) == ("approve-submission", "already reviewed",
                                                                          None)


def test_the_selectors_find_events_by_the_keys_they_carry():
    assignment = factories.AssignmentFactory()
    batch = assignment.hit.batch
    assert events.last_market_decision(assignment) is None
    for chunk in ("n:0", "n:1", "other:0"):
        events.market_call(provider=Provider.MTURK, operation="NotifyWorkers", batch=batch, params={},
                           key=chunk).save()
    assert events.market_call_keys(batch=batch, operation="NotifyWorkers", key_prefix="n:") == {"n:0", "n:1"}
    events.market_call(provider=Provider.PROLIFIC, operation="create-study", hit=assignment.hit, key="publish:1",
                       study_id="S1").save()
    assert events.earlier_market_call(key="publish:1", hit=assignment.hit).study_id == "S1"
    assert events.earlier_market_call(key="publish:1", operation="pay-bonus", hit=assignment.hit) is None
    events.synced_assignment(assignment=assignment, worker=assignment.worker, provider=Provider.MTURK,
                             source="sync", market_status="Approved", market_decision="approved").save()
    assert events.last_market_decision(assignment) == "approved"
    assert events.last_market_status(assignment) == "Approved"
    assert events.has_key(Event.Type.MARKET_CALL, "n:0", batch=batch)
    assert events.keys_done(Event.Type.MARKET_CALL, batch=batch) >= {"n:0", "publish:1"}


def test_a_saved_page_is_filed_by_ids_with_its_index_and_summary():
    assignment = factories.AssignmentFactory()
    insert_rows(Event, [events.page_saved_row(hit_id=assignment.hit_id, assignment_id=assignment.pk, page=3,
                                              summary={"n_selected": 5, "n_in_class": 4}, created_at=timezone.now())])
    event = Event.objects.get(type=Event.Type.PAGE_SAVED)
    assert (event.type, event.hit_id, event.assignment_id, event.batch_id) == (
        Event.Type.PAGE_SAVED, assignment.hit_id, assignment.pk, None)
    assert event.data == {"page": 3, "n_selected": 5, "n_in_class": 4}
