from celery import shared_task

from . import services


@shared_task(name="annotator.exports.run_export_job")
def run_export_job(job_id):
    services.run_export_job(job_id)


@shared_task(name="annotator.exports.build_byproduct_report")
def build_byproduct_report(batch_id):
    return services.build_byproduct_report(batch_id)
