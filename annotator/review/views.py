"""The staff review console: batch dashboards, assignment playbacks, decisions, worker pages.

Pages are rendered with Django templates (autoescaped; playback data goes through json_script), send a
Content-Security-Policy without inline script (annotator/csp.py), and every change is a CSRF-protected POST that
calls a service and redirects back.
"""

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from config.celery import send_on_commit

from .. import report
from ..csp import staff_page_policy
from ..exports import services as export_services
from ..models import Assignment, Batch, Worker
from . import forms, selectors, services, tasks

ASSIGNMENTS_PER_PAGE = 100


def _error_messages(request, problems_by_field):
    for field, problems in problems_by_field.items():
        for problem in problems:
            messages.error(request, f"{field}: {problem}")


def _apply(request, form, change):
    """Make the change (a service call returning the success message) once the form is valid; the form's or the
    service's problems become error messages."""
    if not form.is_valid():
        _error_messages(request, form.errors)
        return
    try:
        message = change()
    except ValidationError as error:
        _error_messages(request, error.message_dict)
    else:
        messages.success(request, message)


@staff_page_policy
@staff_member_required
def batch_list(request):
    return render(request, "annotator/review/batch_list.html", {"batches": selectors.batches_overview()})


@staff_page_policy
@staff_member_required
def batch_dashboard(request, batch_id):
    batch = get_object_or_404(Batch.objects.select_related("dataset"), pk=batch_id)
    state = request.GET.get("state", "")
    stats = selectors.batch_dashboard(batch)
    paginator = Paginator(selectors.batch_assignments(batch, state), ASSIGNMENTS_PER_PAGE)
    # The table's count is the dashboard's (per state), not a second count of the batch's assignments.
    by_state = stats["assignments_by_state"]
    paginator.count = by_state.get(state, 0) if state else sum(by_state.values())
    page = paginator.get_page(request.GET.get("page"))
    markets = selectors.market_states([assignment.pk for assignment in page])
    for assignment in page:
        assignment.market_state = markets.get(assignment.pk, "")
    return render(request, "annotator/review/batch.html", {
        "batch": batch,
        "stats": stats,
        "page": page,
        "state": state,
        "states": Assignment.State.choices,
        "decision_form": forms.DecisionForm(initial={"decision": "approve"}),
    })


@staff_member_required
@require_POST
def bulk_decide(request, batch_id):
    batch = get_object_or_404(Batch, pk=batch_id)
    ids = selectors.batch_assignments(batch, "").values_list("pk", flat=True)
    form = forms.BulkDecisionForm(request.POST, assignment_ids=ids)

    def change():
        changed = services.bulk_decide(form.cleaned_data["assignments"], form.approve, request.user, form.feedback)
        return f"{changed} assignments {'approved' if form.approve else 'rejected'}."

    _apply(request, form, change)
    url = reverse("review:batch", kwargs={"batch_id": batch.pk})
    state = request.POST.get("state", "")
    return redirect(f"{url}?{urlencode({'state': state})}" if state in Assignment.State.values else url)


@staff_member_required
@require_POST
def rerun_rules(request, batch_id):
    batch = get_object_or_404(Batch, pk=batch_id)
    send_on_commit(tasks.review_batch, batch.pk, True)
    messages.success(request, f"The rules are being re-run on {batch.name}; decisions by staff are kept.")
    return redirect("review:batch", batch_id=batch.pk)


@staff_page_policy
@staff_member_required
def reports(request):
    batches = [(batch, report.stored_reports(batch))
               for batch in Batch.objects.select_related("dataset").order_by("name")]
    return render(request, "annotator/review/reports.html", {"batches": batches})


@staff_member_required
@require_POST
def build_report(request, batch_id):
    batch = get_object_or_404(Batch, pk=batch_id)
    export_services.start_byproduct_report(batch)
    messages.success(request, f"The byproduct report of {batch.name} is being built; it appears here when it is done.")
    return redirect("review:reports")


@staff_page_policy
@staff_member_required
def assignment_detail(request, assignment_id):
    assignment = get_object_or_404(
        selectors.with_working_ms(Assignment.objects.select_related("hit__batch__dataset", "worker")), pk=assignment_id
    )
    return render(request, "annotator/review/assignment.html", {
        "assignment": assignment,
        "batch": assignment.hit.batch,
        "playback": selectors.assignment_playback(assignment),
        "events": selectors.assignment_events(assignment),
        "market_state": selectors.market_states([assignment.pk]).get(assignment.pk, ""),
        "decision_form": forms.DecisionForm.for_assignment(assignment),
        "bonus_form": forms.BonusForm(),
    })


@staff_member_required
@require_POST
def decide(request, assignment_id):
    assignment = get_object_or_404(Assignment, pk=assignment_id)
    form = forms.DecisionForm(request.POST)

    def change():
        decided = services.decide(assignment, form.approve, request.user, form.feedback)
        return f"Assignment {decided.pk} is now {decided.state}."

    _apply(request, form, change)
    return redirect("review:assignment", assignment_id=assignment.pk)


@staff_member_required
@require_POST
def bonus(request, assignment_id):
    assignment = get_object_or_404(Assignment, pk=assignment_id)
    form = forms.BonusForm(request.POST)

    def change():
        services.grant_bonus(assignment, form.cleaned_data["amount"], request.user, form.cleaned_data["reason"])
        return f"Bonus of ${form.cleaned_data['amount']} sent to the provider."

    _apply(request, form, change)
    return redirect("review:assignment", assignment_id=assignment.pk)


@staff_page_policy
@staff_member_required
def worker_detail(request, worker_id):
    worker = get_object_or_404(Worker, pk=worker_id)
    history = selectors.worker_history(worker)
    page = Paginator(history["assignments"], ASSIGNMENTS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "annotator/review/worker.html", {
        "worker": worker, "history": history, "page": page, "block_form": forms.BlockForm(),
    })


@staff_member_required
@require_POST
def block(request, worker_id):
    worker = get_object_or_404(Worker, pk=worker_id)
    form = forms.BlockForm(request.POST)

    def change():
        services.block_worker(worker, request.user, form.cleaned_data["reason"])
        return "Worker blocked."

    _apply(request, form, change)
    return redirect("review:worker", worker_id=worker.pk)


@staff_member_required
@require_POST
def unblock(request, worker_id):
    worker = get_object_or_404(Worker, pk=worker_id)
    services.unblock_worker(worker, request.user)
    messages.success(request, "Worker unblocked.")
    return redirect("review:worker", worker_id=worker.pk)
