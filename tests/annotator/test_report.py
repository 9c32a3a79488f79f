import base64
import hashlib
import json
import re
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from annotator import report
from annotator.models import Assignment, PageSubmission, TaskKind
from tests import factories

pytestmark = pytest.mark.django_db

ENTER_AT = 1641425051000


def imagenet_session(assignment, page, image, click, trace, selected=True):
    return factories.ImageNetRecordFactory(
        assignment=assignment, page=page, image=image, selected=selected,
        selected_record=[{"x": click[0], "y": click[1], "time": ENTER_AT + 1000}] if click else [],
        hovered_record=[{"action": "enter", "time": ENTER_AT}, {"action": "leave", "time": ENTER_AT + 2000}],
        mouse_tracking=[{"x": x, "y": y, "time": ENTER_AT + 100 * i} for i, (x, y) in enumerate(trace)],
    )


def images_with_boxes(dataset, width, height, boxes):
    """One width x height image per (category, bbox): labelled with the category, the bbox its one object."""
    images = []
    for category, bbox in boxes:
        images.append(factories.ImageFactory(dataset=dataset, label=category, width=width, height=height))
        factories.GroundTruthObjectFactory(image=images[-1], category=category, bbox=bbox)
    return images


@pytest.fixture
def imagenet_batch():
    """Two 500x375 images clicked inside their boxes: one box holds the centre, the other sits in a corner."""
    dataset = factories.DatasetFactory(name="inet")
    tench = factories.CategoryFactory(dataset=dataset, key="n01440764")
    centred, cornered, missed = images_with_boxes(
        dataset, 500, 375, [(tench, [100, 100, 200, 150]), (tench, [0, 0, 100, 100]), (tench, [0, 0, 500, 375])]
    )
    batch = factories.BatchFactory(dataset=dataset, name="inet-round-1")
    approved = factories.AssignmentFactory(hit__batch=batch, state=Assignment.State.APPROVED)
    page = factories.HitPageFactory(hit=approved.hit, category=tench)
    imagenet_session(approved, page, centred, (0.4, 0.4), [(0.0, 0.0), (0.1, 0.1), (0.4, 0.4)])
    imagenet_session(approved, page, cornered, (0.1, 0.1), [(0.0, 0.0), (0.5, 0.5), (0.1, 0.1)])
    imagenet_session(approved, page, missed, None, [], selected=False)
    PageSubmission.objects.create(
        assignment=approved, page=page, client_save_id="6f1c1d2e-0000-4000-8000-000000000002", time_spent_ms=60000
    )
    rejected = factories.AssignmentFactory(hit=approved.hit, state=Assignment.State.REJECTED)
    imagenet_session(rejected, page, centred, (0.95, 0.95), [(0.95, 0.95)])
    return batch


def test_clicks_all_in_their_boxes_give_full_accuracy_against_the_baselines(imagenet_batch):
    numbers = report.build_report(imagenet_batch)

    assert numbers["click_accuracy"] == {"value": 1.0, "n": 2}
    assert numbers["click_accuracy_per_click"] == {"value": 1.0, "n": 2}
    assert numbers["centre_baseline"] == {"value": 0.5, "n": 2}
    assert numbers["uniform_baseline"]["value"] == pytest.approx((200 * 150 + 100 * 100) / 2 / (500 * 375))
    assert numbers["off_centre_click_accuracy"] == {"value": 1.0, "n": 1}
    assert [row["value"] for row in numbers["trace_last_n"][:3]] == [1.0, 0.0, 0.5]
    assert numbers["trace_quantiles"][0]["value"] == 0.5
    assert numbers["trace_quantiles"][-1]["value"] == 1.0
    assert numbers["recall_by_size"]["0.10-0.25"] == {"value": 1.0, "n": 1}
    assert numbers["recall_by_size"]["0.75-1.00"] == {"value": 0.0, "n": 1}
    assert numbers["time"]["median_seconds_per_page"] == 60.0


def test_click_accuracy_and_baselines_are_means_over_images_as_in_the_paper():
    """Image A (box over the centre, half the image) has three workers' clicks, all in the box; image B (a
    corner box, a tenth of the image) one click outside it. Per image (the paper): clicks 50%, always-centre
    50%, uniform (0.5 + 0.1) / 2 = 30%, off-centre 0%. Per click it would be 75%, 75%, 40%."""
    dataset = factories.DatasetFactory(name="per-image")
    tench = factories.CategoryFactory(dataset=dataset)
    other = factories.CategoryFactory(dataset=dataset)
    a, b, c = images_with_boxes(
        dataset, 100, 100, [(tench, [0, 25, 100, 50]), (tench, [0, 0, 10, 100]), (other, [0, 0, 100, 100])]
    )
    batch = factories.BatchFactory(dataset=dataset)
    hit = factories.HitFactory(batch=batch)
    page = factories.HitPageFactory(hit=hit, category=tench)
    for worker in range(3):
        assignment = factories.AssignmentFactory(hit=hit, state=Assignment.State.APPROVED)
        imagenet_session(assignment, page, a, (0.5, 0.5), [(0.5, 0.5)])
        if worker == 0:
            imagenet_session(assignment, page, b, (0.9, 0.9), [(0.9, 0.9)])
            # Selected by mistake on a page of another class: not a localisation click of its own class.
            imagenet_session(assignment, page, c, (0.5, 0.5), [(0.5, 0.5)])

    numbers = report.build_report(batch)

    assert numbers["click_accuracy"] == {"value": 0.5, "n": 2}
    assert numbers["centre_baseline"] == {"value": 0.5, "n": 2}
    assert numbers["uniform_baseline"]["value"] == pytest.approx(0.3)
    assert numbers["uniform_baseline"]["n"] == 2
    assert numbers["off_centre_click_accuracy"] == {"value": 0.0, "n": 1}
    assert numbers["click_accuracy_per_click"] == {"value": 0.75, "n": 4}


def test_union_area_counts_overlapping_boxes_once():
    assert report.union_area_fraction([[0, 0, 50, 100], [25, 0, 50, 100]], 100, 100) == 0.75
    assert report.union_area_fraction([[-10, -10, 30, 30], [90, 90, 50, 50]], 100, 100) == pytest.approx(0.05)


@pytest.fixture
def coco_batch():
    dataset = factories.DatasetFactory(name="coco", kind=TaskKind.COCO)
    car = factories.CategoryFactory(dataset=dataset, key="3", name="car")
    bicycle = factories.CategoryFactory(dataset=dataset, key="2", name="bicycle")
    image = factories.ImageFactory(dataset=dataset, key="42", width=100, height=100)
    factories.GroundTruthObjectFactory(image=image, category=car, bbox=[10, 10, 50, 50], area=2500,
                                       segmentation=[[10, 10, 60, 10, 60, 60, 10, 60]])
    factories.GroundTruthObjectFactory(image=image, category=bicycle, bbox=[70, 70, 20, 20], area=400,
                                       segmentation=[[70, 70, 90, 70, 90, 90, 70, 90]])
    batch = factories.BatchFactory(dataset=dataset, name="coco-round-1")
    assignment = factories.AssignmentFactory(hit__batch=batch, state=Assignment.State.APPROVED)
    page = factories.HitPageFactory(hit=assignment.hit, image=image)
    PageSubmission.objects.create(assignment=assignment, page=page, client_save_id=uuid.uuid4(), time_spent_ms=30000)
    factories.CocoRecordFactory(
        assignment=assignment, page=page, image=image, time_spent=30000,
        action_histories=[
            {"actionType": "add", "iconType": "3", "pointFrom": None, "pointTo": {"x": 0.3, "y": 0.3}, "timeAt": 1},
            {"actionType": "add", "iconType": "2", "pointFrom": None, "pointTo": {"x": 0.5, "y": 0.5}, "timeAt": 2},
            {"actionType": "remove", "iconType": "2", "pointFrom": {"x": 0.5, "y": 0.5}, "timeAt": 3},
        ],
        final_positions={"3": {"x": 0.3, "y": 0.3}},
    )
    return batch


def test_coco_icons_on_their_masks_and_the_action_sequences(coco_batch):
    numbers = report.build_report(coco_batch)

    assert numbers["icon_accuracy"] == {"value": 1.0, "n": 1}
    assert numbers["action_sequences"] == [
        {"sequence": "add", "count": 1, "share": 0.5}, {"sequence": "add-remove", "count": 1, "share": 0.5}
    ]
    assert numbers["recall_by_size"]["medium"] == {"value": 1.0, "n": 1}
    assert numbers["recall_by_size"]["small"] == {"value": 0.0, "n": 1}
    assert numbers["time"]["median_minutes_per_hit"] == 0.5


def test_report_command_writes_html_with_the_papers_figures_json_and_plots(imagenet_batch, coco_batch, tmp_path):
    call_command("byproduct_report", "inet-round-1", "--out", str(tmp_path / "inet"), verbosity=0)
    call_command("byproduct_report", "coco-round-1", "--out", str(tmp_path / "coco"), verbosity=0)

    html = (tmp_path / "inet" / "report.html").read_text()
    assert "<tr><td>Click in a GT box</td><td>100.0%</td><td>2</td><td>82.9%</td></tr>" in html
    assert "<tr><td>Always-centre click</td><td>50.0%</td><td>2</td><td>83.9%</td></tr>" in html
    assert "per image, each image weighing the same" in html
    for paper_figure in ("83.9%", "48.2%", "56.5%"):
        assert paper_figure in html
    for plot in ("click_accuracy.png", "trace_last_n.png", "trace_quantiles.png", "recall_by_size.png",
                 "time_per_page.png", "clicks_relative_to_box.png"):
        assert (tmp_path / "inet" / plot).read_bytes().startswith(b"\x89PNG")
        assert f'src="{plot}"' in html
    assert json.loads((tmp_path / "inet" / "report.json").read_text())["ours"]["click_accuracy"]["value"] == 1.0
    coco_html = (tmp_path / "coco" / "report.html").read_text()
    assert "<tr><td>Icon on its category&#x27;s mask</td><td>100.0%</td><td>1</td><td>92.3%</td></tr>" in coco_html
    assert "94.0%" in coco_html and (tmp_path / "coco" / "action_sequences.png").exists()

    with pytest.raises(CommandError, match="batch 'nope' does not exist"):
        call_command("byproduct_report", "nope", "--out", str(tmp_path))


def test_admin_action_writes_the_report_into_storage(
    imagenet_batch, client, django_capture_on_commit_callbacks, settings
):
    client.force_login(get_user_model().objects.create_superuser("root", password="pw"))

    with django_capture_on_commit_callbacks(execute=True):
        client.post("/admin/annotator/batch/", {"action": "build_byproduct_report",
                                                "_selected_action": [imagenet_batch.pk]})

    report_html, = (settings.MEDIA_ROOT / "reports" / "inet-round-1").glob("*/report.html")
    assert "82.9%" in report_html.read_text()
    assert (report_html.parent / "click_accuracy.png").exists()


@pytest.mark.parametrize("kind", [TaskKind.IMAGENET, TaskKind.COCO])
def test_a_batch_without_approved_work_gets_a_report_of_empty_figures(kind, tmp_path):
    batch = factories.BatchFactory(dataset=factories.DatasetFactory(kind=kind))

    report.write_report(batch, tmp_path)

    html = (tmp_path / "report.html").read_text()
    assert "<td>n/a</td><td>0</td>" in html
    assert (tmp_path / "recall_by_size.png").exists()


def test_report_html_runs_no_script_and_allows_only_its_own_style(imagenet_batch, tmp_path):
    html = report.write_report(imagenet_batch, tmp_path).read_text()
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html).group(1)
    assert "default-src 'none'" in policy and "img-src 'self'" in policy and "script-src" not in policy
    style = re.search(r"<style>(.*?)</style>", html, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in policy
    assert "<script" not in html
