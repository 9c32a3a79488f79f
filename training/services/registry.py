"""The model registry: which model version of a dataset is the active one."""
import logging

from django.db import transaction

from annotator.models import Dataset

from ..models import ModelVersion

logger = logging.getLogger(__name__)


def promote_model_version(version, *, actor=None):
    """Make version the dataset's one active model: it steers the dataset's next collection round."""
    with transaction.atomic():
        dataset = Dataset.objects.select_for_update().get(pk=version.dataset_id)
        ModelVersion.objects.filter(dataset=dataset, is_active=True).exclude(pk=version.pk).update(is_active=False)
        ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
        dataset.active_model_version = version.name
        dataset.save(update_fields=["active_model_version"])
    logger.info("model version %s promoted for dataset %s by %s", version.name, dataset.name, actor or "system")
    version.refresh_from_db()
    return version
