from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "training"
    verbose_name = "Training"

    def ready(self):
        from annotator.files import register_reader

        from . import receivers  # noqa: F401 (connects the signal receivers)
        from .permissions import is_researcher

        register_reader("training", is_researcher)
