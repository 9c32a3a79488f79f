"""Screenshots of every page for docs/screenshots/ (README): run with LUAB_SCREENSHOTS=docs/screenshots, after
tests/e2e/test_worker_layout.py (which shoots the worker pages it tests). Skipped otherwise.

Here: the COCO task page on the demo's own data (80 COCO categories drawn as their icons), the review console
(dashboard, replay paused half-way) and the training pages (the add form, a running job, a finished one)."""
import os

import pytest
from django.core.management import call_command
from django.utils import timezone

from annotator.models import Batch, Hit, ImageNetRecord
from annotator.review import services as review_services
from devtools import demo_data
from tests import factories
from tests.annotator.review_data import submitted_assignment
from tests.e2e.conftest import make_imagenet_hit, task_url, wait_for_images
from tests.e2e.test_review_console import log_in
from tests.e2e.test_worker_layout import VIEWPORTS, shoot
from training.models import TrainingJob

pytestmark = [
    pytest.mark.e2e, pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("LUAB_SCREENSHOTS"), reason="set LUAB_SCREENSHOTS to a folder"),
]


@pytest.mark.parametrize("name", list(VIEWPORTS))
def test_coco_page_on_the_demo_data(name, browser_context_factory, live_server, tmp_path):
    demo_data.generate_coco(tmp_path, seed=3, per_class=1)
    call_command("import_coco", images=str(tmp_path / "images" / "train"),
                 annotations=str(tmp_path / "annotations" / "instances_train.json"), name="demo-coco", verbosity=0)
    call_command("build_hits", dataset="demo-coco", batch="demo-coco-r1", verbosity=0)
    batch = Batch.objects.get(name="demo-coco-r1")
    batch.status = Batch.Status.PUBLISHED
    batch.save()
    hit = batch.hits.order_by("index").first()
    Hit.objects.filter(pk=hit.pk).update(status=Hit.Status.PUBLISHED, published_at=timezone.now())
    page = browser_context_factory(**VIEWPORTS[name]).new_page()
    page.goto(task_url(live_server, hit))
    page.locator("img.coco-image").wait_for()
    wait_for_images(page)
    page.click(".group-next")
    shoot(page, f"worker-coco-{name}")


def test_review_console(browser_context_factory, live_server):
    hit = make_imagenet_hit(items_per_page=(12, 12))
    assignment = submitted_assignment(hit=hit, n_selected=40, n_in_class=9, n_in_class_selected=9, minutes=8.5)
    first_page = hit.pages.get(index=0)
    start = 1_700_000_000_000
    for item in first_page.items.order_by("position")[:9]:
        at = start + 1500 * item.position
        ImageNetRecord.objects.create(
            assignment=assignment, page=first_page, image=item.image, selected=item.in_class,
            selected_record=[{"x": 0.45, "y": 0.55, "time": at + 900}] if item.in_class else [],
            mouse_tracking=[{"x": 0.1 + 0.08 * k, "y": 0.2 + 0.06 * k, "time": at + 100 * k} for k in range(9)],
            hovered_record=[{"action": "enter", "time": at}, {"action": "leave", "time": at + 1400}],
            image_width=150, image_height=113,
        )
    for _ in range(3):
        submitted_assignment(hit=hit, n_selected=40, n_in_class=9, n_in_class_selected=1, minutes=3)
    for done in hit.assignments.all():
        review_services.auto_review(done.pk)
    page = browser_context_factory(viewport={"width": 1366, "height": 900}).new_page()
    log_in(page, live_server, f"/review/batches/{hit.batch_id}/")
    shoot(page, "review-dashboard")
    page.goto(f"{live_server.url}/review/assignments/{assignment.pk}/")
    page.wait_for_function("() => document.querySelector('#replay canvas')?.dataset.drawn === 'true'")
    page.locator("#replay-time").fill("7000")
    page.locator("#replay-player").scroll_into_view_if_needed()
    shoot(page, "review-replay")


def test_training_pages(browser_context_factory, live_server):
    dataset = factories.DatasetFactory(name="demo-imagenet")
    factories.BatchFactory(dataset=dataset, name="demo-imagenet-r1")
    running = TrainingJob.objects.create(
        dataset=dataset, status="running", source=TrainingJob.Source.ADMIN, config={"epochs": 3, "model": "resnet18"},
        progress={"epoch": 2, "epochs": 3, "step": 37, "steps": 90, "loss": 1.234, "images_per_s": 151.0,
                  "eta_s": 95.0},
        epoch_metrics=[{"epoch": 1, "lr": 0.001, "train_loss": 2.1, "train_images_per_s": 148.0, "val_top1": 0.41,
                        "shifted_top1": 0.12}],
    )
    history = [{"epoch": e, "lr": 0.001, "train_loss": 2.2 - 0.5 * e, "train_images_per_s": 150.0 + e,
                "val_top1": 0.3 + 0.15 * e, "shifted_top1": 0.1 + 0.02 * e} for e in (1, 2, 3)]
    finished = TrainingJob.objects.create(
        dataset=dataset, status="succeeded", source=TrainingJob.Source.COMMAND, config={"epochs": 3},
        epoch_metrics=history, metrics=history[-1],
    )
    page = browser_context_factory(viewport={"width": 1366, "height": 900}).new_page()
    page.set_default_timeout(90_000)  # the add form's first build imports the engine (torch)
    log_in(page, live_server, "/admin/training/trainingjob/add/")
    page.select_option("#id_dataset", str(dataset.pk))
    shoot(page, "training-add-job")
    page.goto(f"{live_server.url}/admin/training/trainingjob/{running.pk}/change/")
    shoot(page, "training-job-running")
    page.goto(f"{live_server.url}/admin/training/trainingjob/{finished.pk}/change/")
    shoot(page, "training-job-finished")
