"""Fuzzing the ingestion endpoints: whatever a client sends, the answer is a 4xx or a success, never a 5xx."""
import copy
import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotator.worker import services
from annotator.worker.tokens import make_token
from tests.annotator import worker_bodies as bodies
from tests.factories import make_coco_hit, make_imagenet_hit

pytestmark = pytest.mark.django_db

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def leaf_paths(value, prefix=()):
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = list(enumerate(value))[:3]
    else:
        return [prefix]
    paths = [prefix] if prefix else []
    for key, child in items:
        paths += leaf_paths(child, prefix + (key,))
    return paths


def replaced(body, path, value):
    body = copy.deepcopy(body)
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


@pytest.fixture
def worker_api(client, db):
    imagenet_hit, coco_hit = make_imagenet_hit(n_pages=1), make_coco_hit(n_pages=1)
    tokens = {
        hit.batch.task_kind: make_token(services.accept_assignment(hit, "FUZZ")) for hit in (imagenet_hit, coco_hit)
    }
    valid = {
        "imagenet": bodies.imagenet_save(imagenet_hit.pages.get()),
        "coco": bodies.coco_save(coco_hit.pages.get()),
        "events": bodies.event_flush([
            {"type": "track", "x": 0.5, "y": 0.5, "timeAt": 10},
            {"type": "visibility", "state": "hidden", "time": bodies.now_ms()},
        ]),
    }

    def post(kind, path, data):
        response = client.post(
            f"/api/worker/{path}", data=data, content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {tokens[kind]}",
        )
        assert response.status_code < 500, response.content
        if response.status_code >= 400:
            assert set(response.json()) == {"error"}
        return response

    return post, valid


@FUZZ
@given(kind=st.sampled_from(["imagenet", "coco"]), path=st.sampled_from(["pages/0/save", "pages/0/events", "submit"]),
       value=json_values)
def test_arbitrary_json_never_gives_a_server_error(worker_api, kind, path, value):
    post, _ = worker_api
    post(kind, path, json.dumps(value))


@FUZZ
@given(data=st.data(), kind=st.sampled_from(["imagenet", "coco", "events"]), value=json_values)
def test_valid_bodies_with_one_field_replaced_never_give_a_server_error(worker_api, data, kind, value):
    post, valid = worker_api
    body = valid[kind]
    path = data.draw(st.sampled_from(leaf_paths(body)))
    mutated = replaced(body, path, value)
    if kind == "events":
        post("imagenet", "pages/0/events", json.dumps(mutated))
        post("coco", "pages/0/events", json.dumps(mutated))
    else:
        if path != ("save_id",):
            mutated["save_id"] = str(uuid.uuid4())  # so a valid mutation is stored, not a retry
        post(kind, "pages/0/save", json.dumps(mutated))


@FUZZ
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes_never_give_a_server_error(worker_api, raw):
    post, _ = worker_api
    post("imagenet", "pages/0/save", raw)
    post("coco", "pages/0/events", raw)
