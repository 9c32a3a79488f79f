"""A Prolific participant in a real browser: from the study URL Prolific sends them to, through the task page, back to
Prolific with the study's completion code (the fake Prolific plays Prolific's side)."""
import pytest

from annotator.models import Assignment, Batch, Hit, Provider
from annotator.providers import prolific, services
from devtools.fake_prolific import FakeProlific
from tests.e2e.conftest import click_at, make_imagenet_hit, wait_for_images

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PUBLIC_BASE_URL = "https://annotate.example.org"


def test_a_participant_works_the_study_and_goes_back_to_prolific_with_its_code(page, live_server, settings):
    settings.PUBLIC_BASE_URL = PUBLIC_BASE_URL
    with FakeProlific(token="e2e-token") as market:
        settings.PROLIFIC_API_URL, settings.PROLIFIC_API_TOKEN = market.url, "e2e-token"
        hit = make_imagenet_hit(items_per_page=(8,), provider=Provider.PROLIFIC)
        Hit.objects.filter(pk=hit.pk).update(status=Hit.Status.PENDING)
        Batch.objects.filter(pk=hit.batch_id).update(status=Batch.Status.DRAFT)
        services.publish_batch(Batch.objects.get(pk=hit.batch_id))
        hit.refresh_from_db()
        submission_id, study_url = market.join(hit.external_id, "PBROWSER")

        back_at_prolific = []
        page.route("https://app.prolific.com/**", lambda route: (
            back_at_prolific.append(route.request.url),
            route.fulfill(status=200, content_type="text/html", body="<p>Prolific</p>")))
        page.goto(study_url.replace(PUBLIC_BASE_URL, live_server.url, 1))
        wait_for_images(page)
        click_at(page.locator("img.candidate-image").nth(0), 0.5, 0.5)
        page.click("#save-page")
        page.wait_for_selector("#done:not([hidden])")
        code = prolific.study_completion_code(hit)
        assert page.locator("#completion-code").inner_text() == code
        page.wait_for_url("https://app.prolific.com/**")  # the page's own redirect, 1.5 s after the code shows
        assert back_at_prolific == [f"https://app.prolific.com/submissions/complete?cc={code}"]

        assignment = Assignment.objects.get(hit=hit)
        assert (assignment.external_id, assignment.worker.external_id) == (submission_id, "PBROWSER")
        assert assignment.submitted_at is not None
        market.complete(submission_id, code)  # Prolific takes the code: the submission awaits review
        assert market.submissions[submission_id]["status"] == "AWAITING REVIEW"
