"""The task pages work under their Content-Security-Policy (no inline script allowed) and report no violation.

Every e2e test also fails on a violation (conftest's watch_csp_violations); these tests go through the pages'
main paths on purpose, and check that the watch does see a violation when there is one.
"""
import pytest

from annotator import report
from annotator.models import Assignment, Batch, CocoRecord, ImageNetRecord, PageSubmission
from annotator.review import services
from tests.annotator.review_data import submitted_assignment
from tests.e2e.conftest import (
    click_at, make_coco_hit, make_imagenet_hit, point_in, task_url, wait_for_images, wait_until,
)
from tests.annotator.test_report import imagenet_batch  # noqa: F401 (a fixture)
from tests.e2e.test_review_console import log_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PREVIEW = {"assignment_id": "ASSIGNMENT_ID_NOT_AVAILABLE", "worker_id": ""}


def open_page(page, url):
    response = page.goto(url)
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy, policy
    wait_for_images(page)
    return policy


def reported_violations(page):
    page.evaluate("1")  # the console events sent before this round trip have been delivered
    return page.context.csp_violations


@pytest.mark.parametrize("variant", [Batch.Variant.DEFAULT, Batch.Variant.RED_DOT])
def test_imagenet_page_works_under_the_policy(page, live_server, variant):
    hit = make_imagenet_hit(items_per_page=(6, 6), variant=variant)
    open_page(page, task_url(live_server, hit))
    click_at(page.locator("img.candidate-image").nth(1), 0.5, 0.5)
    page.locator("#save-page").click()
    page.locator("#page-counter", has_text="Page 2 of 2").wait_for()
    wait_for_images(page)
    click_at(page.locator("img.candidate-image").nth(2), 0.5, 0.5)
    page.locator("#save-page").click()
    page.wait_for_selector("#done:not([hidden])")
    assert PageSubmission.objects.filter(assignment__hit=hit).count() == 2
    assert ImageNetRecord.objects.filter(assignment__hit=hit, selected=True).count() == 2
    assert reported_violations(page) == []


@pytest.mark.parametrize("variant", [Batch.Variant.DEFAULT, Batch.Variant.MAGNIFIER])
def test_coco_page_works_under_the_policy(page, live_server, variant):
    hit = make_coco_hit(n_pages=1, variant=variant)
    open_page(page, task_url(live_server, hit))
    image = page.locator("img.coco-image")
    page.mouse.move(*point_in(page.locator(".icon-tile[data-key='1']"), 0.5, 0.3))
    page.mouse.down()
    page.mouse.move(*point_in(image, 0.3, 0.3), steps=8)
    if variant == Batch.Variant.MAGNIFIER:
        # The lens shows the photo as a CSS background image: allowed by img-src.
        assert "url(" in page.locator(".magnifier").evaluate(
            "(lens) => getComputedStyle(lens).backgroundImage"
        )
    page.mouse.up()
    page.locator(".placed-icon[data-key='1']").wait_for()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.click("#save-page")
    page.wait_for_selector("#done:not([hidden])")
    wait_until(lambda: CocoRecord.objects.filter(assignment__hit=hit).exists(), message="the COCO record")
    assert reported_violations(page) == []


@pytest.mark.parametrize("make_hit", [make_imagenet_hit, make_coco_hit], ids=["imagenet", "coco"])
def test_preview_pages_work_under_the_policy(page, live_server, make_hit):
    hit = make_hit()
    open_page(page, task_url(live_server, hit, **PREVIEW))
    assert page.locator(".preview-banner").is_visible()
    assert reported_violations(page) == []


def test_review_console_works_under_the_policy(page, live_server):
    """The dashboard's state filter (once an inline onchange) and the replay page run from static scripts."""
    hit = make_imagenet_hit(items_per_page=(6,))
    assignment = submitted_assignment(hit=hit, n_selected=4, n_in_class=4, n_in_class_selected=4)
    services.auto_review(assignment.pk)
    state = Assignment.objects.get(pk=assignment.pk).state
    log_in(page, live_server, f"/review/batches/{hit.batch.pk}/")
    page.locator("#assignments").wait_for()
    with page.expect_navigation():
        page.select_option("#state-filter", "returned")
    assert page.url.endswith("?state=returned")
    assert page.locator(f'#assignments a[href="/review/assignments/{assignment.pk}/"]').count() == 0
    with page.expect_navigation():
        page.select_option("#state-filter", state)
    page.click(f'#assignments a[href="/review/assignments/{assignment.pk}/"]')
    page.wait_for_function("() => document.querySelector('#replay canvas')?.dataset.drawn === 'true'")
    assert reported_violations(page) == []


def test_byproduct_report_shows_its_style_and_plots_under_its_policy(page, imagenet_batch, tmp_path):  # noqa: F811
    path = report.write_report(imagenet_batch, tmp_path)
    page.goto(path.as_uri())
    wait_for_images(page)
    assert page.evaluate("() => getComputedStyle(document.querySelector('table')).borderCollapse") == "collapse"
    assert reported_violations(page) == []


def test_an_injected_inline_script_is_blocked_and_reported(page, live_server):
    hit = make_imagenet_hit(items_per_page=(6,))
    open_page(page, task_url(live_server, hit, **PREVIEW))
    page.evaluate("""() => {
      const script = document.createElement("script");
      script.textContent = "window.inlineScriptRan = true;";
      document.body.append(script);
      const image = document.createElement("img");
      image.setAttribute("onerror", "window.inlineHandlerRan = true;");
      image.src = "data:,not-an-image";
      document.body.append(image);
    }""")
    page.wait_for_function("() => window.inlineHandlerRan !== undefined || document.images.length > 0")
    page.wait_for_timeout(200)
    assert page.evaluate("[window.inlineScriptRan, window.inlineHandlerRan]") == [None, None]
    violations = reported_violations(page)
    assert any("script-src-elem blocked inline" in violation for violation in violations), violations
    assert any("script-src-attr blocked inline" in violation for violation in violations), violations
    violations.clear()  # provoked on purpose: not a failure of the page
