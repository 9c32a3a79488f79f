"""Schemathesis over the app's own OpenAPI schema (/api/schema/): no 5xx, and every answer is documented.

Every operation is called in-process through the WSGI app (same database connection as the test, so the
fixtures' rows are visible) with generated valid and invalid inputs, as staff, as a worker holding a real
assignment token, with a forged token and with no credentials. Schemathesis' checks then hold each answer to
the schema: not a server error, a documented status code, content type and body.
"""
import pytest
import schemathesis
from schemathesis import checks
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from rest_framework.throttling import SimpleRateThrottle

from annotator.worker import services
from annotator.worker.tokens import make_token
from config.wsgi import application
from tests.factories import BatchFactory, make_coco_hit, make_imagenet_hit
from training.models import InferenceJob, ModelVersion, TrainingJob

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

schema = schemathesis.pytest.from_fixture("api_schema")

FUZZ = settings(
    max_examples=25, derandomize=True, deadline=None, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
# Valid-looking inputs still name rows that do not exist (a batch, a dataset by name) or content the page never
# showed: 400 naming the field is the right answer there, so schemathesis' "valid input must be accepted" is off.
EXCLUDED = [checks.positive_data_acceptance]
# The worker API answers a missing token with 403, as documented (docs/worker-api.md), not with 401.
WORKER_EXCLUDED = [*EXCLUDED, checks.missing_required_header]
STAFF_API = r"^/api/(exports|training)/"
WORKER_API = r"^/api/worker/"


def assert_refused_or_no_such_path(response, refusal):
    """Without valid credentials nothing is served: the refusal, or 404 where the generated path matches no URL."""
    code = response.json()["error"]["code"]
    assert (response.status_code, code) in {
        (refusal, "not_authenticated"), (refusal, "authentication_failed"), (404, "not_found"),
    }, response.text


@pytest.fixture(autouse=True)
def _no_rate_limits(monkeypatch):
    """Hundreds of requests on one token or address would otherwise end in 429s (test_worker_rate_limits.py)."""
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", dict.fromkeys(SimpleRateThrottle.THROTTLE_RATES))


@pytest.fixture
def api_schema(db):
    """The schema the app serves; requests run inside the test's transaction, as with Django's test client."""
    # The WSGI handler would otherwise close the test's connection at the end of every request.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield schemathesis.openapi.from_wsgi("/api/schema/", application)
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def staff_headers(django_user_model):
    admin = django_user_model.objects.create_user("fuzz-admin", password="x", is_staff=True)
    return {"Authorization": f"Token {Token.objects.create(user=admin).key}"}


@pytest.fixture
def real_ids(django_user_model):
    """One of each object the staff API names in its paths, so fuzzed calls also reach existing rows."""
    batch = BatchFactory()
    job = TrainingJob.objects.create(dataset=batch.dataset, source=TrainingJob.Source.API)
    version = ModelVersion.objects.create(name="fuzz-v1", dataset=batch.dataset, job=job, manifest_hash="0" * 64)
    inference = InferenceJob.objects.create(model_version=version)
    return {"job_id": job.pk, "version_id": version.pk, "inference_job_id": inference.pk}


@pytest.fixture
def worker_headers(db):
    """A real assignment of each task kind: a page save body fits one kind or the other."""
    hits = [make_imagenet_hit(n_pages=2, items_per_page=4, n_in_class=2), make_coco_hit(n_pages=2)]
    return [{"Authorization": f"Bearer {make_token(services.accept_assignment(hit, 'FUZZ'))}"} for hit in hits]


@schema.include(path_regex=STAFF_API).parametrize()
@FUZZ
def test_staff_api_as_staff(case, staff_headers, real_ids):
    case.call_and_validate(headers=staff_headers, excluded_checks=EXCLUDED)
    if case.path_parameters:
        case.path_parameters = {name: real_ids.get(name, value) for name, value in case.path_parameters.items()}
        case.call_and_validate(headers=staff_headers, excluded_checks=EXCLUDED)


@schema.include(path_regex=WORKER_API).parametrize()
@FUZZ
def test_worker_api_with_a_real_assignment_token(case, worker_headers):
    for headers in worker_headers:
        case.call_and_validate(headers=headers, excluded_checks=WORKER_EXCLUDED)


@schema.include(path_regex=WORKER_API).parametrize()
@FUZZ
def test_worker_api_with_a_forged_token(case):
    response = case.call_and_validate(
        headers={"Authorization": "Bearer forged.token.value"}, excluded_checks=WORKER_EXCLUDED
    )
    assert_refused_or_no_such_path(response, 403)


@schema.parametrize()
@FUZZ
def test_every_operation_without_credentials(case):
    worker = case.path.startswith("/api/worker/")
    response = case.call_and_validate(excluded_checks=WORKER_EXCLUDED if worker else EXCLUDED)
    assert_refused_or_no_such_path(response, 403 if worker else 401)
