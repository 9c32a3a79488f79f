"""The training API: researchers (the group or the permission) and staff only; one error shape; no partial writes."""
import pytest
from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests import factories
from tests.training.job_data import registered_version
from training.models import JobStatus, ModelVersion, TrainingJob

pytestmark = pytest.mark.django_db

CREATE_URL = "/api/training/jobs/create/"


def client_for(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def researcher(django_user_model):
    user = django_user_model.objects.create_user("ada")
    user.groups.add(Group.objects.get(name="researchers"))
    return user


@pytest.fixture
def researcher_client(researcher):
    return client_for(researcher)


@pytest.fixture
def dataset():
    dataset = factories.DatasetFactory()
    factories.BatchFactory(dataset=dataset, name="round-1")
    return dataset


def test_anonymous_and_non_researchers_cannot_start_a_job(django_user_model, dataset):
    body = {"dataset": dataset.name}
    anonymous = APIClient().post(CREATE_URL, body, format="json")
    assert anonymous.status_code == 401
    plain_user = client_for(django_user_model.objects.create_user("crowd-worker-account"))
    forbidden = plain_user.post(CREATE_URL, body, format="json")
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "permission_denied"
    assert plain_user.get("/api/training/jobs/").status_code == 403
    assert not TrainingJob.objects.exists()


def test_researcher_starts_a_job_that_is_queued_after_commit(researcher_client, researcher, dataset, monkeypatch,
                                                            django_capture_on_commit_callbacks):
    from training import tasks

    sent = []
    monkeypatch.setattr(tasks.run_training_job, "apply_async", lambda **kwargs: sent.append(kwargs))
    with django_capture_on_commit_callbacks(execute=True):
        response = researcher_client.post(CREATE_URL, {
            "dataset": dataset.name, "batches": ["round-1"], "config": {"model": "test_resnet", "epochs": 2},
        }, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "queued" and body["batches"] == ["round-1"] and body["created_by"] == "ada"
    job = TrainingJob.objects.get(pk=body["id"])
    assert job.source == TrainingJob.Source.API and job.config == {"model": "test_resnet", "epochs": 2}
    assert sent == [{"args": [job.pk], "task_id": job.celery_task_id}]


def test_staff_may_start_a_job(django_user_model, dataset, django_capture_on_commit_callbacks):
    staff = client_for(django_user_model.objects.create_user("admin", is_staff=True))
    with django_capture_on_commit_callbacks(execute=False):
        assert staff.post(CREATE_URL, {"dataset": dataset.name}, format="json").status_code == 201


@pytest.mark.parametrize("body, field, reason", [
    ({"config": {"epochz": 3}}, "config.epochz", "unknown option"),
    ({"config": {"method": "magic"}}, "config.method", "'magic' is not one of baseline, luab, attentive, patch"),
    ({"config": {"min_feature_cells": 0}}, "config.min_feature_cells", "outside [1, 1024]"),
    ({"config": {"epochs": 0}}, "config.epochs", "outside [1, 10000]"),
    ({"config": {"epochs": 10**30}}, "config.epochs", "outside [1, 10000]"),  # was queued with a 201
    ({"config": {"epochs": "x"}}, "config.epochs", "'x' is not of type int"),  # was a raw Python TypeError text
    ({"config": {"epochs": 2.5}}, "config.epochs", "not of type int"),
    ({"config": {"amp": 1}}, "config.amp", "not of type bool"),
    ({"config": {"lr": "fast"}}, "config.lr", "not of type float"),
    ({"config": {"model_kwargs": []}}, "config.model_kwargs", "not of type dict"),
    ({"config": {"img_size": 8}}, "config.img_size", "outside [16, 4096]"),
    ({"config": {"cam": "attention", "method": "patch"}}, "config", "cam: 'attention' needs method attentive"),
    ({"config": {"cam": "gradcam"}}, "config", "cam: 'gradcam' is not one of"),
    ({"config": {"pseudo_label_threshold": 0.99}}, "config.pseudo_label_threshold", "has no active model version"),
    ({"config": {"pseudo_label_threshold": 1.5}}, "config.pseudo_label_threshold", "outside [0, 1]"),
    ({"config": {"balanced_batches": "yes"}}, "config.balanced_batches", "not of type bool"),
    ({"config": {"method": "scl"}}, "config.method", "scl trains from COCO-style icons"),
    ({"batches": ["someone-elses"]}, "batches", "not batches of dataset"),
    ({"dataset": "no-such-dataset"}, "dataset", "does not exist"),
])
def test_bad_input_names_the_field_and_writes_nothing(researcher_client, dataset, body, field, reason):
    factories.BatchFactory(name="someone-elses")
    response = researcher_client.post(CREATE_URL, {"dataset": dataset.name, **body}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and reason in " ".join(error["fields"][field])
    assert not TrainingJob.objects.exists()


def test_every_bad_option_is_named_at_once(researcher_client, dataset):
    config = {"epochs": 0, "lr": "fast", "method": "magic", "img_size": 64}
    response = researcher_client.post(CREATE_URL, {"dataset": dataset.name, "config": config}, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"config.epochs", "config.lr", "config.method"}
    assert not TrainingJob.objects.exists()


def test_job_detail_shows_progress_and_cancel_stops_a_queued_job(researcher_client, dataset):
    job = TrainingJob.objects.create(dataset=dataset, progress={"epoch": 1, "epochs": 5, "step": 3, "steps": 10,
                                                                "loss": 0.7, "images_per_s": 120.0, "eta_s": 42.0})
    detail = researcher_client.get(f"/api/training/jobs/{job.pk}/").json()
    assert detail["progress"]["eta_s"] == 42.0 and detail["status"] == "queued"

    cancelled = researcher_client.post(f"/api/training/jobs/{job.pk}/cancel/")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    again = researcher_client.post(f"/api/training/jobs/{job.pk}/cancel/")
    assert again.status_code == 400 and "already cancelled" in again.json()["error"]["message"]


def test_cancel_of_a_running_job_asks_the_worker_to_stop(researcher_client, dataset):
    job = TrainingJob.objects.create(dataset=dataset, status=JobStatus.RUNNING)
    body = researcher_client.post(f"/api/training/jobs/{job.pk}/cancel/").json()
    assert body["status"] == "running" and body["cancel_requested"] is True


def test_list_filters_by_dataset_and_status(researcher_client, dataset):
    TrainingJob.objects.create(dataset=dataset, status=JobStatus.SUCCEEDED)
    TrainingJob.objects.create(dataset=dataset)
    TrainingJob.objects.create(dataset=factories.DatasetFactory())
    listed = researcher_client.get("/api/training/jobs/", {"dataset": dataset.name, "status": "succeeded"}).json()
    assert listed["count"] == 1 and listed["results"][0]["status"] == "succeeded"


def test_list_refuses_an_unknown_status_naming_the_field(researcher_client, dataset):
    response = researcher_client.get("/api/training/jobs/", {"status": "finished"})
    assert response.status_code == 400
    assert response.json()["error"]["fields"]["status"] == [
        "'finished' is not one of queued, running, succeeded, failed, cancelled"
    ]


def test_promote_makes_one_version_active_and_sets_the_dataset(researcher_client, dataset):
    first, second = registered_version(dataset), registered_version(dataset)
    assert researcher_client.post(f"/api/training/models/{first.pk}/promote/").json()["is_active"] is True
    response = researcher_client.post(f"/api/training/models/{second.pk}/promote/")
    assert response.status_code == 200
    dataset.refresh_from_db()
    assert dataset.active_model_version == second.name
    assert list(ModelVersion.objects.filter(is_active=True)) == [second]
    listed = researcher_client.get("/api/training/models/", {"dataset": dataset.name}).json()
    assert {v["name"]: v["is_active"] for v in listed["results"]} == {first.name: False, second.name: True}


def test_inference_job_is_created_for_a_version(researcher_client, dataset, django_capture_on_commit_callbacks):
    version = registered_version(dataset)
    with django_capture_on_commit_callbacks(execute=False):
        response = researcher_client.post(f"/api/training/models/{version.pk}/inference/", {"uncertainty": "margin"},
                                          format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["model_version"] == version.name and body["uncertainty"] == "margin" and body["status"] == "queued"
    assert researcher_client.get(f"/api/training/inference/{body['id']}/").json()["id"] == body["id"]
    bad = researcher_client.post(f"/api/training/models/{version.pk}/inference/", {"uncertainty": "vibes"},
                                 format="json")
    assert bad.status_code == 400 and "uncertainty" in bad.json()["error"]["fields"]


def test_a_nul_character_in_the_config_is_a_400_naming_it(researcher_client, dataset):
    """It was a DataError from jsonb and a 500 (found while fuzzing the schema)."""
    body = {"dataset": dataset.name, "config": {"model": "res\x00net"}}
    response = researcher_client.post(CREATE_URL, body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["fields"] == {"config": ["model: contains a NUL character, which cannot be stored"]}
    assert not TrainingJob.objects.exists()
