"""The OpenAPI schema (annotator/api/schema.py) tells the truth about errors and what the views really send."""
import pytest
from drf_spectacular.generators import SchemaGenerator

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def openapi():
    return SchemaGenerator().get_schema(request=None, public=True)


def operation(openapi, method, path):
    return openapi["paths"][path][method]


def test_staff_operations_document_their_error_answers_in_the_one_error_shape(openapi):
    detail = operation(openapi, "get", "/api/training/jobs/{job_id}/")["responses"]
    assert {"200", "401", "403", "404"} <= set(detail)
    assert detail["404"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert {"400", "401", "403"} <= set(operation(openapi, "post", "/api/exports/")["responses"])
    assert "400" in operation(openapi, "get", "/api/training/jobs/")["responses"]  # bad status, limit or offset
    assert set(openapi["components"]["schemas"]["ErrorDetail"]["properties"]) == {"code", "message", "fields"}


def test_worker_operations_document_403_not_401_and_the_throttle(openapi):
    for method, path in [("get", "/api/worker/assignment/"), ("post", "/api/worker/submit/")]:
        responses = operation(openapi, method, path)["responses"]
        assert {"403", "429"} <= set(responses) and "401" not in responses
    assert "400" in operation(openapi, "post", "/api/worker/submit/")["responses"]  # a body that is not JSON
    for path in ["/api/worker/submit/", "/api/worker/pages/{index}/events/", "/api/worker/pages/{index}/save/"]:
        assert {"408", "413"} <= set(operation(openapi, "post", path)["responses"])  # a body too slow, too large
    assert {"200", "201"} <= set(operation(openapi, "post", "/api/worker/pages/{index}/save/")["responses"])


def test_documented_success_codes_and_nullable_fields_match_the_views(openapi):
    assert set(operation(openapi, "post", "/api/training/jobs/{job_id}/cancel/")["responses"]) >= {"202"}
    assert "200" not in operation(openapi, "post", "/api/training/jobs/{job_id}/cancel/")["responses"]
    created_by = openapi["components"]["schemas"]["TrainingJobOutput"]["properties"]["created_by"]
    assert created_by.get("nullable") is True  # jobs started by a trigger or a command have no user


def test_list_pagination_bounds_are_in_the_schema(openapi):
    parameters = {p["name"]: p["schema"] for p in operation(openapi, "get", "/api/training/models/")["parameters"]}
    assert parameters["limit"]["minimum"] == 1 and parameters["limit"]["maximum"] == 1000
    assert parameters["offset"]["minimum"] == 0
