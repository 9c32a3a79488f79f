import json

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import connections, transaction
from django.db.models import JSONField, Q
from django.utils.functional import cached_property
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext

from . import models, packing
from .exports.admin import BATCH_ACTIONS as EXPORT_BATCH_ACTIONS
from .providers.admin import BATCH_ACTIONS as MARKET_BATCH_ACTIONS, HIT_ACTIONS as MARKET_HIT_ACTIONS
from .review.forms import BatchAdminForm


class EstimatedCountPaginator(Paginator):
    """Counts a changelist without a scan on PostgreSQL: the table's row estimate (pg_class.reltuples, kept by
    ANALYZE) when unfiltered, the planner's estimate when filtered; an exact COUNT only below EXACT_COUNT_BELOW."""

    EXACT_COUNT_BELOW = 10_000

    @cached_property
    def count(self):
        queryset = self.object_list
        connection = connections[queryset.db]
        if connection.vendor != "postgresql":
            return super().count
        with connection.cursor() as cursor:
            estimate = -1
            if not queryset.query.where:
                cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [queryset.model._meta.db_table])
                estimate = cursor.fetchone()[0]
            if estimate < 0:  # filtered, or never analysed
                sql, params = queryset.order_by().values("pk").query.sql_with_params()
                cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
                plan = cursor.fetchone()[0]
                estimate = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]["Plan Rows"]
        return super().count if estimate < self.EXACT_COUNT_BELOW else int(estimate)

    def page(self, number):
        """A page's rows in two reads: its primary keys (the filters, the order and the OFFSET on the table's own
        rows, without the joins the list shows), then those rows with their joins, in the same order. A deep page
        (page 50: OFFSET 4,900) otherwise carries every skipped row through each join."""
        page = super().page(number)
        ids = list(page.object_list.values_list("pk", flat=True))
        page.object_list = self.object_list.filter(pk__in=ids)
        return page


IMAGE_KEY_SEARCH = (
    "Finds the image keys that start with what you type, case-sensitive: n01440764_10026 finds that image, "
    "n01440764_ every image of that class."
)


class BigTableChangeList(ChangeList):
    """Reads only what the list shows: the JSON columns not in list_display, its own and those of the rows joined
    in by list_select_related, are left in the database (a record's mouse traces, an event batch's events: most of
    their rows' bytes, and decoding them most of a page's time)."""

    def get_queryset(self, request, exclude_parameters=None):
        unshown = [name for name in self._json_columns(self.model, "") if name not in self.list_display]
        for path in self.list_select_related or ():
            model, prefix = self.model, ""
            for name in path.split("__"):
                model, prefix = model._meta.get_field(name).related_model, f"{prefix}{name}__"
                unshown += self._json_columns(model, prefix)
        return super().get_queryset(request, exclude_parameters).defer(*set(unshown))

    @staticmethod
    def _json_columns(model, prefix):
        return [prefix + field.name for field in model._meta.concrete_fields if isinstance(field, JSONField)]


class BigTableAdmin(admin.ModelAdmin):
    """The list of a table that grows to millions of rows: an estimated count, newest first by primary key (an
    index scan), related rows fetched by join (list_select_related), only the shown columns read, search by key
    prefix (index scans)."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    ordering = ["-pk"]

    def get_changelist(self, request, **kwargs):
        return BigTableChangeList

    def action_checkbox(self, obj):
        """Django's checkbox, written directly: rendering a form widget's template per row took a third of a
        100-row page."""
        label = format_html(gettext("Select this object for an action - {}"), str(obj))
        return format_html('<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
                           ACTION_CHECKBOX_NAME, obj.pk, label)

    def get_search_results(self, request, queryset, search_term):
        """The rows whose key (any of search_fields) starts with the search term, case-sensitive. Each field is
        one index scan (on PostgreSQL a varchar_pattern_ops index, migration 0014; SQLite scans): a related
        table's key is matched as `fk IN (its rows with that key prefix)`, so several fields OR as a bitmap of
        index scans, never a scan of the joined tables."""
        term = search_term.strip()
        if not term:
            return queryset, False
        matches = Q()
        for path in self.search_fields:
            relation, _, field = path.rpartition("__")
            prefix = Q(**{f"{field}__startswith": term})
            if relation:
                related = self.model._meta.get_field(relation).related_model
                prefix = Q(**{f"{relation}__in": related._default_manager.filter(prefix).values("pk")})
            matches |= prefix
        return queryset.filter(matches), False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def _build_hits_and_report(modeladmin, request, batch):
    try:
        with transaction.atomic():
            batch.save()
            result = packing.build_hits(batch)
    except ValidationError as error:
        modeladmin.message_user(request, f"{batch.name}: {'; '.join(error.messages)}", messages.ERROR)
        return
    modeladmin.message_user(
        request, f"{batch.name}: {result.hits} HITs, {result.pages} pages, {result.images_covered} images covered"
    )


@admin.action(description="Build HITs into a new round-1 batch")
def build_hits_for_datasets(modeladmin, request, queryset):
    for dataset in queryset:
        name = f"{dataset.name}-r1-{models.Batch.objects.filter(dataset=dataset).count() + 1}"
        batch = models.Batch(name=name, dataset=dataset, task_kind=dataset.kind, **packing.PAPER_DEFAULTS[dataset.kind])
        _build_hits_and_report(modeladmin, request, batch)


@admin.action(description="Build HITs for the selected (empty) batches")
def build_hits_for_batches(modeladmin, request, queryset):
    for batch in queryset:
        _build_hits_and_report(modeladmin, request, batch)


@admin.register(models.Dataset)
class DatasetAdmin(admin.ModelAdmin):
    actions = [build_hits_for_datasets]
    list_display = ["name", "kind", "source", "created_at"]
    list_filter = ["kind"]
    search_fields = ["name", "source"]


@admin.register(models.Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["key", "name", "index", "supercategory", "dataset"]
    list_filter = ["dataset", "supercategory"]
    search_fields = ["key", "name", "definition"]


class GroundTruthInline(ReadOnlyInline):
    model = models.GroundTruthObject
    fields = ["category", "bbox", "area", "iscrowd"]
    readonly_fields = fields


@admin.register(models.Image)
class ImageAdmin(BigTableAdmin):
    list_display = ["thumbnail", "key", "dataset", "split", "label", "width", "height"]
    list_display_links = ["thumbnail", "key"]
    list_filter = ["dataset", "split"]
    search_fields = ["key"]
    search_help_text = IMAGE_KEY_SEARCH
    list_select_related = ["dataset", "label"]
    raw_id_fields = ["label"]
    readonly_fields = ["preview"]
    inlines = [GroundTruthInline]

    @admin.display(description="image")
    def thumbnail(self, image):
        if not image.display_file:
            return "-"
        return format_html('<img src="{}" alt="" style="height:48px">', image.display_file.url)

    @admin.display(description="display version with the ground-truth boxes")
    def preview(self, image):
        if not image.display_file:
            return "no display version yet"
        stroke = max(image.width, image.height) / 128
        boxes = format_html_join(
            "", '<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#ff0" stroke-width="{}"/>',
            ((*obj.bbox, stroke) for obj in image.ground_truth_objects.all()),
        )
        return format_html(
            '<svg viewBox="0 0 {w} {h}" width="{display}" role="img"><image href="{url}" width="{w}" height="{h}"/>'
            "{boxes}</svg>",
            w=image.width, h=image.height, display=min(image.width * 2, 384), url=image.display_file.url,
            boxes=boxes,
        )


@admin.register(models.GroundTruthObject)
class GroundTruthObjectAdmin(BigTableAdmin):
    list_display = ["id", "image", "category", "bbox", "area", "iscrowd"]
    list_filter = ["category__dataset", "iscrowd"]
    search_fields = ["image__key"]
    search_help_text = IMAGE_KEY_SEARCH
    list_select_related = ["image", "category"]
    raw_id_fields = ["image", "category"]


@admin.register(models.Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ["hashed_id", "provider", "blocked", "model_agreement", "created_at"]
    list_filter = ["provider", "blocked"]
    search_fields = ["hashed_id", "external_id"]
    readonly_fields = ["hashed_id"]


@admin.register(models.Batch)
class BatchAdmin(admin.ModelAdmin):
    form = BatchAdminForm
    actions = [build_hits_for_batches, *MARKET_BATCH_ACTIONS, *EXPORT_BATCH_ACTIONS]
    list_display = [
        "name", "dataset", "task_kind", "round", "provider", "status", "reward", "created_at", "review_console",
    ]
    list_filter = ["task_kind", "provider", "status", "round"]
    search_fields = ["name"]
    readonly_fields = ["review_console"]

    @admin.display(description="review")
    def review_console(self, batch):
        if batch.pk is None:
            return ""
        return format_html('<a href="{}">review console</a>', reverse("review:batch", args=[batch.pk]))


class HitPageInline(ReadOnlyInline):
    model = models.HitPage
    fields = ["index", "category", "image"]
    readonly_fields = fields


@admin.register(models.Hit)
class HitAdmin(admin.ModelAdmin):
    actions = MARKET_HIT_ACTIONS
    list_display = ["__str__", "batch", "index", "status", "external_id", "published_at"]
    list_filter = ["status", "batch"]
    search_fields = ["external_id", "batch__name"]
    inlines = [HitPageInline]


@admin.register(models.HitPage)
class HitPageAdmin(BigTableAdmin):
    list_display = ["__str__", "category", "image"]
    list_filter = ["hit__batch"]
    list_select_related = ["hit__batch", "category", "image"]
    raw_id_fields = ["hit", "category", "image"]


@admin.register(models.PageItem)
class PageItemAdmin(BigTableAdmin):
    list_display = ["page", "position", "image", "in_class", "is_gold"]
    list_filter = ["in_class", "is_gold", "page__hit__batch"]
    list_select_related = ["page__hit__batch", "image"]
    raw_id_fields = ["page", "image"]


class EventInline(ReadOnlyInline):
    model = models.Event
    fk_name = "assignment"
    fields = ["created_at", "type", "actor", "data"]
    readonly_fields = fields
    show_change_link = False


class PageSubmissionInline(ReadOnlyInline):
    model = models.PageSubmission
    fields = ["page", "saved_at", "time_spent_ms", "n_selected", "n_in_class_selected", "n_icons", "n_icons_on_mask"]
    readonly_fields = fields


@admin.register(models.Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "hit", "worker", "state", "decision_source", "accepted_at", "submitted_at"]
    list_filter = ["state", "decision_source", "hit__batch", "interface_variant"]
    search_fields = ["external_id", "worker__hashed_id", "worker__external_id", "hit__batch__name"]
    list_select_related = ["hit__batch", "worker"]
    raw_id_fields = ["hit", "worker"]
    readonly_fields = ["uuid", "accepted_at", "submitted_at", "reviewed_at", "review"]
    inlines = [PageSubmissionInline, EventInline]


@admin.register(models.Event)
class EventAdmin(BigTableAdmin):
    list_display = ["created_at", "type", "batch", "hit", "assignment", "worker", "actor"]
    list_filter = ["type", "batch"]
    search_fields = ["assignment__external_id", "hit__external_id"]
    search_help_text = (
        "Finds the events of the assignments or HITs whose market id starts with what you type, case-sensitive."
    )
    list_select_related = ["batch", "hit__batch", "assignment", "worker", "actor"]
    raw_id_fields = ["batch", "hit", "assignment", "worker", "actor"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(models.PageSubmission)
class PageSubmissionAdmin(BigTableAdmin):
    list_display = ["assignment", "page", "saved_at", "time_spent_ms", "n_selected", "n_in_class_selected"]
    list_filter = ["assignment__hit__batch"]
    list_select_related = ["assignment", "page__hit__batch"]
    raw_id_fields = ["assignment", "page"]


@admin.register(models.EventBatch)
class EventBatchAdmin(BigTableAdmin):
    list_display = ["assignment", "page", "seq", "client_batch_id", "received_at"]
    list_filter = ["assignment__hit__batch"]
    list_select_related = ["assignment", "page__hit__batch"]
    raw_id_fields = ["assignment", "page"]


@admin.register(models.ImageNetRecord)
class ImageNetRecordAdmin(BigTableAdmin):
    list_display = ["assignment", "page", "image", "selected"]
    list_filter = ["selected", "assignment__hit__batch"]
    search_fields = ["image__key"]
    search_help_text = IMAGE_KEY_SEARCH
    list_select_related = ["assignment", "page__hit__batch", "image"]
    raw_id_fields = ["assignment", "page", "image"]


@admin.register(models.CocoRecord)
class CocoRecordAdmin(BigTableAdmin):
    list_display = ["assignment", "page", "image", "time_spent"]
    list_filter = ["assignment__hit__batch"]
    search_fields = ["image__key"]
    search_help_text = IMAGE_KEY_SEARCH
    list_select_related = ["assignment", "page__hit__batch", "image"]
    raw_id_fields = ["assignment", "page", "image"]


@admin.register(models.ImageScore)
class ImageScoreAdmin(BigTableAdmin):
    list_display = ["image", "model_version", "uncertainty", "created_at"]
    list_filter = ["model_version"]
    search_fields = ["image__key"]
    search_help_text = IMAGE_KEY_SEARCH
    list_select_related = ["image"]
    raw_id_fields = ["image"]
