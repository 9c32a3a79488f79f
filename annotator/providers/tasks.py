"""Celery tasks for market calls: each loads its rows and calls the service of the same name.

Network and market errors are retried with backoff; the services make a retry harmless.
"""
from botocore.exceptions import BotoCoreError, ClientError
from celery import shared_task

from annotator.models import Assignment, Batch, Hit, Worker

from . import services
from .prolific import ProlificUnavailable

RETRY = {"autoretry_for": (BotoCoreError, ClientError, ProlificUnavailable), "retry_backoff": True, "max_retries": 5}


@shared_task(**RETRY)
def publish_batch(batch_id):
    return services.publish_batch(Batch.objects.get(pk=batch_id))


@shared_task(**RETRY)
def sync_batch(batch_id):
    result = services.sync_batch(Batch.objects.get(pk=batch_id))
    return {"hits": result.hits, "created": result.created, "updated": result.updated}


@shared_task
def sync_market_batches(provider):
    return services.sync_market_batches(provider)


@shared_task(**RETRY)
def send_decision(assignment_id):
    return services.send_decision(Assignment.objects.get(pk=assignment_id))


@shared_task(**RETRY)
def pay_bonus(assignment_id, amount, reason, request_key):
    return services.pay_bonus(Assignment.objects.get(pk=assignment_id), amount, reason, request_key)


@shared_task(**RETRY)
def repost_hit(hit_id, count, target_max_assignments):
    return services.repost_hit(Hit.objects.get(pk=hit_id), count, target_max_assignments)


@shared_task(**RETRY)
def expire_hit(hit_id):
    return services.expire_hit(Hit.objects.get(pk=hit_id))


@shared_task(**RETRY)
def set_worker_blocked(worker_id):
    return services.set_worker_blocked(Worker.objects.get(pk=worker_id))


@shared_task(**RETRY)
def notify_workers(batch_id, worker_ids, subject, message):
    return services.notify_workers(Batch.objects.get(pk=batch_id), worker_ids, subject, message)
