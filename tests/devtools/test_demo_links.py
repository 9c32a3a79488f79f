"""demo_links: where to click in the running demo."""
import io

import pytest
from django.core.management import call_command
from django.utils import timezone

from annotator.models import Assignment, Batch, Hit
from tests import factories

pytestmark = pytest.mark.django_db


def test_demo_links_lead_only_to_work_the_demo_worker_can_still_do():
    batch = factories.BatchFactory(name="demo-coco-r1", status=Batch.Status.PUBLISHED)
    done = factories.HitFactory(batch=batch, index=0, status=Hit.Status.COMPLETED, published_at=timezone.now())
    full = factories.HitFactory(batch=batch, index=1, status=Hit.Status.PUBLISHED, max_assignments=1)
    factories.AssignmentFactory(hit=full, state=Assignment.State.APPROVED)
    tried = factories.HitFactory(batch=batch, index=2, status=Hit.Status.PUBLISHED, max_assignments=3)
    factories.AssignmentFactory(hit=tried, worker=factories.WorkerFactory(external_id="DEMO-WORKER"))
    open_hit = factories.HitFactory(batch=batch, index=3, status=Hit.Status.PUBLISHED, max_assignments=3)

    out = io.StringIO()
    call_command("demo_links", "--base-url", "http://demo.test", stdout=out)

    links = [line for line in out.getvalue().splitlines() if "/task/" in line]
    assert len(links) == 1 and f"/task/{open_hit.pk}/?" in links[0] and "{" not in links[0]
    assert all(f"/task/{hit.pk}/" not in out.getvalue() for hit in (done, full, tried))
