from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from annotator import signals
from annotator.models import Assignment, Event, Hit, TaskKind
from annotator.review import services
from annotator.worker.tokens import completion_code
from tests import factories
from tests.annotator.review_data import good_imagenet, spam_imagenet, submitted_assignment

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent():
    """Signals sent during the test, by name."""
    received = {"decided": [], "repost": [], "bonus": []}

    def on_decided(sender, decided, batch_ids, actor, **kwargs):
        states = dict(Assignment.objects.filter(pk__in=decided).values_list("pk", "state"))
        received["decided"] += [(pk, previous_state, states[pk]) for pk, previous_state in decided.items()]

    def on_repost(sender, hit, count, **kwargs):
        received["repost"].append((hit.pk, count))

    def on_bonus(sender, assignment, amount, reason, actor, **kwargs):
        received["bonus"].append((assignment.pk, amount, reason))

    signals.assignments_decided.connect(on_decided)
    signals.hit_needs_repost.connect(on_repost)
    signals.bonus_granted.connect(on_bonus)
    yield received
    signals.assignments_decided.disconnect(on_decided)
    signals.hit_needs_repost.disconnect(on_repost)
    signals.bonus_granted.disconnect(on_bonus)


def event_types(assignment):
    return list(Event.objects.filter(assignment=assignment).values_list("type", flat=True))


def test_submission_is_reviewed_automatically_after_commit(django_capture_on_commit_callbacks, sent):
    assignment = good_imagenet()

    with django_capture_on_commit_callbacks(execute=True):
        signals.assignment_submitted.send(sender=Assignment, assignment=assignment)

    assignment.refresh_from_db()
    assert assignment.state == Assignment.State.APPROVED
    assert assignment.decision_source == Assignment.DecisionSource.AUTO
    assert assignment.review["approve"] is True and assignment.review["measurements"]["recall"] == pytest.approx(0.9444)
    assert event_types(assignment) == [Event.Type.AUTO_REVIEWED, Event.Type.APPROVED]
    assert sent["decided"] == [(assignment.pk, "submitted", "approved")]
    assert Hit.objects.get(pk=assignment.hit_id).status == Hit.Status.COMPLETED
    assert sent["repost"] == []


def test_rejection_stores_the_reasons_sends_feedback_and_asks_for_a_repost(sent):
    assignment = spam_imagenet()

    decision = services.auto_review(assignment.pk)

    assignment.refresh_from_db()
    assert not decision.approve and assignment.state == Assignment.State.REJECTED
    assert [r["message"] for r in assignment.review["reasons"]] == [
        "recall 0.025 < 0.333 on 360 in-class images", "selections 12 < 30",
    ]
    assert "you selected 9 of the 360 images" in assignment.feedback
    assert event_types(assignment) == [Event.Type.AUTO_REVIEWED, Event.Type.REJECTED]
    assert sent["repost"] == [(assignment.hit_id, 1)]
    assert Hit.objects.get(pk=assignment.hit_id).status == Hit.Status.PUBLISHED


def test_a_decided_assignment_is_not_reviewed_twice(sent):
    assignment = good_imagenet()
    services.auto_review(assignment.pk)

    assert services.auto_review(assignment.pk) is None
    assert event_types(assignment).count(Event.Type.APPROVED) == 1 and len(sent["decided"]) == 1


def test_no_repost_while_another_worker_is_still_on_the_hit(sent):
    first = spam_imagenet()
    factories.AssignmentFactory(hit=first.hit, state=Assignment.State.IN_PROGRESS)

    services.auto_review(first.pk)

    assert sent["repost"] == []


def test_an_open_place_on_the_hit_counts_against_what_is_missing(sent):
    """Re-posting used to add the missing count whatever places were still open (in the soak, max_assignments
    grew past smallint); a place re-posted or posted earlier and not taken yet covers one missing approval."""
    first = spam_imagenet()
    hit = first.hit
    second = spam_imagenet(hit=hit)
    factories.AssignmentFactory(hit=hit, state=Assignment.State.RETURNED)  # gave its place back
    Hit.objects.filter(pk=hit.pk).update(max_assignments=3)  # one place nobody holds

    services.auto_review(first.pk)
    services.auto_review(second.pk)
    assert sent["repost"] == []

    third = spam_imagenet(hit=hit)  # takes the open place, and is rejected too
    services.auto_review(third.pk)
    assert sent["repost"] == [(hit.pk, 1)]


def test_admin_override_flips_the_decision_with_an_audit_trail(admin_user, sent):
    assignment = spam_imagenet()
    services.auto_review(assignment.pk)

    services.decide(assignment, approve=True, actor=admin_user, feedback="Approved after a manual look; thanks!")

    assignment.refresh_from_db()
    assert assignment.state == Assignment.State.APPROVED
    assert assignment.decision_source == Assignment.DecisionSource.ADMIN
    assert assignment.feedback == "Approved after a manual look; thanks!"
    assert event_types(assignment)[-2:] == [Event.Type.OVERRIDDEN, Event.Type.APPROVED]
    overridden = Event.objects.get(assignment=assignment, type=Event.Type.OVERRIDDEN)
    assert overridden.actor == admin_user and overridden.data["from"] == "rejected"
    assert sent["decided"][-1] == (assignment.pk, "rejected", "approved")
    assert Hit.objects.get(pk=assignment.hit_id).status == Hit.Status.COMPLETED


def test_admin_rejection_needs_feedback_within_the_market_limit(admin_user):
    assignment = good_imagenet()
    with pytest.raises(ValidationError, match="a rejection needs feedback"):
        services.decide(assignment, approve=False, actor=admin_user, feedback="  ")
    with pytest.raises(ValidationError, match="1025 characters"):
        services.decide(assignment, approve=False, actor=admin_user, feedback="x" * 1025)
    assignment.refresh_from_db()
    assert assignment.state == Assignment.State.SUBMITTED and event_types(assignment) == []


def test_bulk_reject_applies_one_feedback_to_all(admin_user, sent):
    assignments = [good_imagenet(), good_imagenet()]

    changed = services.bulk_decide([a.pk for a in assignments], approve=False, actor=admin_user,
                                   feedback="The clicks were random.")

    assert changed == 2
    for assignment in assignments:
        assignment.refresh_from_db()
        assert (assignment.state, assignment.feedback) == (Assignment.State.REJECTED, "The clicks were random.")
    assert len(sent["repost"]) == 2


def test_bulk_decide_with_an_unknown_id_writes_nothing(admin_user):
    assignment = good_imagenet()
    with pytest.raises(ValidationError, match="no assignments with ids"):
        services.bulk_decide([assignment.pk, 999999], approve=False, actor=admin_user, feedback="no")
    assignment.refresh_from_db()
    assert assignment.state == Assignment.State.SUBMITTED


def test_review_command_dry_run_reports_and_apply_decides(capsys, sent):
    good = good_imagenet()
    bad = spam_imagenet(batch=good.hit.batch)

    call_command("review", good.hit.batch.name)

    out = capsys.readouterr().out
    assert f"assignment {bad.pk} HIT {bad.hit.index} [submitted] -> reject: recall 0.025 < 0.333" in out
    assert "2 reviewed, 1 approve, 1 reject (reject rate 50.0%); would change 2" in out
    assert Assignment.objects.filter(state=Assignment.State.SUBMITTED).count() == 2

    call_command("review", good.hit.batch.name, "--apply")

    assert Assignment.objects.get(pk=good.pk).state == Assignment.State.APPROVED
    assert Assignment.objects.get(pk=bad.pk).state == Assignment.State.REJECTED
    assert "changed 2" in capsys.readouterr().out


def test_rerunning_rules_with_new_thresholds_overrides_auto_decisions_but_not_admin_ones(admin_user):
    auto = submitted_assignment(n_selected=200, n_in_class=360, n_in_class_selected=150)
    batch = auto.hit.batch
    admin_decided = submitted_assignment(batch=batch, n_selected=200, n_in_class=360, n_in_class_selected=150)
    services.auto_review(auto.pk)
    services.decide(admin_decided, approve=True, actor=admin_user)
    batch.rule_thresholds = {"min_recall": 0.5}
    batch.save()

    result = services.review_batch(batch, apply=True)

    assert result.changed == 1
    assert Assignment.objects.get(pk=auto.pk).state == Assignment.State.REJECTED
    assert Assignment.objects.get(pk=admin_decided.pk).state == Assignment.State.APPROVED
    assert event_types(auto)[-3:] == [Event.Type.AUTO_REVIEWED, Event.Type.OVERRIDDEN, Event.Type.REJECTED]


def test_coco_assignment_with_misplaced_icons_is_rejected():
    assignment = submitted_assignment(kind=TaskKind.COCO, n_pages=20, n_gt_categories=40, n_tagged_correct=30,
                                      n_icons=40, n_icons_on_mask=20)
    decision = services.auto_review(assignment.pk)
    assert [r.rule for r in decision.reasons] == ["icon_accuracy"]
    assert "20 of your 40 icons were placed on an object of their category (50%)" in decision.feedback()


def test_block_and_unblock_are_logged(admin_user):
    worker = factories.WorkerFactory()
    services.block_worker(worker, admin_user, "random clicks on 3 HITs")
    worker.refresh_from_db()
    assert worker.blocked and worker.blocked_reason == "random clicks on 3 HITs"
    services.unblock_worker(worker, admin_user)
    worker.refresh_from_db()
    assert not worker.blocked
    assert list(Event.objects.filter(worker=worker).values_list("type", flat=True)) == ["blocked", "unblocked"]
    with pytest.raises(ValidationError, match="say why"):
        services.block_worker(worker, admin_user, "")


def test_bonus_is_validated_and_handed_to_the_provider(admin_user, sent):
    assignment = good_imagenet()
    with pytest.raises(ValidationError, match="bonus decided work only"):
        services.grant_bonus(assignment, "0.50", admin_user, "great work")
    services.auto_review(assignment.pk)
    assignment.refresh_from_db()
    for amount in ("-1", "0.005", "abc"):
        with pytest.raises(ValidationError):
            services.grant_bonus(assignment, amount, admin_user, "great work")

    services.grant_bonus(assignment, "0.50", admin_user, "great work")

    assert sent["bonus"] == [(assignment.pk, Decimal("0.50"), "great work")]


@pytest.mark.parametrize("claimed, rules_fired", [
    ("right", ["selections", "pages_completed"]),
    ("0000000000000000", ["selections", "pages_completed", "no_annotation"]),
])
def test_rule_four_reads_the_code_the_worker_gave_the_market(claimed, rules_fired):
    assignment = submitted_assignment(completed=0)
    code = completion_code(assignment.uuid) if claimed == "right" else claimed
    Event.objects.create(type=Event.Type.SYNCED, assignment=assignment,
                         data={"market_status": "Submitted", "claimed_completion_code": code})

    decision = services.auto_review(assignment.pk)

    assert [reason.rule for reason in decision.reasons] == rules_fired
