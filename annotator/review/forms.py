"""Forms of the review console (CSRF-protected POSTs)."""
from django import forms
from django.core.exceptions import ValidationError

from ..models import Batch, TaskKind
from ..rules import FEEDBACK_MAX_CHARS, thresholds_for

DECISIONS = [("approve", "Approve"), ("reject", "Reject")]


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=DECISIONS)
    feedback = forms.CharField(
        required=False, max_length=FEEDBACK_MAX_CHARS, widget=forms.Textarea(attrs={"rows": 3}),
        help_text=f"Sent to the worker (at most {FEEDBACK_MAX_CHARS} characters; required to reject).",
    )

    @property
    def approve(self):
        return self.cleaned_data["decision"] == "approve"


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
