"""The training admin pages in a real browser: the add form lists only the chosen dataset's batches."""
import pytest

from tests import factories
from tests.e2e.test_review_console import log_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

VISIBLE_BATCHES = "() => Array.from(document.querySelectorAll('#id_batches option')).filter((o) => !o.hidden)" \
    ".map((o) => o.textContent)"


def test_the_add_form_lists_the_batches_of_the_chosen_dataset(page, live_server):
    shapes, coco = factories.DatasetFactory(name="shapes"), factories.DatasetFactory(name="coco")
    factories.BatchFactory(dataset=shapes, name="shapes-r1")
    factories.BatchFactory(dataset=shapes, name="shapes-r2")
    factories.BatchFactory(dataset=coco, name="coco-r1")
    page.set_default_timeout(90_000)  # the form's first build imports the engine (torch)

    log_in(page, live_server, "/admin/training/trainingjob/add/")
    page.select_option("#id_dataset", str(shapes.pk))
    assert page.evaluate(VISIBLE_BATCHES) == ["shapes-r1", "shapes-r2"]
    page.select_option("#id_batches", label="shapes-r2")
    page.select_option("#id_dataset", str(coco.pk))
    assert page.evaluate(VISIBLE_BATCHES) == ["coco-r1"]
    assert page.evaluate("() => document.querySelector('#id_batches').selectedOptions.length") == 0
