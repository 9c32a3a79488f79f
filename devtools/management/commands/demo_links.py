from django.conf import settings
from django.core.management.base import BaseCommand
from django.db.models import Count, F

from annotator.models import Batch, Hit
from annotator.providers.base import get_provider


DEMO_WORKER = "DEMO-WORKER"


class Command(BaseCommand):
    help = "Print where to click in the running demo: admin, review console, a worker task link per batch, reports."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default=settings.PUBLIC_BASE_URL)

    def handle(self, *args, base_url, **options):
        base = base_url.rstrip("/")
        lines = [
            ("Start page (what each page is for)", f"{base}/"),
            ("Admin (datasets, HITs, assignments, training jobs)", f"{base}/admin/"),
            ("Review console (dashboards, playbacks, decisions)", f"{base}/review/"),
            ("Byproduct reports of each batch", f"{base}/review/reports/"),
            ("Training jobs and model versions", f"{base}/admin/training/"),
            ("API docs (OpenAPI at /api/schema/)", f"{base}/api/docs/"),
        ]
        for batch in Batch.objects.filter(name__startswith="demo-").order_by("name"):
            # A HIT still taking workers, which the demo worker has not done yet: the link opens work to do.
            open_hit = (
                batch.hits.filter(status=Hit.Status.PUBLISHED)
                .exclude(assignments__worker__external_id=DEMO_WORKER)
                .annotate(taken=Count("assignments"))
                .filter(taken__lt=F("max_assignments"))
                .order_by("index")
                .first()
            )
            # A draft batch takes no workers: its link would only say so.
            if open_hit is not None and batch.status == Batch.Status.PUBLISHED:
                market_ids = {"study": open_hit.external_id} if open_hit.external_id else {}
                url = get_provider(batch).task_url(open_hit, worker=DEMO_WORKER, assignment=f"demo-{open_hit.pk}",
                                                   **market_ids)
                lines.append((f"Do a HIT of {batch.name} as a worker", url.replace(settings.PUBLIC_BASE_URL, base, 1)))
        width = max(len(label) for label, _ in lines)
        for label, url in lines:
            self.stdout.write(f"  {label:<{width}}  {url}")
