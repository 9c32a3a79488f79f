"""Deployment invariants as system checks: secret key, broker reachability, GPU queue."""
from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def check_secret_key(app_configs, **kwargs):
    warnings = []
    if settings.SECRET_KEY == settings.INSECURE_DEV_KEY:
        warnings.append(Warning("DJANGO_SECRET_KEY is not set: the built-in demo key is in use.", id="annotator.W001"))
    if settings.WORKER_ID_SALT == "demo-worker-salt":
        warnings.append(
            Warning("WORKER_ID_SALT is not set: worker ids are hashed with the demo salt.", id="annotator.W002"))
    return warnings


@register(deploy=True)
def check_broker(app_configs, **kwargs):
    from config.celery import app

    try:
        with app.connection_for_write(url=settings.CELERY_BROKER_URL) as conn:
            conn.ensure_connection(max_retries=1, timeout=settings.CELERY_BROKER_CONNECTION_TIMEOUT)
    except Exception as exc:  # any transport error means the same thing here
        return [Warning(f"Celery broker {settings.CELERY_BROKER_URL!r} is unreachable: {exc}", id="annotator.W003")]
    return []


@register(deploy=True)
def check_gpu_queue(app_configs, **kwargs):
    if not settings.TRAINING_ENABLED:
        return []
    routes = settings.CELERY_TASK_ROUTES or {}
    if not any(route.get("queue") == "gpu" for route in routes.values()):
        return [Warning("Training is enabled but no task is routed to the 'gpu' queue.", id="annotator.W004")]
    return []
