"""The staff review console in a real browser: dashboard, playback drawn on canvas, bulk rejection with feedback."""
import pytest
from django.contrib.auth import get_user_model

from annotator.models import Assignment, Event, ImageNetRecord
from annotator.review import services
from tests.annotator.review_data import submitted_assignment
from tests.e2e.conftest import make_coco_hit, make_imagenet_hit
from tests.factories import CocoRecordFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SELECT_GREEN = (26, 152, 80)


def log_in(page, live_server, next_url):
    get_user_model().objects.create_superuser("reviewer", "reviewer@example.com", "a-long-password-1")
    page.goto(f"{live_server.url}/admin/login/?next={next_url}")
    page.fill("#id_username", "reviewer")
    page.fill("#id_password", "a-long-password-1")
    page.click("input[type=submit]")


def test_dashboard_playback_and_bulk_reject(page, live_server):
    hit = make_imagenet_hit(items_per_page=(6, 6))
    batch = hit.batch
    diligent = submitted_assignment(hit=hit, n_selected=40, n_in_class=9, n_in_class_selected=9)
    first_page = hit.pages.get(index=0)
    clicked = first_page.items.get(position=0)
    ImageNetRecord.objects.create(
        assignment=diligent, page=first_page, image=clicked.image, selected=True,
        selected_record=[{"x": 0.5, "y": 0.5, "time": 1_700_000_000_000}],
        mouse_tracking=[
            {"x": 0.1, "y": 0.1, "time": 1_699_999_999_000}, {"x": 0.5, "y": 0.5, "time": 1_700_000_000_000},
        ],
        hovered_record=[
            {"action": "enter", "time": 1_699_999_998_000}, {"action": "leave", "time": 1_700_000_001_000},
        ],
        image_width=150, image_height=150,
    )
    sloppy = [submitted_assignment(hit=hit, n_selected=40, n_in_class=9, n_in_class_selected=9) for _ in range(2)]
    for assignment in [diligent, *sloppy]:
        services.auto_review(assignment.pk)

    log_in(page, live_server, f"/review/batches/{batch.pk}/")

    assert page.locator("h1").inner_text() == f"Batch {batch.name}"
    assert page.locator("#progress").inner_text() == "1 / 1 HITs"
    assert page.locator("#rates").inner_text() == "100.0% approved · 0.0% rejected"

    page.click(f'#assignments a[href="/review/assignments/{diligent.pk}/"]')
    canvas = page.locator("#replay canvas").first
    canvas.wait_for()
    page.wait_for_function("() => document.querySelector('#replay canvas')?.dataset.drawn === 'true'")
    # The select click at the centre of the first candidate is drawn as a green dot.
    pixel = page.evaluate(
        "() => { const c = document.querySelector('#replay canvas');"
        " return Array.from(c.getContext('2d').getImageData(c.width / 2, c.height / 2, 1, 1).data); }"
    )
    assert all(abs(a - b) < 30 for a, b in zip(pixel[:3], SELECT_GREEN)), pixel
    assert page.locator("#replay figcaption").first.inner_text().endswith("in class · selected")
    assert "every rule passed" in page.locator("#rules").inner_text()
    # Thumbnails keep the photo's 4:3 shape.
    assert page.evaluate("() => { const c = document.querySelector('#replay canvas'); return [c.width, c.height]; }") \
        == [150, 113]

    # Played back over time: the session spans 3 s (hover at 0 s, selecting click at 2 s).
    assert page.locator("#replay-clock").inner_text() == "3.0 s / 3.0 s"
    page.locator("#replay-time").fill("1000")
    assert page.locator("#replay-clock").inner_text() == "1.0 s / 3.0 s"
    assert "selected" not in page.locator("#replay figure").first.get_attribute("class")
    page.select_option("#replay-speed", "1")
    page.click("#replay-play")
    assert page.locator("#replay-play").inner_text() == "Pause"
    page.wait_for_function("() => document.querySelector('#replay-play').textContent === 'Play'")  # at the end
    assert page.locator("#replay-clock").inner_text() == "3.0 s / 3.0 s"
    assert "selected" in page.locator("#replay figure").first.get_attribute("class")

    page.go_back()
    for assignment in sloppy:
        page.check(f'#assignments input[value="{assignment.pk}"]')
    page.check('#bulk-form input[name=decision][value=reject]')
    assert not page.locator("#bulk-form textarea[name=approve_feedback]").is_visible()
    page.fill("#bulk-form textarea[name=reject_feedback]", "The clicks did not land on the objects.")
    page.click("#bulk-submit")

    assert page.locator("#messages").inner_text() == "2 assignments rejected."
    for assignment in sloppy:
        assignment.refresh_from_db()
        assert assignment.state == Assignment.State.REJECTED
        assert assignment.feedback == "The clicks did not land on the objects."
        assert assignment.decision_source == Assignment.DecisionSource.ADMIN
        assert Event.objects.filter(assignment=assignment, type=Event.Type.OVERRIDDEN).exists()
    assert Assignment.objects.get(pk=diligent.pk).state == Assignment.State.APPROVED
    assert "33.3% approved" in page.locator("#rates").inner_text()


def test_coco_playback_draws_the_icon_actions(page, live_server):
    hit = make_coco_hit(n_pages=2)
    assignment = submitted_assignment(hit=hit, n_gt_categories=2, n_tagged_correct=1, n_icons=1, n_icons_on_mask=1)
    first_page = hit.pages.get(index=0)
    CocoRecordFactory(
        assignment=assignment, page=first_page, image=first_page.image,
        action_histories=[
            {"actionType": "add", "iconType": "2", "pointFrom": None, "pointTo": {"x": 0.2, "y": 0.2}, "timeAt": 900},
            {"actionType": "move", "iconType": "2", "pointFrom": {"x": 0.2, "y": 0.2}, "pointTo": {"x": 0.5, "y": 0.5},
             "timeAt": 2100},
        ],
        final_positions={"2": {"x": 0.5, "y": 0.5}},
    )
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    log_in(page, live_server, f"/review/assignments/{assignment.pk}/")

    page.wait_for_function("() => document.querySelector('#replay canvas')?.dataset.drawn === 'true'")
    assert page.locator("#replay ol.actions li").all_inner_texts() == ["0.9 s: add dog", "2.1 s: move dog"]
    # The feedback and reason boxes stay inside their cards.
    assert page.evaluate(
        "() => Array.from(document.querySelectorAll('.card textarea')).filter((box) => box.offsetParent)"
        ".map((box) => box.getBoundingClientRect().right <= box.closest('.card').getBoundingClientRect().right)"
    ) == [True, True]
    # The add is a green dot where the icon was dropped (sampled just off the move arrow that starts there).
    pixel = page.evaluate(
        "() => { const c = document.querySelector('#replay canvas'); const x = c.width * 0.2 - 2;"
        " return Array.from(c.getContext('2d').getImageData(x, c.height * 0.2 + 2, 1, 1).data); }"
    )
    assert all(abs(a - b) < 30 for a, b in zip(pixel[:3], SELECT_GREEN)), pixel
    # Scrubbed to 1.5 s: the add has happened, the move has not; a click on an action goes to its moment.
    page.locator("#replay-time").fill("1500")
    assert page.locator("#replay ol.actions li.future").all_inner_texts() == ["2.1 s: move dog"]
    page.click("#replay ol.actions li:nth-child(2) button")
    assert page.locator("#replay-clock").inner_text().startswith("2.1 s / ")
    assert page.locator("#replay ol.actions li.future").count() == 0
    page.click("#page-tabs button:nth-child(2)")
    assert "not completed" not in page.locator("#replay h3").inner_text()
    assert errors == []
