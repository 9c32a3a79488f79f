"""The link provider: task URLs with configurable parameter names, publishing, and the decisions CSV."""
import csv
import io
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from annotator.models import Assignment, Batch, Event, Hit
from annotator.providers import services
from annotator.providers.link import PARAM_PRESETS, LinkProvider
from tests.factories import AssignmentFactory, BatchFactory, HitFactory, WorkerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def public_url(settings):
    settings.PUBLIC_BASE_URL = "https://annotate.example.org/"


def test_generic_task_url_carries_worker_and_assignment_parameters():
    hit = HitFactory()
    url = LinkProvider().task_url(hit, worker="W17", assignment="S9")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"https://annotate.example.org/task/{hit.pk}/"
    assert parse_qs(parts.query) == {"workerId": ["W17"], "assignmentId": ["S9"]}


def test_prolific_preset_prints_prolific_placeholders():
    hit = HitFactory(batch=BatchFactory(provider_config={"params": PARAM_PRESETS["prolific"]}))
    assert LinkProvider().task_url(hit) == (
        f"https://annotate.example.org/task/{hit.pk}/"
        "?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
    )


def test_publish_prints_one_url_per_hit_and_is_idempotent():
    batch = BatchFactory()
    hits = [HitFactory(batch=batch, index=i) for i in range(3)]
    out = io.StringIO()
    call_command("publish", batch.name, "--provider", "link", "--params", "prolific",
                 "--completion-url", "https://app.prolific.com/submissions/complete?cc=C1", stdout=out, verbosity=0)
    lines = out.getvalue().splitlines()
    assert [urlsplit(line).path for line in lines] == [f"/task/{hit.pk}/" for hit in hits]
    assert all("PROLIFIC_PID=" in line for line in lines)
    batch.refresh_from_db()
    assert batch.status == Batch.Status.PUBLISHED
    assert batch.provider_config["completion_url"] == "https://app.prolific.com/submissions/complete?cc=C1"
    assert batch.provider_config["params"] == PARAM_PRESETS["prolific"]
    events = Event.objects.filter(type=Event.Type.PUBLISHED).count()

    again = io.StringIO()
    call_command("publish", batch.name, stdout=again, verbosity=0)
    assert again.getvalue().splitlines() == lines
    assert Event.objects.filter(type=Event.Type.PUBLISHED).count() == events


def test_publish_explains_what_is_wrong():
    with pytest.raises(CommandError, match="does not exist"):
        call_command("publish", "no-such-batch")
    empty = BatchFactory()
    with pytest.raises(CommandError, match="no HITs"):
        call_command("publish", empty.name)
    odd = BatchFactory(provider_config={"params": "prolific"})
    HitFactory(batch=odd)
    with pytest.raises(CommandError, match="params"):
        call_command("publish", odd.name)
    assert not Hit.objects.filter(status=Hit.Status.PUBLISHED).exists()


def test_decisions_csv_lists_decided_work_with_bonuses(tmp_path):
    batch = BatchFactory()
    hit = HitFactory(batch=batch, index=4)
    approved = AssignmentFactory(hit=hit, worker=WorkerFactory(external_id="PID-A"), external_id="SESSION-A",
                                 state=Assignment.State.APPROVED, completion_code="ABC123")
    AssignmentFactory(hit=hit, worker=WorkerFactory(external_id="PID-B"), external_id="SESSION-B",
                      state=Assignment.State.REJECTED, feedback="Only 3 of 10 pages were completed.")
    AssignmentFactory(hit=hit, worker=WorkerFactory(external_id="PID-C"), state=Assignment.State.SUBMITTED)
    services.pay_bonus(approved, Decimal("0.50"), "Thorough work", "g1")
    services.pay_bonus(approved, Decimal("0.50"), "Thorough work", "g1")
    services.pay_bonus(approved, "0.25", "Quick", "g2")

    out = tmp_path / "decisions.csv"
    call_command("export_decisions", batch.name, "--out", str(out), stderr=io.StringIO())
    rows = list(csv.DictReader(out.open()))
    assert [(r["worker_id"], r["assignment_id"], r["decision"], r["bonus"]) for r in rows] == [
        ("PID-A", "SESSION-A", "approve", "0.75"), ("PID-B", "SESSION-B", "reject", "0.00"),
    ]
    assert rows[0]["completion_code"] == "ABC123"
    assert rows[1]["feedback"] == "Only 3 of 10 pages were completed."
    assert rows[0]["hit"] == "4"


def test_staff_publish_and_expire_from_the_admin(admin_client, django_capture_on_commit_callbacks):
    batch = BatchFactory()
    hit = HitFactory(batch=batch)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post("/admin/annotator/batch/", {
            "action": "publish_on_market", "_selected_action": [batch.pk]}, follow=True)
    assert [str(m) for m in response.context["messages"]] == [f"publishing queued for 1: {batch.name}"]
    hit.refresh_from_db()
    assert hit.status == Hit.Status.PUBLISHED
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post("/admin/annotator/hit/", {"action": "expire_on_market", "_selected_action": [hit.pk]})
    hit.refresh_from_db()
    assert hit.status == Hit.Status.EXPIRED
    assert Event.objects.filter(hit=hit, type=Event.Type.EXPIRED).exists()


def test_publish_says_its_lines_are_templates_on_stderr_and_prints_only_the_urls():
    batch = BatchFactory()
    hit = HitFactory(batch=batch)
    out, err = io.StringIO(), io.StringIO()

    call_command("publish", batch.name, stdout=out, stderr=err)

    assert out.getvalue().splitlines() == [
        f"{settings.PUBLIC_BASE_URL.rstrip('/')}/task/{hit.pk}/?workerId={{workerId}}&assignmentId={{assignmentId}}"
    ]
    assert err.getvalue().strip() == (f"Task URL templates of {batch.name}, one per HIT: the market replaces "
                                      "{assignmentId} and {workerId} with each worker's own values.")
