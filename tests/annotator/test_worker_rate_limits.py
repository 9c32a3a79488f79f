"""Rate limits on the worker path (issue 9, abuse): per assignment, and per client address for what has no token.

- "worker" (WORKER_API_RATE): requests per assignment token (one token cannot flood the server);
- "worker_bad_token" (WORKER_BAD_TOKEN_RATE): missing, forged or expired tokens per client address;
- "worker_entry" (WORKER_ENTRY_RATE): task page openings per client address (each can create a worker and take a
  place on a HIT with a made-up worker id).
Each answers 429 with Retry-After. The rates are read into the throttle classes when DRF loads, so the tests
set them on the classes (monkeypatch puts the real ones back).
"""
import pytest
from django.core import signing
from rest_framework.throttling import ScopedRateThrottle

from annotator import models
from annotator.worker.authentication import ClientAddressThrottle
from annotator.worker.tokens import TOKEN_SALT
from tests.annotator.test_worker_api import accept, call, error_of
from tests.factories import make_imagenet_hit

pytestmark = pytest.mark.django_db

FORGED = signing.dumps("7d2f1c8e-0000-4000-8000-000000000000", salt=TOKEN_SALT, key="not-our-secret")


@pytest.fixture
def rates(monkeypatch):
    def set_rates(**rates):
        monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"worker": rates.pop("worker", "1000/min")})
        monkeypatch.setattr(ClientAddressThrottle, "THROTTLE_RATES", {
            "worker_entry": None, "worker_bad_token": None, **rates,
        })

    return set_rates


def assert_throttled(response):
    assert response.status_code == 429, response.content
    assert int(response["Retry-After"]) >= 1


def test_a_throttled_token_is_told_when_to_retry(client, rates):
    rates(worker="2/min")
    _, token = accept(make_imagenet_hit(n_pages=1))
    assert [call(client, token, "GET", "assignment").status_code for _ in range(2)] == [200, 200]
    response = call(client, token, "GET", "assignment")
    assert_throttled(response)
    assert error_of(response)["code"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= 60


@pytest.mark.parametrize("token", ["", FORGED, "not-a-token"], ids=["missing", "forged", "garbage"])
def test_flooding_without_a_good_token_is_limited_per_address(client, rates, token):
    rates(worker_bad_token="5/min")
    statuses = [call(client, token, "GET", "assignment").status_code for _ in range(5)]
    assert statuses == [403] * 5
    response = call(client, token, "POST", "pages/0/events", {})
    assert_throttled(response)
    assert error_of(response)["code"] == "throttled"
    # Another address still gets the plain 403: the count is per address.
    assert call(client, token, "GET", "assignment", REMOTE_ADDR="198.51.100.7").status_code == 403


def test_a_good_token_behind_the_same_address_is_not_locked_out(client, rates):
    """Workers behind one NAT: one client's bad tokens must not stop the others' work."""
    rates(worker_bad_token="3/min")
    _, token = accept(make_imagenet_hit(n_pages=1))
    for _ in range(3):
        call(client, "", "GET", "assignment")
    assert_throttled(call(client, "", "GET", "assignment"))
    assert call(client, token, "GET", "assignment").status_code == 200


def test_a_forged_forwarded_for_header_does_not_reset_the_count(client, rates):
    rates(worker_bad_token="3/min")
    statuses = [
        call(client, "", "GET", "assignment", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code for i in range(4)
    ]
    assert statuses == [403, 403, 403, 429]


def test_behind_a_trusted_proxy_the_forwarded_address_is_counted(client, rates, settings):
    rates(worker_bad_token="2/min")
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}  # DRF reloads its settings

    def from_client(address, spoofed="10.9.9.9"):
        # The proxy appends the address it saw; what the client wrote itself comes before it.
        forwarded = f"{spoofed}, {address}"
        return call(client, "", "GET", "assignment", HTTP_X_FORWARDED_FOR=forwarded).status_code

    assert [from_client("203.0.113.1", spoofed=f"10.9.9.{i}") for i in range(3)] == [403, 403, 429]
    # Every request comes from the proxy's address (REMOTE_ADDR): that is not what counts.
    assert from_client("203.0.113.2") == 403


def test_opening_task_pages_with_made_up_worker_ids_is_limited_per_address(client, rates):
    rates(worker_entry="3/min")
    hit = make_imagenet_hit(n_pages=1)
    hit.max_assignments = 10
    hit.save()
    statuses = [client.get(f"/task/{hit.pk}/", {"workerId": f"FAKE{i}"}).status_code for i in range(3)]
    assert statuses == [200, 200, 200]
    response = client.get(f"/task/{hit.pk}/", {"workerId": "FAKE3"})
    assert_throttled(response)
    assert b"Too many requests" in response.content
    assert response["Content-Security-Policy"].startswith("frame-ancestors 'self'")
    assert not models.Worker.objects.filter(external_id="FAKE3").exists()
    assert models.Assignment.objects.filter(hit=hit).count() == 3
    # Previews count too (they read the example page), and another address is not affected.
    assert_throttled(client.get(f"/task/{hit.pk}/"))
    assert client.get(f"/task/{hit.pk}/", {"workerId": "REAL"}, REMOTE_ADDR="198.51.100.9").status_code == 200


def test_the_limits_are_configured_from_the_environment():
    """The settings read WORKER_API_RATE, WORKER_ENTRY_RATE, WORKER_BAD_TOKEN_RATE ("none" turns one off)."""
    import os
    import subprocess
    import sys

    code = (
        "import django; django.setup(); from django.conf import settings; "
        "r = settings.REST_FRAMEWORK; print(r['DEFAULT_THROTTLE_RATES'], r['NUM_PROXIES'])"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "WORKER_API_RATE": "50/min",
           "WORKER_ENTRY_RATE": "none", "WORKER_BAD_TOKEN_RATE": "7/min", "NUM_PROXIES": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "{'worker': '50/min', 'worker_entry': None, 'worker_bad_token': '7/min'} 1"



def test_the_worker_rate_is_counted_in_redis_one_counter_per_window(client, rates, settings, monkeypatch):
    """The deployment's cache (Redis, failing open): each request adds one to a counter that expires with its
    window; the fourth request of a "3/min" token in one window is refused, and the next window starts afresh."""
    import uuid
    from urllib.parse import urlsplit

    import redis

    from annotator.worker.authentication import AssignmentRateThrottle

    broker = urlsplit(settings.CELERY_BROKER_URL)
    if broker.scheme != "redis":
        pytest.skip("needs the Redis of CELERY_BROKER_URL")
    location = f"redis://{broker.netloc}/14"
    prefix = f"throttle-test-{uuid.uuid4().hex}"
    settings.CACHES = {"default": {"BACKEND": "config.cache.FailOpenRedisCache", "LOCATION": location,
                                   "KEY_PREFIX": prefix}}
    rates(worker="3/min")
    now = [6_000_010.0]  # 10 s into a minute
    monkeypatch.setattr(AssignmentRateThrottle, "timer", lambda self: now[0])
    _, token = accept(make_imagenet_hit(n_pages=1))
    server = redis.Redis.from_url(location)
    try:
        assert [call(client, token, "GET", "assignment").status_code for _ in range(3)] == [200, 200, 200]
        response = call(client, token, "GET", "assignment")
        assert_throttled(response)
        assert int(response["Retry-After"]) == 50  # the rest of the window
        counters = server.keys(f"{prefix}*")
        assert len(counters) == 1 and 0 < server.ttl(counters[0]) <= 61
        now[0] += 50
        assert call(client, token, "GET", "assignment").status_code == 200
    finally:
        if counters := server.keys(f"{prefix}*"):
            server.delete(*counters)
