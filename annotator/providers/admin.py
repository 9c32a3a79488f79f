"""Admin actions that hand market work to Celery (registered on the Batch and HIT admins)."""
from django.contrib import admin

from config.celery import send_on_commit

from . import tasks


def _queue(modeladmin, request, task, objects, what):
    for obj in objects:
        send_on_commit(task, obj.pk)
    modeladmin.message_user(request, f"{what} queued for {len(objects)}: {', '.join(str(o) for o in objects)}")


@admin.action(description="Publish on the batch's market (link: task URLs; mturk: HITs)")
def publish_on_market(modeladmin, request, queryset):
    _queue(modeladmin, request, tasks.publish_batch, list(queryset), "publishing")


@admin.action(description="Sync with the market (fetch assignments, send missing decisions)")
def sync_with_market(modeladmin, request, queryset):
    _queue(modeladmin, request, tasks.sync_batch, list(queryset), "sync")


@admin.action(description="Expire on the market (take no new workers)")
def expire_on_market(modeladmin, request, queryset):
    _queue(modeladmin, request, tasks.expire_hit, list(queryset), "expiry")


BATCH_ACTIONS = [publish_on_market, sync_with_market]
HIT_ACTIONS = [expire_on_market]
