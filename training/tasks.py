"""Celery tasks of the training app: routed to the `gpu` queue but for the sweeper (settings.CELERY_TASK_ROUTES).

acks_late + reject_on_worker_lost: a worker process killed mid-job gives its message back, and the redelivered
task resumes the job from its last checkpoint. The soft limit lets a job that runs too long end as failed.
"""
from celery import shared_task
from django.conf import settings

from .services import inference_jobs, recovery, training_jobs

TIME_LIMITS = {
    "soft_time_limit": settings.TRAINING_TASK_TIME_LIMIT,
    "time_limit": settings.TRAINING_TASK_TIME_LIMIT + 60,
}


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, **TIME_LIMITS)
def run_training_job(self, job_id):
    version = training_jobs.run_training_job(job_id, task_id=self.request.id, hostname=self.request.hostname or "")
    return version.name if version else None


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, **TIME_LIMITS)
def run_inference_job(self, job_id):
    inference_jobs.run_inference_job(job_id, task_id=self.request.id, hostname=self.request.hostname or "")


@shared_task
def sweep_jobs():
    """Beat runs this every SWEEP_INTERVAL on the default queue (settings.CELERY_TASK_ROUTES)."""
    return recovery.sweep_jobs()
