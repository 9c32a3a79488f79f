"""Input and output serializers of the training API, one pair per operation."""
from rest_framework import serializers

from annotator import files
from annotator.api.fields import NameField, StoredFileUrlField, nul_path
from annotator.models import Batch, Dataset
from training.steering import UNCERTAINTY_MEASURES

from ..models import InferenceJob, ModelVersion, TrainingJob


class TrainingJobCreateInput(serializers.Serializer):
    dataset = NameField(slug_field="name", queryset=Dataset.objects.all())
    batches = NameField(
        slug_field="name", queryset=Batch.objects.all(), many=True, required=False, default=list,
        help_text="Train on the approved work of these batches only (default: every batch of the dataset).",
    )
    config = serializers.DictField(
        required=False, default=dict,
        help_text="TrainConfig options, e.g. {\"model\": \"resnet18\", \"epochs\": 10, \"lambda_point\": 10}.",
    )

    def validate_config(self, config):
        where = nul_path(config)
        if where is not None:
            raise serializers.ValidationError(f"{where}: contains a NUL character, which cannot be stored")
        return config


class ArtifactUrlsField(serializers.DictField):
    def to_representation(self, artifacts):
        return {name: files.url(path, self.context.get("request")) for name, path in artifacts.items()}


class TrainingJobOutput(serializers.ModelSerializer):
    dataset = serializers.CharField(source="dataset.name")
    batches = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    created_by = serializers.CharField(source="created_by.username", default=None, allow_null=True)
    model_version = serializers.SerializerMethodField()
    artifacts = ArtifactUrlsField(child=serializers.URLField())

    class Meta:
        model = TrainingJob
        fields = [
            "id", "dataset", "batches", "source", "status", "config", "manifest_hash", "progress",
            "epoch_metrics", "metrics", "error", "log_tail", "artifacts", "model_version", "attempts",
            "cancel_requested", "worker_hostname", "heartbeat_at", "created_by", "created_at", "started_at",
            "finished_at",
        ]

    def get_model_version(self, job) -> str | None:
        try:
            return job.model_version.name
        except ModelVersion.DoesNotExist:
            return None


class ModelVersionOutput(serializers.ModelSerializer):
    dataset = serializers.CharField(source="dataset.name")
    checkpoint_url = StoredFileUrlField(source="checkpoint")

    class Meta:
        model = ModelVersion
        fields = [
            "id", "name", "dataset", "job", "manifest_hash", "config", "metrics", "epoch_metrics",
            "checkpoint_url", "is_active", "created_at",
        ]


class InferenceJobCreateInput(serializers.Serializer):
    uncertainty = serializers.ChoiceField(
        choices=UNCERTAINTY_MEASURES, default="entropy",
        help_text="Acquisition score kept as ImageScore.uncertainty (seed 004); all of them are computed.",
    )


class InferenceJobOutput(serializers.ModelSerializer):
    model_version = serializers.CharField(source="model_version.name")

    class Meta:
        model = InferenceJob
        fields = [
            "id", "model_version", "uncertainty", "status", "progress", "summary", "error", "created_at",
            "started_at", "finished_at",
        ]
