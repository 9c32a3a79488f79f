"""The Celery broker made unreachable for one test (Redis on a closed port), without touching the shared broker."""
import pytest
from django.conf import settings

from config import celery as celery_config
from config.celery import app as celery_app

UNREACHABLE_BROKER = "redis://127.0.0.1:1/0"


def _drop_connection_pools():
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def broker(monkeypatch):
    """Tasks go to a real broker (no eager mode); broker.down() points the app at a closed port, broker.up() puts
    Celery back in eager mode, as if the broker were back and a worker ran each task at once."""
    conf = celery_app.conf
    original = {key: conf[key] for key in ("CELERY_BROKER_URL", "CELERY_BROKER_TRANSPORT_OPTIONS")}

    def restore():
        conf.update(original)
        _drop_connection_pools()
        celery_config._broker_down_until = 0.0

    class Broker:
        def down(self):
            # Celery reads CELERY_BROKER_URL from the environment before its configuration.
            monkeypatch.setenv("CELERY_BROKER_URL", UNREACHABLE_BROKER)
            conf.update(CELERY_BROKER_URL=UNREACHABLE_BROKER, CELERY_TASK_ALWAYS_EAGER=False,
                        CELERY_BROKER_TRANSPORT_OPTIONS=dict(settings.REDIS_BROKER_FAIL_FAST_OPTIONS))
            _drop_connection_pools()

        def up(self):
            monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
            restore()
            conf.CELERY_TASK_ALWAYS_EAGER = True

    yield Broker()
    monkeypatch.undo()
    restore()
