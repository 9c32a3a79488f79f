"""Admin for byproduct exports: the ExportJob list, and the Batch actions that start exports and reports."""
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html

from annotator import files
from annotator.models import ExportJob, TaskKind

from . import services

PUBLISHED_FORMAT = {TaskKind.IMAGENET: ExportJob.Format.IMAGENET_AB, TaskKind.COCO: ExportJob.Format.COCO_AB}


def _start_exports(modeladmin, request, batches, format_of):
    for batch in batches:
        try:
            job = services.start_export_job(batch, format_of(batch), user=request.user)
        except ValidationError as error:
            modeladmin.message_user(request, f"{batch.name}: {'; '.join(error.messages)}", messages.ERROR)
            continue
        url = reverse("admin:annotator_exportjob_change", args=[job.pk])
        modeladmin.message_user(
            request, format_html('{}: export job <a href="{}">{}</a> queued ({})', batch.name, url, job.pk, job.format)
        )


@admin.action(description="Export approved byproducts (ImageNet-AB / COCO-AB)")
def export_published_format(modeladmin, request, queryset):
    _start_exports(modeladmin, request, queryset, lambda batch: PUBLISHED_FORMAT[batch.task_kind])


@admin.action(description="Export approved byproducts as JSON lines (everything stored)")
def export_jsonl(modeladmin, request, queryset):
    _start_exports(modeladmin, request, queryset, lambda batch: ExportJob.Format.JSONL)


@admin.action(description="Build the byproduct analysis report (written to reports/<batch>/ in storage)")
def build_byproduct_report(modeladmin, request, queryset):
    for batch in queryset:
        services.start_byproduct_report(batch)
        modeladmin.message_user(
            request, f"{batch.name}: byproduct report queued; it appears under reports/{batch.name}/ in storage"
        )


BATCH_ACTIONS = [export_published_format, export_jsonl, build_byproduct_report]


@admin.register(ExportJob)
class ExportJobAdmin(admin.ModelAdmin):
    list_display = ["id", "batch", "format", "include_rejected", "status", "progress_percent", "record_count",
                    "download", "created_by", "created_at", "finished_at"]
    list_filter = ["status", "format"]
    search_fields = ["batch__name"]
    list_select_related = ["batch", "created_by"]
    readonly_fields = [
        "batch", "format", "include_rejected", "status", "progress_percent", "record_count", "download", "error",
        "created_by", "created_at", "finished_at",
    ]
    exclude = ["file", "progress"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="progress")
    def progress_percent(self, job):
        return f"{100 * job.progress:.0f}%"

    @admin.display(description="file")
    def download(self, job):
        if job.status != ExportJob.Status.DONE or not job.file:
            return ""
        return format_html('<a href="{}">download</a>', files.url(job.file.name))
