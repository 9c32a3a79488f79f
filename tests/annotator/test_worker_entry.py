"""The task entry page: preview, accept and resume, refusals, frame headers; for MTurk and the link provider."""
import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from annotator import models
from annotator.worker.tokens import assignment_uuid_from_token
from tests.factories import WorkerFactory, make_coco_hit, make_imagenet_hit

pytestmark = pytest.mark.django_db


def bootstrap_of(response):
    match = re.search(rb'<script id="task-bootstrap" type="application/json">(.*?)</script>', response.content, re.S)
    assert match, response.content[:500]
    return json.loads(match.group(1))


def audit_types():
    return list(models.Event.objects.order_by("pk").values_list("type", flat=True))


@pytest.fixture
def mturk_hit(db):
    return make_imagenet_hit(n_pages=2, provider=models.Provider.MTURK)


@pytest.mark.parametrize("query", [
    "?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H1&workerId=AW1&turkSubmitTo=https://workersandbox.mturk.com",
    "?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H1",
    "",
])
def test_preview_shows_an_example_and_records_nothing(client, mturk_hit, query):
    response = client.get(f"/task/{mturk_hit.pk}/{query}")
    assert response.status_code == 200
    bootstrap = bootstrap_of(response)
    assert bootstrap["preview"] is True and bootstrap["token"] is None
    assert bootstrap["kind"] == "imagenet" and bootstrap["n_pages"] == 2 and bootstrap["api"] == "/api/worker"
    assert response.context["example_page"]["category"]["name"] == mturk_hit.pages.get(index=0).category.name
    assert len(response.context["example_page"]["items"]) == 48
    assert not models.Worker.objects.exists() and not models.Assignment.objects.exists()
    assert not models.Event.objects.exists()
    assert not response.cookies


def test_mturk_accept_creates_the_assignment_and_a_reload_resumes_it(client, mturk_hit):
    url = (f"/task/{mturk_hit.pk}/?assignmentId=3AMYW&hitId=3HIT&workerId=AWORKER1"
           "&turkSubmitTo=https%3A%2F%2Fworkersandbox.mturk.com")
    response = client.get(url)
    assert response.status_code == 200
    bootstrap = bootstrap_of(response)
    assert bootstrap["preview"] is False and bootstrap["market_assignment_id"] == "3AMYW"
    assignment = models.Assignment.objects.get()
    assert assignment_uuid_from_token(bootstrap["token"]) == assignment.uuid
    assert assignment.worker.provider == "mturk" and assignment.worker.external_id == "AWORKER1"
    assert assignment.external_id == "3AMYW" and assignment.turk_submit_to == "https://workersandbox.mturk.com"
    assert assignment.state == models.Assignment.State.ACCEPTED
    again = client.get(url)
    assert assignment_uuid_from_token(bootstrap_of(again)["token"]) == assignment.uuid
    assert models.Assignment.objects.count() == 1 and models.Worker.objects.count() == 1
    assert audit_types() == ["accepted", "resumed"]
    assert not response.cookies


def test_turk_submit_to_must_be_a_web_origin(client, mturk_hit):
    client.get(f"/task/{mturk_hit.pk}/?assignmentId=A&workerId=W&turkSubmitTo=javascript:alert(1)")
    assert models.Assignment.objects.get().turk_submit_to == ""


def csp_directives(response):
    """{directive: [sources]} of the response's Content-Security-Policy."""
    directives = {}
    for directive in response["Content-Security-Policy"].split(";"):
        name, *sources = directive.split()
        assert name not in directives, f"{name} is given twice"
        directives[name] = sources
    return directives


def test_frame_headers_allow_only_the_configured_markets(client, mturk_hit, settings):
    settings.WORKER_FRAME_ANCESTORS = ["https://worker.mturk.com", "https://market.example"]
    for query in ["", "?assignmentId=A&workerId=W"]:
        response = client.get(f"/task/{mturk_hit.pk}/{query}")
        assert csp_directives(response)["frame-ancestors"] == [
            "'self'", "https://worker.mturk.com", "https://market.example"
        ]
        assert "X-Frame-Options" not in response
        assert "no-store" in response["Cache-Control"]


@pytest.mark.parametrize("query", ["", "?assignmentId=A&workerId=W"], ids=["preview", "accepted"])
@pytest.mark.parametrize("make_hit", [make_imagenet_hit, make_coco_hit], ids=["imagenet", "coco"])
def test_task_page_allows_only_our_own_scripts(client, db, make_hit, query):
    response = client.get(f"/task/{make_hit(n_pages=1).pk}/{query}")
    assert response.status_code == 200
    directives = csp_directives(response)
    assert directives["script-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"] and directives["base-uri"] == ["'none'"]
    assert directives["default-src"] == ["'self'"] and directives["connect-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert not any("unsafe" in source for sources in directives.values() for source in sources)
    # The page has no inline script: its only <script> elements without src are json_script data blocks.
    inline = re.findall(rb"<script(?![^>]*\bsrc=)([^>]*)>", response.content)
    assert inline and all(b'type="application/json"' in attributes for attributes in inline)


def test_task_page_allows_images_from_the_storage_and_static_origins(client, db, settings):
    settings.MEDIA_URL = "https://images.example:8443/media/"
    settings.STATIC_URL = "https://cdn.example/static/"
    response = client.get(f"/task/{make_coco_hit(n_pages=1).pk}/")
    directives = csp_directives(response)
    assert directives["img-src"] == ["'self'", "data:", "https://cdn.example", "https://images.example:8443"]
    assert directives["script-src"] == ["'self'", "https://cdn.example"]
    assert response.context["example_page"]["image"]["url"].startswith("https://images.example:8443/media/")


def test_refused_page_has_the_same_policy(client, db):
    hit = make_imagenet_hit(n_pages=1)
    WorkerFactory(provider="link", external_id="BAD", blocked=True)
    refused = client.get(f"/task/{hit.pk}/?workerId=BAD")
    assert refused.status_code == 403
    assert csp_directives(refused) == csp_directives(client.get(f"/task/{hit.pk}/"))


def test_link_provider_reads_the_batch_parameter_names(client, db):
    hit = make_coco_hit(
        n_pages=1,
        provider_config={"params": {"worker": "PROLIFIC_PID", "study": "STUDY_ID", "assignment": "SESSION_ID"}},
    )
    preview = client.get(f"/task/{hit.pk}/?workerId=ignored")
    assert bootstrap_of(preview)["preview"] is True and not models.Assignment.objects.exists()
    assert [g["name"] for g in preview.context["example_page"]["groups"]] == ["person", "vehicle", "animal"]
    response = client.get(f"/task/{hit.pk}/?PROLIFIC_PID=P123&STUDY_ID=S1&SESSION_ID=SESS9")
    assert bootstrap_of(response)["kind"] == "coco"
    assignment = models.Assignment.objects.get()
    identity = (assignment.worker.provider, assignment.worker.external_id, assignment.external_id)
    assert identity == ("link", "P123", "SESS9")
    assert assignment.worker.hashed_id and assignment.worker.hashed_id != "P123"


def test_a_link_opened_as_an_mturk_preview_records_nothing(client, db):
    hit = make_coco_hit(n_pages=1)  # the link provider, its default parameter names (workerId, assignmentId)
    preview = client.get(f"/task/{hit.pk}/?workerId=W1&assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE")
    assert bootstrap_of(preview)["preview"] is True and not models.Assignment.objects.exists()


def test_variant_is_recorded_with_the_assignment(client, db):
    hit = make_imagenet_hit(n_pages=1, interface_variant=models.Batch.Variant.RED_DOT)
    response = client.get(f"/task/{hit.pk}/?workerId=W1")
    assert bootstrap_of(response)["variant"] == "red_dot"
    assert models.Assignment.objects.get().interface_variant == "red_dot"


def test_blocked_worker_gets_a_clear_page(client, db):
    hit = make_imagenet_hit(n_pages=1)
    WorkerFactory(provider="link", external_id="BAD", blocked=True)
    response = client.get(f"/task/{hit.pk}/?workerId=BAD")
    assert response.status_code == 403
    assert b"You cannot take this task" in response.content
    assert "task-bootstrap" not in response.content.decode()
    assert not models.Assignment.objects.exists()
    assert response["Content-Security-Policy"].startswith("frame-ancestors 'self'")


def test_worker_over_the_batch_limit_is_refused(client, db):
    first = make_imagenet_hit(n_pages=1, max_hits_per_worker=1)
    second = models.Hit.objects.create(batch=first.batch, index=99, status=models.Hit.Status.PUBLISHED)
    assert client.get(f"/task/{first.pk}/?workerId=W1").status_code == 200
    response = client.get(f"/task/{second.pk}/?workerId=W1")
    assert response.status_code == 403
    assert b"at most 1 of these tasks" in response.content
    assert models.Assignment.objects.count() == 1
    assert client.get(f"/task/{second.pk}/?workerId=W2").status_code == 200


def test_full_hit_is_refused(client, db):
    hit = make_imagenet_hit(n_pages=1)
    assert client.get(f"/task/{hit.pk}/?workerId=W1").status_code == 200
    response = client.get(f"/task/{hit.pk}/?workerId=W2")
    assert response.status_code == 409 and b"Every place on this task is taken" in response.content
    models.Assignment.objects.update(state=models.Assignment.State.RETURNED)
    assert client.get(f"/task/{hit.pk}/?workerId=W2").status_code == 200


def test_closed_batch_is_refused(client, db):
    hit = make_imagenet_hit(n_pages=1, status=models.Batch.Status.CLOSED)
    response = client.get(f"/task/{hit.pk}/?workerId=W1")
    assert response.status_code == 409 and b"This task is closed" in response.content


def test_reviewed_work_cannot_be_taken_again_but_submitted_work_shows_its_code(client, db):
    hit = make_imagenet_hit(n_pages=1)
    client.get(f"/task/{hit.pk}/?workerId=W1&assignmentId=A1")
    models.Assignment.objects.update(state=models.Assignment.State.SUBMITTED)
    assert client.get(f"/task/{hit.pk}/?workerId=W1&assignmentId=A1").status_code == 200
    models.Assignment.objects.update(state=models.Assignment.State.APPROVED)
    response = client.get(f"/task/{hit.pk}/?workerId=W1&assignmentId=A1")
    assert response.status_code == 409 and b"You have already done this task" in response.content


def test_unknown_hit_is_404(client, db):
    assert client.get("/task/999999/?workerId=W1").status_code == 404


@pytest.mark.parametrize("hit_param", ["&hitId=3OTHERHIT", "&hitId=", ""])
def test_mturk_hit_id_must_match_the_hits_market_id(client, mturk_hit, hit_param):
    mturk_hit.external_id = "3MARKETHIT"
    mturk_hit.save(update_fields=["external_id"])
    url = f"/task/{mturk_hit.pk}/?assignmentId=3AMYW&workerId=AWORKER1&turkSubmitTo=https://workersandbox.mturk.com"
    response = client.get(url + hit_param)
    assert response.status_code == 400
    assert b"This link is not for this task" in response.content
    assert "task-bootstrap" not in response.content.decode()
    assert response["Content-Security-Policy"].startswith("frame-ancestors 'self'")
    assert not models.Worker.objects.exists() and not models.Assignment.objects.exists()
    assert not models.Event.objects.exists()

    accepted = client.get(url + "&hitId=3MARKETHIT")
    assert accepted.status_code == 200 and bootstrap_of(accepted)["token"]
    assert models.Assignment.objects.get().hit == mturk_hit


def test_hit_id_is_not_checked_before_the_hit_is_on_the_market_nor_for_the_link_provider(client, db):
    unpublished = make_imagenet_hit(n_pages=1, provider=models.Provider.MTURK)
    assert client.get(f"/task/{unpublished.pk}/?assignmentId=A1&workerId=W1&hitId=ANY").status_code == 200
    link_hit = make_imagenet_hit(n_pages=1)
    link_hit.external_id = "LINKHIT"
    link_hit.save(update_fields=["external_id"])
    assert client.get(f"/task/{link_hit.pk}/?workerId=W2&hitId=OTHER").status_code == 200
    assert models.Assignment.objects.count() == 2


def test_an_mturk_preview_with_another_hit_id_still_records_nothing(client, mturk_hit):
    mturk_hit.external_id = "3MARKETHIT"
    mturk_hit.save(update_fields=["external_id"])
    response = client.get(f"/task/{mturk_hit.pk}/?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=3OTHERHIT")
    assert response.status_code == 200 and bootstrap_of(response)["preview"] is True
    assert not models.Worker.objects.exists() and not models.Event.objects.exists()


@pytest.mark.parametrize("query", ["?workerId=W%00&assignmentId=A1", "?workerId=W1&assignmentId=A%001"])
def test_a_nul_character_in_the_ids_is_a_refused_link_not_a_server_error(client, db, query):
    """It was a DataError from PostgreSQL and a 500 (text columns cannot hold NUL)."""
    hit = make_imagenet_hit(n_pages=1)
    response = client.get(f"/task/{hit.pk}/{query}")
    assert response.status_code == 400
    assert b"This link is not valid" in response.content and b"task-bootstrap" not in response.content
    assert not models.Worker.objects.exists() and not models.Assignment.objects.exists()


@pytest.mark.parametrize("provider, query", [
    (models.Provider.LINK, "?workerId=" + "W" * 201 + "&assignmentId=A1"),
    (models.Provider.MTURK, "?workerId=W1&assignmentId=" + "A" * 101),
    (models.Provider.PROLIFIC, "?PROLIFIC_PID=P1&SESSION_ID=S1&STUDY_ID=" + "S" * 101),
    (models.Provider.MTURK, "?workerId=W1&assignmentId=A1&turkSubmitTo=https://" + "m" * 200 + ".example"),
])
def test_an_id_longer_than_its_column_is_a_refused_link_not_a_truncated_id(client, db, provider, query):
    hit = make_imagenet_hit(n_pages=1, provider=provider)
    response = client.get(f"/task/{hit.pk}/{query}")
    assert response.status_code == 400
    assert b"This link is not valid" in response.content and b"characters long" in response.content
    assert not models.Worker.objects.exists() and not models.Assignment.objects.exists()


# ---------------------------------------------------------------- another browser cannot take over the work


def locked_page_checks(response):
    """The locked page: a clear refusal, no token, no page data; only the ticket the token's browser exchanges."""
    assert response.status_code == 409
    assert b"This task is open in another browser" in response.content
    bootstrap = bootstrap_of(response)
    assert bootstrap["token"] is None and bootstrap["preview"] is False
    assert set(bootstrap["resume"]) == {"key", "entry"}
    assert response.context["example_page"] is None
    assert b"/media/" not in response.content and b"example-page" not in response.content
    assert response["Content-Security-Policy"].startswith("frame-ancestors 'self'")
    return bootstrap


def test_knowing_a_worker_id_does_not_give_their_work_away(client, db):
    """Issue 14 point 3: /task/<hit>/?workerId=VICTIM&assignmentId=X returned the victim's assignment and a token."""
    hit = make_imagenet_hit(n_pages=2)
    victim = client.get(f"/task/{hit.pk}/?workerId=VICTIM&assignmentId=SESSION-1")
    assert victim.status_code == 200
    victim_bootstrap = bootstrap_of(victim)
    assignment = models.Assignment.objects.get()

    for query in ["?workerId=VICTIM", "?workerId=VICTIM&assignmentId=MADE-UP", "?workerId=VICTIM&assignmentId="]:
        bootstrap = locked_page_checks(client.get(f"/task/{hit.pk}/{query}"))
        assert bootstrap["resume"]["key"] == victim_bootstrap["resume"]["key"]
    assignment.refresh_from_db()
    assert assignment.external_id == "SESSION-1" and models.Assignment.objects.count() == 1
    assert audit_types() == ["accepted"]

    # The market's own link to the same market assignment resumes it, in any browser.
    again = client.get(f"/task/{hit.pk}/?workerId=VICTIM&assignmentId=SESSION-1")
    assert again.status_code == 200
    assert assignment_uuid_from_token(bootstrap_of(again)["token"]) == assignment.uuid
    assert audit_types() == ["accepted", "resumed"]


def test_work_started_without_a_market_assignment_id_opens_only_where_it_was_started(client, db):
    hit = make_imagenet_hit(n_pages=1)
    first = client.get(f"/task/{hit.pk}/?workerId=W1")
    assert first.status_code == 200 and bootstrap_of(first)["token"]
    locked_page_checks(client.get(f"/task/{hit.pk}/?workerId=W1"))
    models.Assignment.objects.update(state=models.Assignment.State.SUBMITTED)
    locked_page_checks(client.get(f"/task/{hit.pk}/?workerId=W1"))  # not even the completion code


def test_an_mturk_worker_back_with_a_new_assignment_id_resumes_only_in_their_browser(client, mturk_hit):
    """On MTurk, returning the HIT and accepting it again gives a new assignmentId: the browser holding the token
    resumes, and the work then goes to the new market assignment (else the decision would go to the returned one)."""
    url = f"/task/{mturk_hit.pk}/?hitId=3HIT&workerId=AW1&turkSubmitTo=https://workersandbox.mturk.com"
    token = bootstrap_of(client.get(url + "&assignmentId=3FIRST"))["token"]
    locked = locked_page_checks(client.get(url + "&assignmentId=3SECOND"))
    answer = client.post("/api/worker/resume", data=json.dumps({"entry": locked["resume"]["entry"]}),
                         content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert answer.status_code == 200, answer.content
    assignment = models.Assignment.objects.get()
    assert assignment_uuid_from_token(answer.json()["token"]) == assignment.uuid
    assert assignment.external_id == "3SECOND"
    assert audit_types() == ["accepted", "resumed"]


def test_a_draft_batch_refuses_workers_and_previews(client, db):
    hit = make_imagenet_hit(n_pages=1, status=models.Batch.Status.DRAFT)
    for query in ["?workerId=W1&assignmentId=A1", ""]:
        response = client.get(f"/task/{hit.pk}/{query}")
        assert response.status_code == 409 and b"This task is not open yet" in response.content
        assert b"task-bootstrap" not in response.content and b"/media/" not in response.content
    assert not models.Worker.objects.exists() and not models.Assignment.objects.exists()
    assert not models.Event.objects.exists()


def test_an_assignment_gets_the_batchs_assignment_duration(client, db):
    hit = make_imagenet_hit(n_pages=1, provider_config={"assignment_duration": 900})
    before = timezone.now()
    client.get(f"/task/{hit.pk}/?workerId=W1&assignmentId=A1")
    assignment = models.Assignment.objects.get()
    assert before + timedelta(seconds=900) <= assignment.deadline <= timezone.now() + timedelta(seconds=900)
    default = make_imagenet_hit(n_pages=1)
    client.get(f"/task/{default.pk}/?workerId=W1&assignmentId=A2")
    taken = models.Assignment.objects.get(hit=default)
    duration = taken.deadline - taken.accepted_at
    assert abs(duration - timedelta(seconds=models.DEFAULT_ASSIGNMENT_DURATION_S)) < timedelta(seconds=1)


def test_an_abandoned_place_is_freed_once_its_time_ran_out(client, db):
    """Made-up worker ids took every place and nothing freed them: past the deadline, the next entry expires them."""
    hit = make_imagenet_hit(n_pages=1)
    assert client.get(f"/task/{hit.pk}/?workerId=SQUATTER&assignmentId=S1").status_code == 200
    assert client.get(f"/task/{hit.pk}/?workerId=HONEST&assignmentId=H1").status_code == 409
    models.Assignment.objects.update(deadline=timezone.now() - timedelta(seconds=1))
    assert client.get(f"/task/{hit.pk}/?workerId=HONEST&assignmentId=H1").status_code == 200
    squatted = models.Assignment.objects.get(worker__external_id="SQUATTER")
    assert squatted.state == models.Assignment.State.EXPIRED
    expired = models.Event.objects.get(type="expired")
    assert (expired.assignment, expired.hit, expired.data["from"]) == (squatted, hit, "accepted")
    again = client.get(f"/task/{hit.pk}/?workerId=SQUATTER&assignmentId=S1")
    assert again.status_code == 409 and b"The time for this task ran out" in again.content


def test_one_address_cannot_hold_places_endlessly(client, db, settings):
    """Three GETs with made-up worker ids took every place on three HITs. Now an address holds at most
    WORKER_OPEN_PER_ADDRESS open places (then 429), opening is rated (WORKER_ENTRY_RATE) and places expire."""
    settings.WORKER_OPEN_PER_ADDRESS = 2
    hits = [make_imagenet_hit(n_pages=1) for _ in range(3)]
    assert [client.get(f"/task/{hit.pk}/?workerId=FAKE{i}&assignmentId=X{i}").status_code
            for i, hit in enumerate(hits)] == [200, 200, 429]
    refused = client.get(f"/task/{hits[2].pk}/?workerId=FAKE9&assignmentId=X9")
    assert refused.status_code == 429 and b"Too many tasks open" in refused.content
    assert models.Assignment.objects.count() == 2
    other_address = client.get(f"/task/{hits[2].pk}/?workerId=REAL&assignmentId=R1", REMOTE_ADDR="10.1.2.3")
    assert other_address.status_code == 200
    # The address's places come back when its work is submitted or expires.
    models.Assignment.objects.filter(worker__external_id="FAKE0").update(state=models.Assignment.State.SUBMITTED)
    models.Assignment.objects.filter(worker__external_id="FAKE1").update(deadline=timezone.now())
    extra = make_imagenet_hit(n_pages=1)
    assert client.get(f"/task/{extra.pk}/?workerId=FAKE3&assignmentId=X3").status_code == 200
    assert client.get(f"/task/{make_imagenet_hit(n_pages=1).pk}/?workerId=FAKE4&assignmentId=X4").status_code == 200
    assert client.get(f"/task/{make_imagenet_hit(n_pages=1).pk}/?workerId=FAKE5&assignmentId=X5").status_code == 429
    # Only a keyed hash of the address is kept.
    assert all(re.fullmatch(r"[0-9a-f]{32}", address) for address in
               models.Assignment.objects.values_list("entry_address", flat=True))


def test_the_task_page_answers_503_with_retry_after_while_the_database_is_down(client, db):
    """Issue 14: a PostgreSQL restart gave workers opening a task a bare 500; they get a page saying to reload."""
    from django.db import OperationalError, connection

    hit = make_imagenet_hit(n_pages=1)
    url = f"/task/{hit.pk}/?workerId=W1&assignmentId=A1"

    def database_down(*args):
        raise OperationalError("connection to server at 127.0.0.1, port 5432 failed: Connection refused")

    with connection.execute_wrapper(database_down):
        response = client.get(url)

    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert b"Temporarily unavailable" in response.content and b"then reload this page" in response.content
    assert "frame-ancestors" in response["Content-Security-Policy"]
    assert client.get(url).status_code == 200  # back up: the same link works
