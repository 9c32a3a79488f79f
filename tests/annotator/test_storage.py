"""Images and display versions on S3, through moto's S3-compatible server on 127.0.0.1."""
import socket

import boto3
import pytest
import requests
from django.core.management import CommandError, call_command
from moto.server import ThreadedMotoServer

from annotator.images import OPAQUE_DISPLAY_NAME
from annotator.models import Image

from .demo_sets import imagenet_demo_dir  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db
BUCKET = "luab-test-images"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def s3_bucket(settings):
    """A fresh moto S3 server and bucket; the default storage switched to S3 while the test runs."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        # moto keeps its buckets per process, not per server: start from empty.
        requests.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        client.create_bucket(Bucket=BUCKET)
        settings.AWS_STORAGE_BUCKET_NAME = BUCKET
        settings.AWS_S3_ENDPOINT_URL = endpoint
        settings.AWS_ACCESS_KEY_ID = "testing"
        settings.AWS_SECRET_ACCESS_KEY = "testing"
        # Assigning STORAGES resets django.core.files.storage.storages and default_storage (setting_changed).
        settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "storages.backends.s3.S3Storage"}}
        yield client
    finally:
        server.stop()


def bucket_keys(client):
    return sorted(item["Key"] for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def test_import_writes_images_and_display_versions_to_the_bucket(s3_bucket, imagenet_demo_dir, tmp_path):
    call_command("import_imagenet", str(imagenet_demo_dir), name="shapes", verbosity=0)

    keys = bucket_keys(s3_bucket)
    assert len(keys) == 2 * Image.objects.count() == 240
    image = Image.objects.get(key="n90000001_2")
    assert "images/shapes/train/n90000001/n90000001_2.JPEG" in keys
    assert image.display_file.name in keys and OPAQUE_DISPLAY_NAME.match(image.display_file.name)
    body = s3_bucket.get_object(Bucket=BUCKET, Key=image.file.name)["Body"].read()
    assert body == (imagenet_demo_dir / "train" / "n90000001" / "n90000001_2.JPEG").read_bytes()
    assert image.display_file.url.startswith(f"{s3_bucket.meta.endpoint_url}/{BUCKET}/{image.display_file.name}")
    assert not (tmp_path / "media").exists()


def test_failed_import_leaves_nothing_in_the_bucket(s3_bucket, imagenet_demo_dir, tmp_path, monkeypatch):
    from annotator.importers import common

    real_store = common._store_image
    stored = []

    def fail_on_the_third(*args, **kwargs):
        if len(stored) == 2:
            raise CommandError("network gone")
        stored.append(real_store(*args, **kwargs))
        return stored[-1]

    monkeypatch.setattr(common, "_store_image", fail_on_the_third)
    with pytest.raises(CommandError, match="network gone"):
        call_command("import_imagenet", str(imagenet_demo_dir), name="shapes", verbosity=0)
    assert len(stored) == 2
    assert bucket_keys(s3_bucket) == []
    assert not Image.objects.exists()
