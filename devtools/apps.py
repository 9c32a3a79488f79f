from django.apps import AppConfig


class DevtoolsConfig(AppConfig):
    """The demo's and the tests' tools (simulated crowd, demo data, local fake markets): installed with
    DJANGO_DEVTOOLS (default: DEBUG), never in a deployment."""

    name = "devtools"
    verbose_name = "Development tools"
