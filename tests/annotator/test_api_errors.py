"""The API's one error shape (annotator/api/errors.py, pagination.py): bad input is a 400 naming the field,
an unknown path a JSON 404, never an HTML page or a 500."""
import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import BatchFactory
from training.models import TrainingJob

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(django_user_model):
    client = APIClient()
    user = django_user_model.objects.create_user("staff", is_staff=True)
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.mark.parametrize("query, field", [
    ({"limit": "1000000000000000000000000000"}, "limit"),  # was passed to PostgreSQL: bigint out of range, a 500
    ({"limit": "abc"}, "limit"),
    ({"limit": "0"}, "limit"),
    ({"limit": "1001"}, "limit"),
    ({"offset": "-1"}, "offset"),
    ({"offset": "1e3"}, "offset"),
])
def test_a_bad_limit_or_offset_is_a_400_naming_it(staff, query, field):
    TrainingJob.objects.create(dataset=BatchFactory().dataset)
    response = staff.get("/api/training/jobs/", query)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid" and list(error["fields"]) == [field]


def test_good_limit_and_offset_page_through_the_list(staff):
    dataset = BatchFactory().dataset
    jobs = [TrainingJob.objects.create(dataset=dataset) for _ in range(3)]
    page = staff.get("/api/training/jobs/", {"limit": "2", "offset": "1"}).json()
    assert page["count"] == 3 and [job["id"] for job in page["results"]] == [jobs[1].pk, jobs[0].pk]


def test_an_api_path_that_names_no_endpoint_is_a_json_404(staff):
    response = staff.get("/api/training/jobs/not-a-number/")
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"


def test_a_missing_object_is_a_404_with_code_not_found(staff):
    response = staff.get("/api/training/jobs/999999/")
    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "not_found", "message": "No TrainingJob matches the given query.", "fields": {},
    }


def test_a_page_outside_the_api_keeps_the_html_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("path, query, field", [
    ("/api/training/jobs/", {"dataset": "a\x00b"}, "dataset"),  # was a DataError from PostgreSQL: a 500
    ("/api/training/models/", {"dataset": "\x00"}, "dataset"),
    ("/api/training/jobs/", {"status": "\x00"}, "status"),
])
def test_a_nul_character_in_a_filter_is_a_400_naming_it(staff, path, query, field):
    response = staff.get(path, query)
    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["fields"]) == [field]


@pytest.mark.parametrize("path, body, field", [
    ("/api/exports/", {"batch": "b\x00", "format": "imagenet-ab"}, "batch"),  # each was a 500
    ("/api/training/jobs/create/", {"dataset": "\x00"}, "dataset"),
    ("/api/training/jobs/create/", {"dataset": "DATASET", "batches": ["\x00"]}, "batches"),
])
def test_a_nul_character_in_a_name_is_a_400_naming_the_field(staff, path, body, field):
    dataset = BatchFactory().dataset
    body = {key: dataset.name if value == "DATASET" else value for key, value in body.items()}
    response = staff.post(path, body, format="json")
    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["fields"]) == [field]


def test_an_unreachable_database_is_a_503_with_retry_after_and_the_page_save_can_be_retried(client, monkeypatch):
    """A PostgreSQL restart mid-request: the worker page retries 5xx; 503 + Retry-After says so plainly."""
    from django.db import OperationalError

    from annotator.worker import services
    from annotator.worker.tokens import make_token
    from tests.annotator import worker_bodies as bodies
    from tests.factories import make_imagenet_hit

    hit = make_imagenet_hit()
    token = make_token(services.accept_assignment(hit, "W1"))
    body = bodies.imagenet_save(hit.pages.get(index=0))

    def restart(*args, **kwargs):
        raise OperationalError("terminating connection due to administrator command")

    with monkeypatch.context() as patched:
        patched.setattr(services, "insert_rows", restart)
        response = client.post("/api/worker/pages/0/save", body, content_type="application/json",
                               HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "unavailable"
    retry = client.post("/api/worker/pages/0/save", body, content_type="application/json",
                        HTTP_AUTHORIZATION=f"Bearer {token}")
    assert retry.status_code == 201, retry.content


def test_a_form_encoded_body_is_a_415_not_a_guess(staff):
    """Found by the schema fuzz test: a form body repeating `uncertainty` with junk values created an inference job
    with the default; the API reads JSON only."""
    from tests.training.job_data import registered_version

    version = registered_version(BatchFactory().dataset)
    response = staff.post(f"/api/training/models/{version.pk}/inference/", "uncertainty=&uncertainty=p%17",
                          content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415, response.content
    assert response.json()["error"]["code"] == "unsupported_media_type"
