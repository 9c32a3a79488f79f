"""Forms of the review console (CSRF-protected POSTs)."""
from django import forms
from django.core.exceptions import ValidationError

from ..models import Assignment, Batch, TaskKind
from ..rules import APPROVAL_FEEDBACK, FEEDBACK_MAX_CHARS, thresholds_for

DECISIONS = [("approve", "Approve"), ("reject", "Reject")]


def _feedback_field(label, help_text):
    return forms.CharField(
        label=label, required=False, max_length=FEEDBACK_MAX_CHARS, help_text=help_text,
        widget=forms.Textarea(attrs={"rows": 4}),
    )


class DecisionForm(forms.Form):
    """A decision with one feedback box per decision: the worker gets only the text written for the chosen one."""

    decision = forms.ChoiceField(choices=DECISIONS, widget=forms.RadioSelect)
    approve_feedback = _feedback_field(
        "Feedback sent with the approval",
        f"Left empty, the worker reads: {APPROVAL_FEEDBACK} (at most {FEEDBACK_MAX_CHARS} characters)",
    )
    reject_feedback = _feedback_field(
        "Feedback sent with the rejection", f"Required: tell the worker why (at most {FEEDBACK_MAX_CHARS} characters)",
    )

    @classmethod
    def for_assignment(cls, assignment):
        """The form an assignment's page shows: the other decision chosen when it is decided, and each box holding
        only text written for its own decision."""
        approved, rejected = Assignment.State.APPROVED, Assignment.State.REJECTED
        return cls(initial={
            "decision": "reject" if assignment.state == approved else "approve",
            "approve_feedback": assignment.feedback if assignment.state == approved else "",
            "reject_feedback": assignment.feedback if assignment.state == rejected else "",
        })

    @property
    def approve(self):
        return self.cleaned_data["decision"] == "approve"

    @property
    def feedback(self):
        return self.cleaned_data["approve_feedback" if self.approve else "reject_feedback"]


class BulkDecisionForm(DecisionForm):
    assignments = forms.TypedMultipleChoiceField(coerce=int, choices=[])

    def __init__(self, *args, assignment_ids=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignments"].choices = [(pk, pk) for pk in assignment_ids]
        self.fields["assignments"].error_messages["required"] = "select at least one assignment"


class BonusForm(forms.Form):
    amount = forms.DecimalField(min_value=0.01, max_digits=8, decimal_places=2)
    reason = forms.CharField(max_length=FEEDBACK_MAX_CHARS, widget=forms.Textarea(attrs={"rows": 2}))


class BlockForm(forms.Form):
    reason = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


class BatchAdminForm(forms.ModelForm):
    """The Batch admin form, refusing rule thresholds the rules would not accept (named key, why)."""

    class Meta:
        model = Batch
        fields = "__all__"

    def clean(self):
        cleaned = super().clean()
        probe = Batch(task_kind=cleaned.get("task_kind") or TaskKind.IMAGENET,
                      rule_thresholds=cleaned.get("rule_thresholds") or {})
        try:
            thresholds_for(probe)
        except ValidationError as error:
            for problems in error.message_dict.values():
                for problem in problems:
                    self.add_error("rule_thresholds", problem)
        return cleaned
