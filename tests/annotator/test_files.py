"""Stored files (issue 14, point 2): only display images are public; exports, reports, originals and training
artifacts go through the authenticated files view to the staff and researchers allowed to read them."""
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from rest_framework.authtoken.models import Token

from annotator.models import ExportJob
from annotator.worker.tokens import make_token
from tests import factories
from training.models import JobStatus, ModelVersion, TrainingJob

from .test_storage import s3_bucket  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

DISPLAY = "display/0123456789abcdef0123456789abcdef.jpg"
EXPORT = "exports/round-1-jsonl-7.jsonl"
REPORT = "reports/round-1/20261201-101500/report.html"
ORIGINAL = "images/shapes/train/n01440764/n01440764_105.JPEG"
CHECKPOINT = "training/jobs/3/checkpoint.pt"
CONFIG = "training/jobs/3/config.json"
METRICS = "training/jobs/3/metrics.json"
PRIVATE = [EXPORT, REPORT, ORIGINAL, CHECKPOINT, CONFIG, METRICS]


def store(*names):
    for name in names:
        assert default_storage.save(name, ContentFile(f"bytes of {name}".encode())) == name


def body(response):
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.fixture
def stored():
    store(DISPLAY, *PRIVATE)


def user_client(django_user_model, username, *, staff=False, researcher=False, token=False):
    user = django_user_model.objects.create_user(username, is_staff=staff)
    if researcher:
        user.groups.add(Group.objects.get(name="researchers"))
    client = Client()
    if token:
        client.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.create(user=user).key}"
    else:
        client.force_login(user)
    return client


@pytest.fixture
def readers(django_user_model):
    """Every kind of caller: anonymous, a worker with a good token (header and beacon query), a plain account,
    a researcher (session and API token) and staff."""
    assignment = factories.AssignmentFactory(hit__batch__status="published")
    worker = Client(HTTP_AUTHORIZATION=f"Bearer {make_token(assignment)}")
    return {
        "anonymous": (Client(), ""),
        "worker": (worker, ""),
        "worker beacon": (Client(), f"?token={make_token(assignment)}"),
        "plain user": (user_client(django_user_model, "plain"), ""),
        "researcher": (user_client(django_user_model, "ada", researcher=True), ""),
        "researcher token": (user_client(django_user_model, "grace", researcher=True, token=True), ""),
        "staff": (user_client(django_user_model, "admin", staff=True), ""),
    }


def allowed(reader, name):
    return reader == "staff" or (reader.startswith("researcher") and name.startswith("training/"))


def test_display_images_are_the_only_public_files(stored, readers):
    for reader, (client, query) in readers.items():
        response = client.get(f"/media/{DISPLAY}{query}")
        assert response.status_code == 200 and body(response) == f"bytes of {DISPLAY}".encode(), reader
        for name in PRIVATE:  # whatever the caller: the public folder serves nothing else
            assert client.get(f"/media/{name}{query}").status_code == 404, (reader, name)


def test_the_files_view_gives_each_file_only_to_those_allowed(stored, readers):
    for reader, (client, query) in readers.items():
        for name in PRIVATE:
            response = client.get(f"/files/{name}{query}")
            if allowed(reader, name):
                assert response.status_code == 200, (reader, name, response.content)
                assert body(response) == f"bytes of {name}".encode()
                assert response["Cache-Control"] == "private, no-store"
            else:
                expected = 401 if reader.startswith(("anonymous", "worker")) else 403
                assert response.status_code == expected, (reader, name, response.status_code)
                assert set(response.json()) == {"error"} and b"bytes of" not in response.content


def test_the_files_view_refuses_paths_out_of_the_storage_and_missing_files(stored, django_user_model, settings):
    (settings.MEDIA_ROOT.parent / "secret.txt").write_text("outside")
    staff = user_client(django_user_model, "admin", staff=True)

    for name in ["exports/../../secret.txt", "exports/%2e%2e/%2e%2e/secret.txt", "exports//x", "exports/nothing.jsonl"]:
        response = staff.get(f"/files/{name}")
        assert response.status_code == 404 and b"outside" not in response.content, name


def test_an_export_job_gives_a_download_url_only_staff_can_use(stored, django_user_model):
    job = ExportJob.objects.create(batch=factories.BatchFactory(), format="jsonl", status="done", file=EXPORT)
    staff = user_client(django_user_model, "admin", staff=True)

    url = staff.get(f"/api/exports/{job.pk}/").json()["download_url"]

    assert url == f"http://testserver/files/{EXPORT}"
    assert body(staff.get(url)) == f"bytes of {EXPORT}".encode()
    assert Client().get(url).status_code == 401
    assert user_client(django_user_model, "ada", researcher=True).get(url).status_code == 403


def test_training_artifact_urls_are_absolute_and_reach_researchers_only(stored, django_user_model):
    dataset = factories.DatasetFactory()
    job = TrainingJob.objects.create(dataset=dataset, status=JobStatus.SUCCEEDED,
                                     artifacts={"checkpoint": CHECKPOINT, "config": CONFIG, "metrics": METRICS})
    version = ModelVersion.objects.create(name="shapes-job-3", job=job, dataset=dataset, checkpoint=CHECKPOINT)
    researcher = user_client(django_user_model, "ada", researcher=True, token=True)
    plain = user_client(django_user_model, "plain")

    artifacts = researcher.get(f"/api/training/jobs/{job.pk}/").json()["artifacts"]
    checkpoint_url = researcher.get(f"/api/training/models/{version.pk}/").json()["checkpoint_url"]

    assert artifacts == {name: f"http://testserver/files/{path}"
                         for name, path in [("checkpoint", CHECKPOINT), ("config", CONFIG), ("metrics", METRICS)]}
    assert checkpoint_url == artifacts["checkpoint"]
    for url in artifacts.values():
        assert researcher.get(url).status_code == 200
        assert Client().get(url).status_code == 401
        assert plain.get(url).status_code == 403


def test_with_s3_the_files_view_redirects_to_a_short_lived_signed_url(
    s3_bucket, django_user_model, settings,  # noqa: F811
):
    settings.FILE_URL_MAX_AGE = 60
    store(EXPORT)
    staff = user_client(django_user_model, "admin", staff=True)

    assert Client().get(f"/files/{EXPORT}").status_code == 401
    response = staff.get(f"/files/{EXPORT}")

    assert response.status_code == 302
    signed = urlsplit(response["Location"])
    query = parse_qs(signed.query)
    assert signed.path.endswith(f"/{EXPORT}") and query["X-Amz-Expires"] == ["60"] and "X-Amz-Signature" in query
    assert requests.get(response["Location"], timeout=10).content == f"bytes of {EXPORT}".encode()


def test_with_s3_a_report_comes_through_the_view_and_its_plots_by_signed_urls(
    s3_bucket, django_user_model,  # noqa: F811
):
    plot = REPORT.replace("report.html", "clicks.png")
    store(REPORT, plot)
    staff = user_client(django_user_model, "admin", staff=True)

    page = staff.get(f"/files/{REPORT}")
    assert page.status_code == 200 and body(page) == f"bytes of {REPORT}".encode()
    image = staff.get(f"/files/{plot}")  # where the report's relative link "clicks.png" leads
    assert image.status_code == 302 and "X-Amz-Signature=" in image["Location"]
    assert requests.get(image["Location"], timeout=10).content == f"bytes of {plot}".encode()
    assert Client().get(f"/files/{REPORT}").status_code == 401
