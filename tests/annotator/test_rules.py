import pytest
from django.core.exceptions import ValidationError

from annotator import rules
from annotator.models import TaskKind
from annotator.review import selectors
from annotator.rules import WorkSummary
from annotator.worker.tokens import completion_code
from tests import factories
from tests.annotator.review_data import submitted_assignment

IMAGENET = rules.DEFAULT_THRESHOLDS[TaskKind.IMAGENET]
COCO = rules.DEFAULT_THRESHOLDS[TaskKind.COCO]


def imagenet(summary_fields, n_pages=10, code_ok=False):
    fields = {"pages_completed": 10, "n_selected": 400, "n_in_class": 360, "n_in_class_selected": 300}
    fields.update(summary_fields)
    return rules.evaluate(TaskKind.IMAGENET, WorkSummary(**fields), n_pages, IMAGENET, code_ok)


def coco(summary_fields, n_pages=20, code_ok=False):
    fields = {"pages_completed": 20, "mean_category_recall": 0.8, "n_icons": 40, "n_icons_on_mask": 36}
    fields.update(summary_fields)
    return rules.evaluate(TaskKind.COCO, WorkSummary(**fields), n_pages, COCO, code_ok)


def fired(decision):
    return [reason.rule for reason in decision.reasons]


def test_careful_imagenet_work_is_approved_with_its_numbers():
    decision = imagenet({})
    assert decision.approve and fired(decision) == []
    assert decision.measurements["recall"] == pytest.approx(300 / 360, abs=1e-4)
    assert decision.feedback().startswith("Thank you")


@pytest.mark.parametrize("selected_in_class, approve", [(333, True), (332, False), (334, True)])
def test_imagenet_recall_rule_at_its_threshold(selected_in_class, approve):
    decision = imagenet({"n_in_class": 1000, "n_in_class_selected": selected_in_class})
    assert decision.approve is approve
    assert ("recall" in fired(decision)) is not approve


def test_imagenet_recall_reason_carries_the_numbers():
    decision = imagenet({"n_in_class": 360, "n_in_class_selected": 76})
    assert decision.reasons[0].message == "recall 0.211 < 0.333 on 360 in-class images"
    assert "you selected 76 of the 360 images that show the page's class (21%)" in decision.feedback()


@pytest.mark.parametrize("selections, approve", [(30, True), (29, False), (31, True)])
def test_imagenet_selections_rule_at_its_threshold(selections, approve):
    decision = imagenet({"n_selected": selections, "n_in_class": 60, "n_in_class_selected": 25})
    assert decision.approve is approve
    assert fired(decision) == ([] if approve else ["selections"])
    if not approve:
        assert decision.reasons[0].message == "selections 29 < 30"


@pytest.mark.parametrize("completed, approve", [(9, True), (8, False), (10, True)])
def test_imagenet_completed_pages_rule_needs_9_of_10(completed, approve):
    decision = imagenet({"pages_completed": completed})
    assert fired(decision) == ([] if approve else ["pages_completed"])
    if not approve:
        assert decision.reasons[0].message == "pages completed 8 < 9 of 10"


@pytest.mark.parametrize("recall, approve", [(0.333, True), (0.3329, False), (0.3331, True)])
def test_coco_recall_rule_at_its_threshold(recall, approve):
    decision = coco({"mean_category_recall": recall})
    assert fired(decision) == ([] if approve else ["recall"])


@pytest.mark.parametrize("on_mask, approve", [(75, True), (74, False), (76, True)])
def test_coco_icon_accuracy_rule_at_its_threshold(on_mask, approve):
    decision = coco({"n_icons": 100, "n_icons_on_mask": on_mask})
    assert fired(decision) == ([] if approve else ["icon_accuracy"])
    if not approve:
        assert decision.reasons[0].message == "icon location accuracy 0.740 < 0.75 on 100 icons"


@pytest.mark.parametrize("completed, approve", [(16, True), (15, False), (17, True)])
def test_coco_completed_pages_rule_needs_16_of_20(completed, approve):
    assert fired(coco({"pages_completed": completed})) == ([] if approve else ["pages_completed"])


@pytest.mark.parametrize(
    "code_ok, expected", [(True, ["pages_completed"]), (False, ["pages_completed", "no_annotation"])]
)
def test_rule_four_fires_only_without_annotation_and_with_a_wrong_code(code_ok, expected):
    nothing = WorkSummary()
    assert fired(rules.evaluate(TaskKind.IMAGENET, nothing, 10, IMAGENET, code_ok))[-len(expected):] == expected
    assert fired(rules.evaluate(TaskKind.COCO, nothing, 20, COCO, code_ok))[-len(expected):] == expected
    assert "no_annotation" not in fired(imagenet({}, code_ok=False))


def test_rejection_feedback_is_polite_specific_and_fits_the_market_limit():
    decision = imagenet({"n_selected": 3, "n_in_class_selected": 2, "pages_completed": 1})
    text = decision.feedback()
    assert text.startswith("Thank you for the time you spent on this HIT.")
    assert "1 of the 10 pages were completed; we need at least 9." in text
    assert "you selected 3 images in the whole HIT" in text
    assert len(text) <= rules.FEEDBACK_MAX_CHARS
    assert len(rules.truncate_feedback("x" * 5000)) == rules.FEEDBACK_MAX_CHARS


@pytest.mark.django_db
def test_batch_thresholds_override_the_defaults_and_bad_keys_are_named():
    batch = factories.BatchFactory(rule_thresholds={"min_recall": 0.5})
    assert rules.thresholds_for(batch) == {**IMAGENET, "min_recall": 0.5}
    batch.rule_thresholds = {"min_icon_accuracy": 0.5, "min_selections": "many"}
    with pytest.raises(ValidationError) as error:
        rules.thresholds_for(batch)
    problems = error.value.message_dict
    assert "unknown threshold for imagenet-style review" in str(problems["rule_thresholds.min_icon_accuracy"])
    assert "'many' is not a non-negative number" in str(problems["rule_thresholds.min_selections"])


@pytest.mark.django_db
def test_summaries_are_totalled_from_page_submissions():
    imagenet_assignment = submitted_assignment(completed=9, n_selected=31, n_in_class=324, n_in_class_selected=120)
    coco_assignment = submitted_assignment(
        kind=TaskKind.COCO, n_pages=20, completed=16, n_gt_categories=32, n_tagged_correct=16, n_icons=20,
        n_icons_on_mask=15,
    )
    summaries = selectors.work_summaries([imagenet_assignment.pk, coco_assignment.pk])
    assert summaries[imagenet_assignment.pk] == WorkSummary(
        pages_completed=9, n_selected=31, n_in_class=324, n_in_class_selected=120,
        mean_category_recall=None, n_icons=0, n_icons_on_mask=0,
    )
    coco_summary = summaries[coco_assignment.pk]
    assert coco_summary.pages_completed == 16 and coco_summary.mean_category_recall == pytest.approx(0.5)
    assert (coco_summary.n_icons, coco_summary.n_icons_on_mask) == (20, 15)


@pytest.mark.django_db
def test_completion_code_check_matches_the_code_the_server_issues():
    assignment = submitted_assignment(completed=0)
    assert rules.check_completion_code(assignment, completion_code(assignment.uuid))
    assert rules.check_completion_code(assignment, completion_code(assignment.uuid).lower())
    assert not rules.check_completion_code(assignment, "0000000000000000")
    assert not rules.check_completion_code(assignment, "")
