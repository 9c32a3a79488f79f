"""axe-core (shipped in tests/e2e/vendor/, nothing fetched) on the worker pages at laptop and phone sizes: no
serious or critical violation of WCAG 2.x A/AA rules."""
from pathlib import Path

import pytest

from tests.e2e.conftest import make_coco_hit, make_imagenet_hit, task_url, wait_for_images
from tests.e2e.test_worker_layout import VIEWPORTS

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
RUN_AXE = """
async () => {
  const result = await axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } });
  return result.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).slice(0, 5).join(", ")}`);
}
"""


@pytest.fixture(params=list(VIEWPORTS))
def page(request, browser_context_factory):
    # The pages allow only their own scripts (CSP): the test injects axe past the policy.
    return browser_context_factory(bypass_csp=True, **VIEWPORTS[request.param]).new_page()


def serious_violations(page):
    page.add_script_tag(path=str(AXE))
    assert page.evaluate("() => axe.version") == "4.14.1"
    return page.evaluate(RUN_AXE)


def test_imagenet_page_and_finished_page(page, live_server):
    hit = make_imagenet_hit(items_per_page=(12,))
    page.goto(task_url(live_server, hit))
    page.wait_for_function("() => document.querySelectorAll('img.candidate-image').length === 12")
    wait_for_images(page)
    page.locator("img.candidate-image").nth(1).click()
    assert serious_violations(page) == []

    page.click("#save-page")
    page.wait_for_selector("#done:not([hidden])")
    assert serious_violations(page) == []


def test_the_check_finds_what_it_looks_for(page, live_server):
    hit = make_coco_hit(n_pages=1)
    page.goto(task_url(live_server, hit))
    page.locator("img.coco-image").wait_for()
    page.evaluate("() => { document.querySelector('#save-page').textContent = ''; }")  # a button without a name
    assert any(violation.startswith("button-name") for violation in serious_violations(page))


def test_coco_page(page, live_server):
    hit = make_coco_hit(n_pages=1)
    page.goto(task_url(live_server, hit))
    page.locator("img.coco-image").wait_for()
    wait_for_images(page)
    assert serious_violations(page) == []
