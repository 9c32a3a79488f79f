"""The paper's rejection rules (seed 000, C.1 and C.2), on the per-page summaries stored with each submission.

A HIT's assignment is rejected when any rule fires. Thresholds default to the paper's and can be overridden per
batch in Batch.rule_thresholds with these keys:

ImageNet-style
    min_recall                 0.333  share of the HIT's in-class candidates (I_c^in) the worker selected
    min_selections             30     selections over all candidates of the HIT (480 in the paper)
    min_completed_page_share   0.9    pages completed, as a share of the HIT's pages (9 of 10)
COCO-style
    min_recall                 0.333  mean over pages of the share of the image's ground-truth categories tagged
    min_icon_accuracy          0.75   share of placed icons that land on a mask of their category
    min_completed_page_share   0.8    pages completed, as a share of the HIT's pages (16 of 20)
Both
    rule 4: no annotation found AND the completion code the worker claims is wrong (no threshold).

Rules read nothing but these summaries and the HIT's page count, so reviewing a HIT costs one small query.
"""
import math
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError

from .models import TaskKind
from .worker.tokens import is_valid_completion_code

DEFAULT_THRESHOLDS = {
    TaskKind.IMAGENET: {"min_recall": 0.333, "min_selections": 30, "min_completed_page_share": 0.9},
    TaskKind.COCO: {"min_recall": 0.333, "min_icon_accuracy": 0.75, "min_completed_page_share": 0.8},
}
# MTurk's RejectAssignment/ApproveAssignment RequesterFeedback limit; the link CSV and Prolific use it too, so
# every market reads alike.
FEEDBACK_MAX_CHARS = 1024
# What an approved worker reads when nobody wrote anything else.
APPROVAL_FEEDBACK = "Thank you for your careful work on this HIT. It has been approved."


@dataclass(frozen=True)
class WorkSummary:
    """Totals of an assignment's PageSubmission summaries."""

    pages_completed: int = 0
    n_selected: int = 0
    n_in_class: int = 0
    n_in_class_selected: int = 0
    mean_category_recall: float | None = None
    n_icons: int = 0
    n_icons_on_mask: int = 0


@dataclass(frozen=True)
class Reason:
    rule: str
    message: str
    worker_text: str


@dataclass
class Decision:
    approve: bool
    reasons: list = field(default_factory=list)
    measurements: dict = field(default_factory=dict)
    thresholds: dict = field(default_factory=dict)

    def as_review(self):
        """What Assignment.review stores: the verdict, every number measured and why a rule fired."""
        return {
            "approve": self.approve,
            "reasons": [{"rule": r.rule, "message": r.message} for r in self.reasons],
            "measurements": self.measurements,
            "thresholds": self.thresholds,
        }

    def feedback(self):
        if self.approve:
            return APPROVAL_FEEDBACK
        lines = ["Thank you for the time you spent on this HIT. Unfortunately we could not approve it:"]
        lines += [f"- {reason.worker_text}" for reason in self.reasons]
        lines.append("Please read the instructions again before your next HIT; we would be glad to approve it.")
        return truncate_feedback("\n".join(lines))


def truncate_feedback(text):
    """Feedback cut to the markets' limit, marking the cut with an ellipsis."""
    text = (text or "").strip()
    if len(text) <= FEEDBACK_MAX_CHARS:
        return text
    return text[:FEEDBACK_MAX_CHARS - 1] + "…"


def thresholds_for(batch):
    """The paper's defaults for the batch's task kind, overridden by Batch.rule_thresholds (validated)."""
    defaults = DEFAULT_THRESHOLDS[batch.task_kind]
    overrides = batch.rule_thresholds or {}
    problems = {}
    for key, value in overrides.items():
        if key not in defaults:
            problems[f"rule_thresholds.{key}"] = [
                f"unknown threshold for {batch.task_kind}-style review; known: {', '.join(defaults)}"
            ]
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            problems[f"rule_thresholds.{key}"] = [f"{value!r} is not a non-negative number"]
        elif key.endswith(("_share", "_recall", "_accuracy")) and value > 1:
            problems[f"rule_thresholds.{key}"] = [f"{value} is a share and must be at most 1"]
    if problems:
        raise ValidationError(problems)
    return {**defaults, **overrides}


def check_completion_code(assignment, code):
    """Whether code is the completion code the server issued for this assignment (HMAC of its uuid)."""
    return bool(code) and is_valid_completion_code(assignment.uuid, code)


def evaluate(task_kind, summary, n_pages, thresholds, completion_code_ok):
    """Apply the four rules of the task kind; completion_code_ok says whether the code the worker claims is right."""
    reasons = []
    measurements = {"pages_completed": summary.pages_completed, "pages": n_pages}
    if task_kind == TaskKind.IMAGENET:
        _imagenet_rules(summary, thresholds, reasons, measurements)
    else:
        _coco_rules(summary, thresholds, reasons, measurements)
    required_pages = math.ceil(thresholds["min_completed_page_share"] * n_pages - 1e-9)
    if summary.pages_completed < required_pages:
        reasons.append(Reason(
            "pages_completed",
            f"pages completed {summary.pages_completed} < {required_pages} of {n_pages}",
            f"{summary.pages_completed} of the {n_pages} pages were completed; we need at least {required_pages}.",
        ))
    if summary.pages_completed == 0 and not completion_code_ok:
        reasons.append(Reason(
            "no_annotation",
            "no annotation found and the completion code is wrong",
            "we found no annotation for this HIT, and the completion code given does not match the one we issued.",
        ))
    return Decision(approve=not reasons, reasons=reasons, measurements=measurements, thresholds=thresholds)


def _imagenet_rules(summary, thresholds, reasons, measurements):
    measurements.update(selections=summary.n_selected, in_class=summary.n_in_class)
    if summary.n_in_class:
        recall = summary.n_in_class_selected / summary.n_in_class
        _share_rule(
            reasons, measurements, "recall", recall, thresholds["min_recall"],
            f"recall {recall:.3f} < {thresholds['min_recall']} on {summary.n_in_class} in-class images",
            f"you selected {summary.n_in_class_selected} of the {summary.n_in_class} images that show the "
            f"page's class ({recall:.0%}); we need at least {thresholds['min_recall']:.1%}.",
        )
    if summary.n_selected < thresholds["min_selections"]:
        reasons.append(Reason(
            "selections",
            f"selections {summary.n_selected} < {thresholds['min_selections']}",
            f"you selected {summary.n_selected} images in the whole HIT; a careful pass selects at least "
            f"{thresholds['min_selections']}.",
        ))


def _coco_rules(summary, thresholds, reasons, measurements):
    measurements.update(icons=summary.n_icons, icons_on_mask=summary.n_icons_on_mask)
    if summary.mean_category_recall is not None:
        recall = summary.mean_category_recall
        _share_rule(
            reasons, measurements, "recall", recall, thresholds["min_recall"],
            f"mean recall {recall:.3f} < {thresholds['min_recall']} over {summary.pages_completed} images",
            f"on average you tagged {recall:.0%} of the object categories present in each image; we need at "
            f"least {thresholds['min_recall']:.1%}.",
        )
    if summary.n_icons:
        accuracy = summary.n_icons_on_mask / summary.n_icons
        _share_rule(
            reasons, measurements, "icon_accuracy", accuracy, thresholds["min_icon_accuracy"],
            f"icon location accuracy {accuracy:.3f} < {thresholds['min_icon_accuracy']} on {summary.n_icons} icons",
            f"{summary.n_icons_on_mask} of your {summary.n_icons} icons were placed on an object of their "
            f"category ({accuracy:.0%}); we need at least {thresholds['min_icon_accuracy']:.0%}. Please drop "
            f"each icon on the object itself.",
        )


def _share_rule(reasons, measurements, rule, share, minimum, message, worker_text):
    """A rule on a measured share (kept, rounded, under the rule's name): it fires when the share is under minimum."""
    measurements[rule] = round(share, 4)
    if share < minimum:
        reasons.append(Reason(rule, message, worker_text))
