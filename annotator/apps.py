from django.apps import AppConfig


class AnnotatorConfig(AppConfig):
    name = "annotator"
    verbose_name = "Annotation"

    def ready(self):
        from . import checks  # noqa: F401  (registers the system checks)
        from .providers import receivers  # noqa: F401  (market calls follow decisions, bonuses, re-posts)
        from .review import receivers as review_receivers  # noqa: F401  (automatic review after submit)
