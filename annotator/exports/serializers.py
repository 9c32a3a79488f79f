from rest_framework import serializers

from annotator.api.fields import NameField, StoredFileUrlField
from annotator.models import Batch, ExportJob


class ExportJobInputSerializer(serializers.Serializer):
    batch = NameField(slug_field="name", queryset=Batch.objects.all())
    format = serializers.ChoiceField(choices=ExportJob.Format.choices)
    include = serializers.ListField(
        child=serializers.ChoiceField(choices=["rejected"]), required=False, default=list,
        help_text='["rejected"] adds the work that is not approved, flagged with its assignment state.',
    )


class ExportJobOutputSerializer(serializers.ModelSerializer):
    batch = serializers.SlugRelatedField(slug_field="name", read_only=True)
    download_url = StoredFileUrlField(source="file", help_text="Set once the export is done.")

    class Meta:
        model = ExportJob
        fields = [
            "id", "batch", "format", "include_rejected", "status", "progress", "record_count", "download_url",
            "error", "created_at", "finished_at",
        ]
