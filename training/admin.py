import base64

from django.contrib import admin, messages
from django.forms import Script
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from annotator import files

from . import forms, plots, selectors
from .services import inference_jobs, jobs, registry, training_jobs
from .models import BatchTrainingTrigger, InferenceJob, ModelVersion, TrainingJob


def html_table(header, rows, css_class=""):
    """A small HTML table: a header row, then rows of cells."""
    return format_html(
        "<table{}><thead><tr>{}</tr></thead><tbody>{}</tbody></table>",
        format_html(' class="{}"', css_class) if css_class else "",
        format_html_join("", "<th>{}</th>", ((cell,) for cell in header)),
        format_html_join("", "<tr>{}</tr>", (
            (format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows
        )),
    )


def effect_table(rows, columns):
    """The learning effect: a column per split, (label, values) rows, values as 0.000."""
    return html_table(["", *columns], (
        [label, *("-" if value is None else f"{value:.3f}" for value in values)] for label, values in rows
    ), css_class="learning-effect")


def records_table(records, columns):
    """A table of dicts (numbers to 4 significant digits), columns in order."""
    def cell(value):
        return f"{value:.4g}" if isinstance(value, float) else value
    return html_table(columns, ([cell(record.get(column, "")) for column in columns] for record in records))


def mapping_table(mapping, key_column):
    """A dict as a two-column table (key_column, value), keys in order."""
    return records_table([{key_column: key, "value": mapping[key]} for key in sorted(mapping)], [key_column, "value"])


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = ["id", "dataset", "status", "progress_summary", "source", "attempts", "created_by", "created_at"]
    list_filter = ["status", "source", "dataset"]
    search_fields = ["dataset__name", "manifest_hash", "celery_task_id"]
    list_select_related = ["dataset", "created_by"]
    actions = ["cancel_jobs", "train_again"]
    readonly_fields = [
        "dataset", "batches", "config_table", "source", "triggered_by_batch", "manifest_hash", "status",
        "progress_bar", "learning_effect", "curves", "epoch_table", "final_metrics", "error", "log", "artifact_links",
        "created_by", "celery_task_id", "worker_hostname", "heartbeat_at", "attempts", "cancel_requested", "created_at",
        "started_at", "finished_at",
    ]
    exclude = ["log_tail", "artifacts", "progress", "epoch_metrics", "metrics", "config"]

    class Media:
        js = [Script("training/job_pages.js", type="module")]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = forms.training_job_add_form()
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_fieldsets(self, request, obj=None):
        if obj is not None:
            return super().get_fieldsets(request, obj)
        return [
            ("Data", {"fields": ["dataset", "batches"]}),
            ("Training options (defaults shown; only what you change is stored in the job's config)",
             {"fields": list(forms.training_job_add_form().option_names)}),
        ]

    def save_model(self, request, obj, form, change):
        job = training_jobs.create_training_job(
            dataset=form.cleaned_data["dataset"], batches=list(form.cleaned_data["batches"]),
            config=form.cleaned_data["config"], source=TrainingJob.Source.ADMIN, created_by=request.user,
        )
        obj.pk = job.pk
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        """The service already stored the batches."""

    def has_change_permission(self, request, obj=None):
        return False  # a job changes only through its services (cancel, train again)

    @admin.display(description="progress")
    def progress_summary(self, job):
        progress = job.progress
        if not progress:
            return "-"
        if progress.get("stage") == "snapshot":
            return progress["message"]
        parts = [f"epoch {progress.get('epoch')}/{progress.get('epochs')}",
                 f"step {progress.get('step')}/{progress.get('steps')}"]
        if progress.get("loss") is not None:
            parts.append(f"loss {progress['loss']:.4f}")
        if progress.get("images_per_s") is not None:
            parts.append(f"{progress['images_per_s']:.0f} img/s")
        if progress.get("eta_s") is not None and not job.is_finished:
            parts.append(f"ETA {progress['eta_s']:.0f} s")
        return ", ".join(parts)

    @admin.display(description="learning effect")
    def learning_effect(self, job):
        """Val and background-shifted split side by side: top-1 next to chance and to how often the prediction is
        the background's class, point accuracy next to the centre prior."""
        rows = selectors.learning_effect(job.metrics, job.dataset.categories.count())
        return effect_table(rows, selectors.EFFECT_SPLITS) if rows else "-"

    @admin.display(description="progress")
    def progress_bar(self, job):
        progress = job.progress
        if not progress.get("steps"):
            waiting = "" if job.is_finished else (
                f" (the engine reports every {job.config.get('log_every', 10)} steps; this page follows it)")
            return format_html('<span data-follow="{}">{}{}</span>', "" if job.is_finished else "yes",
                               "no step reported yet" if not job.is_finished else job.status, waiting)
        epochs, steps = progress.get("epochs") or 1, progress["steps"]
        done = (progress.get("epoch", 1) - 1) * steps + progress.get("step", 0)
        share = done / (epochs * steps)
        return format_html(
            '<div data-follow="{}"><progress max="1" value="{}" style="width: 24em"></progress> {}%<br>{}</div>',
            "" if job.is_finished else "yes", f"{share:.4f}", f"{100 * share:.0f}", self.progress_summary(job),
        )

    @admin.display(description="metrics per epoch")
    def epoch_table(self, job):
        if not job.epoch_metrics:
            return "-"
        columns = ["epoch", *sorted(plots.curve_names(job.epoch_metrics))]  # PostgreSQL's jsonb keeps no key order
        return records_table(job.epoch_metrics, columns)

    @admin.display(description="final metrics")
    def final_metrics(self, job):
        return mapping_table(job.metrics, "metric") if job.metrics else "-"

    @admin.display(description="config")
    def config_table(self, job):
        return mapping_table(job.config, "option") if job.config else "the defaults"

    @admin.display(description="curves")
    def curves(self, job):
        if "curves" not in job.artifacts:
            return "-"
        return format_html('<img src="{}" style="max-width: 100%">', files.url(job.artifacts["curves"]))

    @admin.display(description="log tail")
    def log(self, job):
        return format_html('<pre style="max-height: 30em; overflow: auto">{}</pre>', job.log_tail)

    @admin.display(description="artifacts")
    def artifact_links(self, job):
        return format_html_join(
            ", ", '<a href="{}">{}</a>', ((files.url(p), name) for name, p in job.artifacts.items())
        ) or "-"

    @admin.action(description="Cancel the selected jobs (running ones stop at their next step)")
    def cancel_jobs(self, request, queryset):
        for job in queryset:
            try:
                jobs.cancel(job, actor=request.user)
            except ValidationError as error:
                self.message_user(request, " ".join(error.messages), messages.WARNING)
            else:
                self.message_user(request, f"training job {job.pk}: cancel requested")

    @admin.action(description="Train again on a fresh snapshot with the same config")
    def train_again(self, request, queryset):
        for job in queryset:
            new_job = training_jobs.create_training_job(
                dataset=job.dataset, batches=list(job.batches.all()), config=job.config,
                source=TrainingJob.Source.ADMIN, created_by=request.user,
            )
            self.message_user(request, f"training job {new_job.pk} queued (config of job {job.pk})")


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "dataset", "is_active", "metrics_summary", "job", "created_at"]
    list_filter = ["dataset", "is_active"]
    search_fields = ["name", "manifest_hash"]
    list_select_related = ["dataset", "job"]
    actions = ["compare", "promote", "run_inference"]
    readonly_fields = [
        "name", "job", "dataset", "manifest_hash", "config", "localization", "metrics", "epoch_metrics", "checkpoint",
        "is_active", "created_at",
    ]

    def has_add_permission(self, request):
        return False

    @admin.display(description="localisation (WSOL)")
    def localization(self, version):
        return render_to_string(
            "admin/training/modelversion/localization.html", localization_context({version.name: version.metrics})
        )

    @admin.display(description="metrics")
    def metrics_summary(self, version):
        return ", ".join(
            f"{name} {value:.3f}" for name, value in version.metrics.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        ) or "-"

    def get_urls(self):
        return [
            path("compare/", self.admin_site.admin_view(self.compare_view), name="training_modelversion_compare"),
        ] + super().get_urls()

    @admin.action(description="Compare the selected runs side by side")
    def compare(self, request, queryset):
        ids = ",".join(str(pk) for pk in queryset.values_list("pk", flat=True))
        return HttpResponseRedirect(f"{reverse('admin:training_modelversion_compare')}?ids={ids}")

    def compare_view(self, request):
        ids = [int(pk) for pk in request.GET.get("ids", "").split(",") if pk.isdigit()]
        versions = sorted(ModelVersion.objects.filter(pk__in=ids).select_related("dataset", "job"),
                          key=lambda version: ids.index(version.pk))  # in the order asked for
        metric_names = []
        for version in versions:
            metric_names += [name for name in version.metrics if name not in metric_names]
        rows = [
            (name, [version.metrics.get(name, "") for version in versions]) for name in metric_names
            if not name.endswith("_localization_curves")
        ]
        config_names = sorted({name for version in versions for name in version.config})
        config_rows = [
            (name, [version.config.get(name, "") for version in versions]) for name in config_names
            if len({str(version.config.get(name)) for version in versions}) > 1
        ]
        curves = plots.curves_png({version.name: version.epoch_metrics for version in versions})
        context = {
            **self.admin_site.each_context(request),
            "title": "Compare model versions",
            "opts": self.model._meta,
            "versions": versions,
            "metric_rows": rows,
            "effect_rows": selectors.learning_effect_side_by_side(versions),
            "config_rows": config_rows,
            "curves_data_uri": png_data_uri(curves),
            **localization_context({version.name: version.metrics for version in versions}),
        }
        return TemplateResponse(request, "admin/training/modelversion/compare.html", context)

    @admin.action(description="Promote (make it the dataset's active model)")
    def promote(self, request, queryset):
        if queryset.values("dataset").distinct().count() != queryset.count():
            self.message_user(request, "select at most one version per dataset to promote", messages.ERROR)
            return
        for version in queryset:
            registry.promote_model_version(version, actor=request.user)
            self.message_user(request, f"{version.name} is now the active model of {version.dataset.name}")

    @admin.action(description="Run inference (uncertainty and agreement) over the dataset")
    def run_inference(self, request, queryset):
        for version in queryset:
            job = inference_jobs.create_inference_job(version, created_by=request.user)
            self.message_user(request, f"inference job {job.pk} queued for {version.name}")


LOCALIZATION_METRICS = ("maxboxacc_iou30", "maxboxacc_iou50", "maxboxacc_iou70", "maxboxacc_v2", "pxap", "ioap", "map_loc")


def png_data_uri(png):
    return "data:image/png;base64," + base64.b64encode(png).decode()


def localization_context(runs):
    """Template context of the WSOL include: one column per (run, split) with curves, their numbers, the plot."""
    columns, values = [], []
    for label, metrics in runs.items():
        for split in plots.localization_curves(metrics):
            columns.append(f"{label}: {split}" if len(runs) > 1 else split)
            values.append({name[len(split) + 1:]: value for name, value in metrics.items()
                           if name.startswith(f"{split}_") and name[len(split) + 1:] in LOCALIZATION_METRICS})
    if not columns:
        return {"localization_rows": []}
    names = [name for name in LOCALIZATION_METRICS if any(name in column for column in values)]
    return {
        "localization_columns": columns,
        "localization_rows": [(name, [column.get(name, "") for column in values]) for name in names],
        "localization_data_uri": png_data_uri(plots.localization_png(runs)),
    }


@admin.register(InferenceJob)
class InferenceJobAdmin(admin.ModelAdmin):
    list_display = ["id", "model_version", "uncertainty", "status", "progress", "created_at", "finished_at"]
    list_filter = ["status", "uncertainty"]
    readonly_fields = [
        "model_version", "uncertainty", "status", "progress", "summary", "error", "created_by", "celery_task_id",
        "created_at", "started_at", "finished_at",
    ]

    def has_add_permission(self, request):
        return False


@admin.register(BatchTrainingTrigger)
class BatchTrainingTriggerAdmin(admin.ModelAdmin):
    list_display = ["batch", "approved_count_at_last_trigger", "last_job", "updated_at"]
    readonly_fields = ["batch", "approved_count_at_last_trigger", "last_job", "updated_at"]

    def has_add_permission(self, request):
        return False
