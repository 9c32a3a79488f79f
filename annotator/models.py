"""The annotation data model: datasets and ground truth, batches of HITs, assignments and their byproducts.

Byproduct records keep the field names of the published ImageNet-AB / COCO-AB datasets inside their JSON
columns (PostgreSQL `json`, kept as sent: see ByproductJSONField); the unique constraints make every repeated
write idempotent.
"""
import hashlib
import hmac
import secrets
import uuid
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


class ByproductJSONField(models.JSONField):
    """A JSON column stored as PostgreSQL `json` (the text as sent) instead of `jsonb`; elsewhere a JSONField.

    Byproducts (traces, clicks, action histories, flushed events) are written once, read whole (exports, replay,
    training, review's playback) and never searched inside by SQL. jsonb would parse and re-encode every trace on
    insert, about half of PostgreSQL's CPU for a 48-record page save, and re-encode it again as text on export.
    """

    def db_type(self, connection):
        if connection.vendor == "postgresql":
            return "json"
        return super().db_type(connection)

    def from_db_value(self, value, expression, connection):
        if value is None or isinstance(value, str):
            return super().from_db_value(value, expression, connection)
        return value  # psycopg's loader for `json` already decoded it


class TaskKind(models.TextChoices):
    IMAGENET = "imagenet", "ImageNet-style selection"
    COCO = "coco", "COCO-style icon tagging"


class Split(models.TextChoices):
    TRAIN = "train", "train"
    VAL = "val", "val"
    SHIFTED = "shifted", "background-shifted"


class Dataset(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=TaskKind.choices)
    source = models.CharField(max_length=500, blank=True, help_text="Where it was imported from.")
    active_model_version = models.CharField(
        max_length=100, blank=True, help_text="Model version that steers the next round (set by training)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.name} ({self.kind})"


class Category(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="categories")
    key = models.CharField(max_length=64, help_text="ImageNet wnid, or the COCO category id as text.")
    index = models.PositiveIntegerField(help_text="Class index used by training (0-based, dense).")
    name = models.CharField(max_length=200)
    synonyms = models.JSONField(default=list, blank=True)
    definition = models.TextField(blank=True)
    supercategory = models.CharField(max_length=100, blank=True)
    reference_links = models.JSONField(default=list, blank=True)

    class Meta:
        verbose_name_plural = "categories"
        ordering = ["dataset", "index"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "key"], name="category_unique_key"),
            models.UniqueConstraint(fields=["dataset", "index"], name="category_unique_index"),
        ]

    def __str__(self):
        return f"{self.key} {self.name}"


class Image(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="images")
    key = models.CharField(
        max_length=200, help_text="ImageNet file stem (n01440764_105) or the COCO image id as text."
    )
    file = models.FileField(upload_to="images/", max_length=500)
    display_file = models.FileField(
        upload_to="display/", max_length=500, blank=True, help_text="Display-size version, made once."
    )
    display_file_2x = models.FileField(
        upload_to="display/2x/", max_length=500, blank=True,
        help_text="Twice the display size, for high-density screens; empty when the original is not larger.",
    )
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    split = models.CharField(max_length=16, choices=Split.choices, default=Split.TRAIN)
    label = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.RESTRICT, related_name="images",
        help_text="ImageNet-style class label; COCO images take their labels from their objects.",
    )
    meta = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["dataset", "key"], name="image_unique_key")]
        indexes = [
            models.Index(fields=["dataset", "split"]), models.Index(fields=["dataset", "label"]),
            models.Index(fields=["key"], name="image_key"),  # the admin's search by key, across datasets
        ]

    def __str__(self):
        return self.key


class GroundTruthObject(models.Model):
    """An object instance: an ImageNet bounding box or a COCO instance with its mask."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="ground_truth_objects")
    category = models.ForeignKey(Category, on_delete=models.CASCADE, related_name="ground_truth_objects")
    bbox = models.JSONField(help_text="[x, y, width, height] in original image pixels.")
    segmentation = models.JSONField(null=True, blank=True, help_text="COCO polygons or RLE.")
    area = models.FloatField(default=0)
    iscrowd = models.BooleanField(default=False)
    source_id = models.BigIntegerField(null=True, blank=True, help_text="COCO annotation id.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["image", "source_id"], condition=models.Q(source_id__isnull=False),
                name="gt_unique_source_id",
            )
        ]


class Provider(models.TextChoices):
    LINK = "link", "Task link (Prolific, in-house lists, any market)"
    MTURK = "mturk", "Amazon Mechanical Turk"
    PROLIFIC = "prolific", "Prolific (through its API)"


def hash_worker_id(provider, external_id):
    """Salted, non-reversible worker identifier (hex)."""
    message = f"{provider}:{external_id}".encode()
    return hmac.new(settings.WORKER_ID_SALT.encode(), message, hashlib.sha256).hexdigest()


class Worker(models.Model):
    provider = models.CharField(max_length=16, choices=Provider.choices)
    external_id = models.CharField(max_length=200)
    hashed_id = models.CharField(max_length=64, db_index=True, editable=False)
    blocked = models.BooleanField(default=False)
    blocked_reason = models.TextField(blank=True)
    model_agreement = models.FloatField(
        null=True, blank=True, help_text="Agreement of clicks/icons with the active model's points."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "external_id"], name="worker_unique_external_id")
        ]

    def save(self, *args, **kwargs):
        if not self.hashed_id:
            self.hashed_id = hash_worker_id(self.provider, self.external_id)
        super().save(*args, **kwargs)

    def __str__(self):
        return f"{self.provider}:{self.hashed_id[:10]}"


def default_rule_thresholds():
    return {}


# Seconds a worker has to submit after taking a HIT, unless provider_config["assignment_duration"] says otherwise
# (MTurk's AssignmentDurationInSeconds; the same limit for every market).
DEFAULT_ASSIGNMENT_DURATION_S = 3600


class Batch(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "draft"
        PUBLISHED = "published", "published"
        CLOSED = "closed", "closed"

    class Variant(models.TextChoices):
        DEFAULT = "default", "default"
        RED_DOT = "red_dot", "red-dot cursor (ImageNet-style)"
        MAGNIFIER = "magnifier", "magnifier while dragging (COCO-style)"

    name = models.SlugField(max_length=100, unique=True)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="batches")
    task_kind = models.CharField(max_length=16, choices=TaskKind.choices)
    round = models.PositiveSmallIntegerField(default=1)
    source_batch = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="follow_up_batches",
        help_text="Round 2 re-packs what this batch did not re-select.",
    )
    pages_per_hit = models.PositiveSmallIntegerField(default=10)
    items_per_page = models.PositiveSmallIntegerField(default=48)
    in_class_ratio = models.FloatField(default=0.75)
    reward = models.DecimalField(max_digits=8, decimal_places=2, default=Decimal("1.50"))
    market_fee_rate = models.DecimalField(max_digits=4, decimal_places=3, default=Decimal("0.200"))
    min_hourly_wage = models.DecimalField(max_digits=6, decimal_places=2, default=Decimal("7.25"))
    provider = models.CharField(max_length=16, choices=Provider.choices, default=Provider.LINK)
    provider_config = models.JSONField(
        default=dict, blank=True,
        help_text="Link: parameter names, completion URL. MTurk: title, keywords, durations, qualifications.",
    )
    rule_thresholds = models.JSONField(
        default=default_rule_thresholds, blank=True, help_text="Overrides of the paper's default thresholds."
    )
    assignments_per_hit = models.PositiveSmallIntegerField(default=1)
    max_hits_per_worker = models.PositiveIntegerField(null=True, blank=True)
    interface_variant = models.CharField(max_length=16, choices=Variant.choices, default=Variant.DEFAULT)
    train_every_n_approved = models.PositiveIntegerField(
        null=True, blank=True, help_text="Schedule training when this many more assignments are approved."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "batches"

    def clean(self):
        if self.dataset_id and self.task_kind and self.dataset.kind != self.task_kind:
            raise ValidationError({"task_kind": f"dataset {self.dataset.name} is {self.dataset.kind}-style"})
        duration = (self.provider_config or {}).get("assignment_duration", DEFAULT_ASSIGNMENT_DURATION_S)
        if isinstance(duration, bool) or not isinstance(duration, int) or duration < 60:
            raise ValidationError({"provider_config": (
                f"assignment_duration: {duration!r} is not a whole number of seconds of at least 60"
            )})

    @property
    def assignment_duration(self):
        """How long a worker has to submit after taking one of the batch's HITs (then the assignment expires and
        its place is free again): provider_config["assignment_duration"] seconds, MTurk's setting of that name."""
        seconds = (self.provider_config or {}).get("assignment_duration", DEFAULT_ASSIGNMENT_DURATION_S)
        return timedelta(seconds=int(seconds))

    def __str__(self):
        return self.name


def new_candidate_key():
    return secrets.token_hex(16)


class Hit(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "not published"
        PUBLISHED = "published", "published"
        COMPLETED = "completed", "has its approved assignments"
        EXPIRED = "expired", "expired"

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="hits")
    index = models.PositiveIntegerField()
    external_id = models.CharField(max_length=100, blank=True, help_text="The market's HIT id.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    max_assignments = models.PositiveSmallIntegerField(default=1)
    published_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    candidate_key = models.CharField(
        max_length=64, default=new_candidate_key, editable=False,
        help_text="Secret of the ids its pages give their images (annotator.candidates); never sent to a browser.",
    )

    class Meta:
        verbose_name = "HIT"
        ordering = ["batch", "index"]
        constraints = [models.UniqueConstraint(fields=["batch", "index"], name="hit_unique_index")]

    def __str__(self):
        return f"{self.batch.name}#{self.index}"


class HitPage(models.Model):
    """ImageNet-style: one class and its candidate images. COCO-style: one image."""

    hit = models.ForeignKey(Hit, on_delete=models.CASCADE, related_name="pages")
    index = models.PositiveSmallIntegerField()
    category = models.ForeignKey(Category, null=True, blank=True, on_delete=models.PROTECT)
    image = models.ForeignKey(Image, null=True, blank=True, on_delete=models.PROTECT)

    class Meta:
        ordering = ["hit", "index"]
        constraints = [models.UniqueConstraint(fields=["hit", "index"], name="page_unique_index")]

    def __str__(self):
        return f"{self.hit} page {self.index}"


class PageItem(models.Model):
    """A candidate image on an ImageNet-style page."""

    page = models.ForeignKey(HitPage, on_delete=models.CASCADE, related_name="items")
    image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="page_items")
    position = models.PositiveSmallIntegerField()
    in_class = models.BooleanField(help_text="Whether the image belongs to the page's class (I_c^in).")
    is_gold = models.BooleanField(default=False)

    class Meta:
        ordering = ["page", "position"]
        constraints = [
            models.UniqueConstraint(fields=["page", "image"], name="item_unique_image"),
            models.UniqueConstraint(fields=["page", "position"], name="item_unique_position"),
        ]


class Assignment(models.Model):
    class State(models.TextChoices):
        ACCEPTED = "accepted", "accepted"
        IN_PROGRESS = "in_progress", "in progress"
        SUBMITTED = "submitted", "submitted"
        APPROVED = "approved", "approved"
        REJECTED = "rejected", "rejected"
        RETURNED = "returned", "returned"
        EXPIRED = "expired", "expired"

    # Held by a worker who has not handed it in yet (it expires past its deadline).
    OPEN_STATES = (State.ACCEPTED, State.IN_PROGRESS)
    # Still holding its place on the HIT and not yet decided.
    ACTIVE_STATES = (*OPEN_STATES, State.SUBMITTED)
    # Gave its place on the HIT back (the market counts every other one against MaxAssignments).
    RELEASED_STATES = (State.RETURNED, State.EXPIRED)
    DECIDED_STATES = (State.APPROVED, State.REJECTED)
    # Handed in: submitted, then decided.
    FINISHED_STATES = (State.SUBMITTED, *DECIDED_STATES)

    # Which states may follow which: the state machine every service goes through (see transition()).
    TRANSITIONS = {
        State.ACCEPTED: {State.IN_PROGRESS, State.SUBMITTED, State.RETURNED, State.EXPIRED},
        State.IN_PROGRESS: {State.SUBMITTED, State.RETURNED, State.EXPIRED},
        State.SUBMITTED: {State.APPROVED, State.REJECTED},
        State.APPROVED: {State.REJECTED},
        State.REJECTED: {State.APPROVED},
        State.RETURNED: set(),
        State.EXPIRED: set(),
    }

    class DecisionSource(models.TextChoices):
        AUTO = "auto", "automatic rules"
        ADMIN = "admin", "admin"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    hit = models.ForeignKey(Hit, on_delete=models.CASCADE, related_name="assignments")
    worker = models.ForeignKey(Worker, on_delete=models.PROTECT, related_name="assignments")
    external_id = models.CharField(
        max_length=100, blank=True, help_text="The market's assignment id (MTurk assignmentId, SESSION_ID...)."
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACCEPTED, db_index=True)
    interface_variant = models.CharField(max_length=16, default=Batch.Variant.DEFAULT)
    turk_submit_to = models.URLField(blank=True)
    completion_code = models.CharField(max_length=64, blank=True)
    accepted_at = models.DateTimeField(auto_now_add=True)
    deadline = models.DateTimeField(
        null=True, blank=True, db_index=True,
        help_text="Not submitted by then, it expires and frees its place (accepted + the batch's assignment duration).",
    )
    entry_address = models.CharField(
        max_length=32, blank=True,
        help_text="Keyed hash of the client address that took it (limits the open places one address holds).",
    )
    submitted_at = models.DateTimeField(null=True, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    decision_source = models.CharField(max_length=8, choices=DecisionSource.choices, blank=True)
    review = models.JSONField(default=dict, blank=True, help_text="Rule results: reasons and the numbers.")
    feedback = models.TextField(blank=True, help_text="Text sent to the worker with the decision.")
    bonus_paid = models.DecimalField(max_digits=8, decimal_places=2, default=Decimal("0"))
    model_agreement = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["hit", "worker"], name="assignment_unique_worker")]
        indexes = [models.Index(fields=["hit", "state"]), models.Index(fields=["entry_address", "state"])]

    def can_transition(self, new_state):
        return new_state in self.TRANSITIONS[self.State(self.state)]

    def is_overdue(self, now):
        """Still open past its deadline: it expires (and frees its place) the next time anyone looks."""
        return (
            self.state in self.OPEN_STATES
            and self.deadline is not None and self.deadline <= now
        )

    def transition(self, new_state):
        """Move to new_state or raise ValidationError naming both states; the caller saves."""
        if not self.can_transition(new_state):
            raise ValidationError({"state": f"assignment {self.pk} cannot go from {self.state} to {new_state}"})
        self.state = new_state

    def __str__(self):
        return f"assignment {self.pk} ({self.state})"


class Event(models.Model):
    """Append-only audit trail of batches, HITs and assignments."""

    class Type(models.TextChoices):
        PUBLISHED = "published", "published"
        ACCEPTED = "accepted", "accepted"
        RESUMED = "resumed", "resumed"
        PAGE_SAVED = "page_saved", "page saved"
        SUBMITTED = "submitted", "submitted"
        AUTO_REVIEWED = "auto_reviewed", "auto-reviewed"
        APPROVED = "approved", "approved"
        REJECTED = "rejected", "rejected"
        OVERRIDDEN = "overridden", "decision overridden"
        BONUS_REQUESTED = "bonus_requested", "bonus requested"
        BONUSED = "bonused", "bonus paid"
        REPOST_REQUESTED = "repost_requested", "re-post requested"
        REPOSTED = "reposted", "re-posted"
        EXPIRED = "expired", "expired"
        RETURNED = "returned", "returned"
        NOTIFIED = "notified", "workers notified"
        SYNCED = "synced", "synced with the market"
        BLOCKED = "blocked", "worker blocked"
        UNBLOCKED = "unblocked", "worker unblocked"
        MARKET_CALL = "market_call", "market call"

    type = models.CharField(max_length=32, choices=Type.choices)
    batch = models.ForeignKey(Batch, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    hit = models.ForeignKey(Hit, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    assignment = models.ForeignKey(
        Assignment, null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    worker = models.ForeignKey(Worker, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValidationError("events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError("events are append-only")


class MarketNotification(models.Model):
    """One webhook call a market made (Prolific's submission.status.change), kept so a redelivery (same event id)
    changes nothing and an older status never overwrites a newer one of the same submission."""

    provider = models.CharField(max_length=16, choices=Provider.choices)
    event_id = models.CharField(max_length=100)
    resource_id = models.CharField(max_length=100, db_index=True, help_text="The market's submission id.")
    status = models.CharField(max_length=32)
    sent_at = models.DateTimeField(help_text="When the market sent it (its signed timestamp header).")
    signature = models.CharField(max_length=100, db_index=True, help_text="Its signature: a replayed call has it too.")
    received_at = models.DateTimeField(auto_now_add=True)
    applied = models.BooleanField(default=False, help_text="False: older than a status already applied, or unknown.")
    payload = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="notification_unique_event")
        ]


class PageSubmission(models.Model):
    """A finished page of an assignment, with the summary that review needs (computed once, at save)."""

    assignment = models.ForeignKey(
        Assignment, on_delete=models.CASCADE, related_name="page_submissions", db_index=False,  # the unique key leads with it
    )
    page = models.ForeignKey(HitPage, on_delete=models.CASCADE, related_name="submissions")
    client_save_id = models.UUIDField(help_text="Client-generated id: a retried save is recognised.")
    saved_at = models.DateTimeField(auto_now_add=True)
    time_spent_ms = models.PositiveIntegerField(default=0)
    client = ByproductJSONField(
        default=dict, blank=True,
        help_text="Viewport, device pixel ratio, user agent, interface variant, scroll and visibility changes.",
    )
    # ImageNet-style summary.
    n_selected = models.PositiveIntegerField(default=0)
    n_in_class = models.PositiveIntegerField(default=0)
    n_in_class_selected = models.PositiveIntegerField(default=0)
    # COCO-style summary.
    n_gt_categories = models.PositiveIntegerField(default=0)
    n_tagged_correct = models.PositiveIntegerField(default=0)
    n_icons = models.PositiveIntegerField(default=0)
    n_icons_on_mask = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["assignment", "page"], name="pagesubmission_unique_page"),
            models.UniqueConstraint(fields=["assignment", "client_save_id"], name="pagesubmission_unique_save"),
        ]


class EventBatch(models.Model):
    """A batch of raw interface events flushed while a page is open (journal for resume and audit)."""

    assignment = models.ForeignKey(
        Assignment, on_delete=models.CASCADE, related_name="event_batches", db_index=False,  # the unique key leads with it
    )
    page = models.ForeignKey(HitPage, on_delete=models.CASCADE, related_name="event_batches")
    client_batch_id = models.UUIDField()
    seq = models.PositiveIntegerField(help_text="Client sequence number within the page.")
    events = ByproductJSONField(default=list)
    client_sent_at = models.BigIntegerField(help_text="Client clock, epoch ms.")
    received_at = models.DateTimeField(auto_now_add=True, help_text="Server receive time (clock-skew correction).")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["assignment", "client_batch_id"], name="eventbatch_unique_client_id")
        ]
        indexes = [models.Index(fields=["assignment", "page", "seq"])]


class ImageNetRecord(models.Model):
    """One (assignment, page, image) record, seed 000 Figure A (plus deselect clicks)."""

    assignment = models.ForeignKey(
        Assignment, on_delete=models.CASCADE, related_name="imagenet_records", db_index=False,  # the unique key leads with it
    )
    page = models.ForeignKey(HitPage, on_delete=models.CASCADE, related_name="imagenet_records")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="imagenet_records")
    selected = models.BooleanField()
    selected_record = ByproductJSONField(default=list, help_text="[{x, y, time}] clicks that selected.")
    deselected_record = ByproductJSONField(default=list, help_text="[{x, y, time}] clicks that deselected.")
    hovered_record = ByproductJSONField(default=list, help_text="[{action: enter|leave, time}].")
    mouse_tracking = ByproductJSONField(default=list, help_text="[{x, y, time}], at most 60 Hz.")
    image_position = ByproductJSONField(default=dict, help_text="{x, y} in CSS px on the page.")
    image_width = models.PositiveIntegerField(help_text="Displayed width.")
    image_height = models.PositiveIntegerField(help_text="Displayed height.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["assignment", "page", "image"], name="imagenetrecord_unique")
        ]
        indexes = [models.Index(fields=["image", "selected"])]


class CocoRecord(models.Model):
    """One (assignment, page) record, seed 000 Figure B, with the replayed final tags and positions."""

    assignment = models.ForeignKey(
        Assignment, on_delete=models.CASCADE, related_name="coco_records", db_index=False,  # the unique key leads with it
    )
    page = models.ForeignKey(HitPage, on_delete=models.CASCADE, related_name="coco_records")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="coco_records")
    image_width = models.PositiveIntegerField(help_text="Displayed width.")
    image_height = models.PositiveIntegerField(help_text="Displayed height.")
    time_spent = models.PositiveIntegerField(help_text="ms")
    action_histories = ByproductJSONField(default=list)
    category_histories = ByproductJSONField(default=list)
    mouse_tracking = ByproductJSONField(default=list)
    final_positions = ByproductJSONField(
        default=dict, help_text="{category key: {x, y}} after replaying adds, moves and removes."
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["assignment", "page"], name="cocorecord_unique")]

    @property
    def tagged(self):
        return sorted(self.final_positions)


class ImageScore(models.Model):
    """Per-image output of a model version (written by training): uncertainty and predicted points."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="scores")
    model_version = models.CharField(max_length=100, help_text="The training app's model version id.")
    uncertainty = models.FloatField()
    acquisition = models.JSONField(
        default=dict, blank=True,
        help_text="Every acquisition score of the image (entropy, margin, inconsistency, unified; seed 004).",
    )
    predicted = models.JSONField(default=dict, help_text="Top classes and predicted points.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image", "model_version"], name="imagescore_unique_version")
        ]


class ExportJob(models.Model):
    """A byproduct export of one batch (ImageNet-AB, COCO-AB or JSON lines), run as a Celery job."""

    class Format(models.TextChoices):
        IMAGENET_AB = "imagenet-ab", "ImageNet-AB (tar.gz of XML files)"
        COCO_AB = "coco-ab", "COCO-AB (one JSON list)"
        JSONL = "jsonl", "JSON lines with everything stored"

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="export_jobs")
    format = models.CharField(max_length=16, choices=Format.choices)
    include_rejected = models.BooleanField(default=False, help_text="Also export rejected work, flagged.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    progress = models.FloatField(default=0, help_text="Share of the records written (0..1).")
    record_count = models.PositiveIntegerField(default=0)
    file = models.FileField(upload_to="exports/", max_length=500, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"export {self.pk} of {self.batch} ({self.format}, {self.status})"
