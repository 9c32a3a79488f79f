"""The model registry: one active version per dataset, and the admin's side-by-side comparison of runs."""
import re

import pytest
from django.db import IntegrityError, transaction

from tests import factories
from tests.training.job_data import registered_version
from training import plots
from training.services import registry
from training.services.config import train_config_schema
from training.models import ModelVersion, TrainingJob

pytestmark = pytest.mark.django_db

HISTORY_A = [{"epoch": 1, "train_loss": 2.0, "val_top1": 0.40}, {"epoch": 2, "train_loss": 1.2, "val_top1": 0.55}]
HISTORY_B = [{"epoch": 1, "train_loss": 1.8, "val_top1": 0.45}, {"epoch": 2, "train_loss": 0.9, "val_top1": 0.70}]


def test_the_database_refuses_two_active_versions_for_one_dataset():
    dataset = factories.DatasetFactory()
    first, second = registered_version(dataset), registered_version(dataset)
    registry.promote_model_version(first)
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=second.pk).update(is_active=True)


def test_promoting_in_one_dataset_leaves_the_others_alone():
    dataset, other = factories.DatasetFactory(), factories.DatasetFactory()
    mine, theirs = registered_version(dataset), registered_version(other)
    registry.promote_model_version(theirs)
    registry.promote_model_version(mine)
    other.refresh_from_db()
    assert other.active_model_version == theirs.name
    assert set(ModelVersion.objects.filter(is_active=True)) == {mine, theirs}


def test_admin_compares_runs_side_by_side(admin_client):
    dataset = factories.DatasetFactory()
    a = registered_version(dataset, metrics=HISTORY_A[-1], epoch_metrics=HISTORY_A, config={"lambda_point": 0.0})
    b = registered_version(dataset, metrics=HISTORY_B[-1], epoch_metrics=HISTORY_B, config={"lambda_point": 10.0})
    response = admin_client.post("/admin/training/modelversion/", {
        "action": "compare", "_selected_action": [a.pk, b.pk],
    })
    assert response.status_code == 302
    page = admin_client.get(response["Location"])
    html = page.content.decode()
    assert page.status_code == 200
    assert a.name in html and b.name in html
    assert "0.5500" in html and "0.7000" in html  # val_top1 of each run in the metrics table
    assert "lambda_point" in html  # the config option that differs
    assert 'src="data:image/png;base64,' in html  # the overlaid curves


def test_admin_add_form_offers_every_option_with_its_default_and_help(admin_client):
    page = admin_client.get("/admin/training/trainingjob/add/").content.decode()

    for option in train_config_schema():
        assert f'name="{option.name}"' in page, option.name
    assert 'name="config"' not in page  # no JSON box
    assert re.search(r'<select name="method"[^>]*>.*<option value="luab" selected>', page, re.S)
    assert 'name="epochs" value="10"' in page and "Passes over the training images." in page
    assert 'name="crop_scale" value="0.08, 1.0"' in page


def test_admin_add_form_creates_a_job_with_what_was_changed(admin_client, django_capture_on_commit_callbacks):
    dataset = factories.DatasetFactory()
    mine = factories.BatchFactory(dataset=dataset, name="mine")
    theirs = factories.BatchFactory(name="theirs")
    form = admin_client.get("/admin/training/trainingjob/add/").context["adminform"].form
    defaults = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    defaults = {name: value for name, value in defaults.items() if value is not False}
    page = admin_client.get("/admin/training/trainingjob/add/").content.decode()
    # Each batch says its dataset, so the page can list only the chosen dataset's batches.
    assert f'<option value="{mine.pk}" data-dataset="{dataset.pk}">mine' in page

    with django_capture_on_commit_callbacks(execute=False):
        response = admin_client.post("/admin/training/trainingjob/add/", {
            **defaults, "dataset": dataset.pk, "batches": [mine.pk], "epochs": "1", "model": "test_resnet",
            "crop_scale": "0.5, 1", "amp": "on",
        })
    assert response.status_code == 302
    job = TrainingJob.objects.get()
    assert job.config == {"epochs": 1, "model": "test_resnet", "crop_scale": [0.5, 1.0]}
    assert list(job.batches.all()) == [mine]
    assert job.source == TrainingJob.Source.ADMIN and job.created_by.is_superuser and job.celery_task_id

    for bad, field, why in (({"epochs": "0"}, "epochs", "greater than or equal to 1"),
                            ({"batches": [theirs.pk]}, "batches", "not batches of dataset"),
                            ({"crop_ratio": "wide"}, "crop_ratio", "give numbers separated by commas")):
        refused = admin_client.post("/admin/training/trainingjob/add/", {
            **defaults, "dataset": dataset.pk, "amp": "on", **bad,
        })
        assert refused.status_code == 200 and why in refused.content.decode(), field
        assert field in refused.context["adminform"].form.errors
    assert TrainingJob.objects.count() == 1


def test_admin_promote_action_refuses_two_versions_of_one_dataset(admin_client):
    dataset = factories.DatasetFactory()
    a, b = registered_version(dataset), registered_version(dataset)
    admin_client.post("/admin/training/modelversion/", {"action": "promote", "_selected_action": [a.pk, b.pk]})
    assert not ModelVersion.objects.filter(is_active=True).exists()
    admin_client.post("/admin/training/modelversion/", {"action": "promote", "_selected_action": [b.pk]})
    dataset.refresh_from_db()
    assert dataset.active_model_version == b.name


def test_admin_job_page_shows_progress_and_log(admin_client):
    job = TrainingJob.objects.create(
        dataset=factories.DatasetFactory(), status="running", log_tail="epoch 1/3: loss 0.5",
        progress={"epoch": 1, "epochs": 3, "step": 4, "steps": 10, "loss": 0.5, "images_per_s": 99.0, "eta_s": 12.0},
    )
    html = admin_client.get(f"/admin/training/trainingjob/{job.pk}/change/").content.decode()
    assert "epoch 1/3, step 4/10, loss 0.5000, 99 img/s, ETA 12 s" in html
    assert '<progress max="1" value="0.1333"' in html and "13%" in html  # 4 of 30 steps
    assert html.count("step 4/10") == 1 and "{&#x27;" not in html  # once, and no JSON
    assert 'data-follow="yes"' in html  # the page follows a running job
    assert "epoch 1/3: loss 0.5" in html


EFFECT_A = {"val_top1": 0.55, "shifted_top1": 0.17, "shifted_pred_is_background": 0.71, "val_point_accuracy": 0.52,
            "shifted_point_accuracy": 0.5, "val_centre_point_accuracy": 0.81, "shifted_centre_point_accuracy": 0.76}
EFFECT_B = dict(EFFECT_A, shifted_top1=0.29, shifted_pred_is_background=0.42, shifted_point_accuracy=0.99)


def test_job_page_shows_the_shifted_split_chance_background_reliance_and_centre_prior(admin_client):
    dataset = factories.DatasetFactory()
    for index in range(4):
        factories.CategoryFactory(dataset=dataset, index=index)
    job = registered_version(dataset, metrics=EFFECT_A).job
    html = admin_client.get(f"/admin/training/trainingjob/{job.pk}/change/").content.decode()
    table = html[html.index('<table class="learning-effect">'):]
    table = table[:table.index("</table>")]
    assert "<th>val</th><th>shifted</th>" in table
    assert "<tr><td>top-1</td><td>0.550</td><td>0.170</td></tr>" in table
    assert "<tr><td>chance (1 / classes)</td><td>0.250</td><td>0.250</td></tr>" in table
    assert "<tr><td>predicted = background class</td><td>-</td><td>0.710</td></tr>" in table
    assert "<tr><td>centre prior&#x27;s point accuracy</td><td>0.810</td><td>0.760</td></tr>" in table


def test_comparison_puts_two_runs_side_by_side_on_the_learning_effect(admin_client):
    dataset = factories.DatasetFactory()
    a, b = registered_version(dataset, metrics=EFFECT_A), registered_version(dataset, metrics=EFFECT_B)
    html = admin_client.get(f"/admin/training/modelversion/compare/?ids={a.pk},{b.pk}").content.decode()
    effect = html[html.index("<h2>Learning effect</h2>"):html.index("<h2>Metrics</h2>")]
    rows = {cells[0]: cells[1:] for cells in (
        [cell.split("</td>")[0] for cell in row.split("<td>")[1:]] for row in effect.split("<tr>")[2:]
    )}
    assert rows["shifted: top-1"] == ["0.170", "0.290"]
    assert rows["shifted: predicted = background class"] == ["0.710", "0.420"]
    assert rows["shifted: point accuracy"] == ["0.500", "0.990"]
    assert rows["shifted: centre prior&#x27;s point accuracy"] == ["0.760", "0.760"]
    assert rows["val: predicted = background class"] == ["-", "-"]


def test_admin_job_page_before_the_first_report_and_metrics_as_tables(admin_client):
    queued = TrainingJob.objects.create(dataset=factories.DatasetFactory(), status="running")
    assert "no step reported yet" in admin_client.get(f"/admin/training/trainingjob/{queued.pk}/change/").content.decode()
    done = TrainingJob.objects.create(
        dataset=factories.DatasetFactory(), status="succeeded", epoch_metrics=HISTORY_A, metrics=HISTORY_A[-1],
        source=TrainingJob.Source.COMMAND,
    )
    html = admin_client.get(f"/admin/training/trainingjob/{done.pk}/change/").content.decode()
    assert "<th>epoch</th><th>train_loss</th><th>val_top1</th>" in html and "<td>0.55</td>" in html
    assert "command line (manage.py train or run_training_job)" in html and "--async" not in html
    assert 'data-follow="yes"' not in html


def test_curves_put_scores_on_their_own_axis():
    assert [plots.panel_of(name) for name in ("train_loss", "val_top1", "val_map", "train_images_per_s", "lr")] == [
        "loss", "scores", "scores", "throughput", "learning rate"]
    assert plots.curves_png({"run": HISTORY_A}).startswith(b"\x89PNG")
