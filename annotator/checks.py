"""Deployment invariants as system checks: secret key, broker reachability, GPU queue, signed bucket URLs, every
task registered in a worker."""
import ast
import json
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

TASK_DECORATORS = {"shared_task", "task"}
TASK_NAME_CALLS = {"signature", "send_task"}


@register(Tags.security, deploy=True)
def check_secret_key(app_configs, **kwargs):
    warnings = []
    if settings.SECRET_KEY == settings.INSECURE_DEV_KEY:
        warnings.append(Warning("DJANGO_SECRET_KEY is not set: the built-in demo key is in use.", id="annotator.W001"))
    if settings.WORKER_ID_SALT == "demo-worker-salt":
        warnings.append(
            Warning("WORKER_ID_SALT is not set: worker ids are hashed with the demo salt.", id="annotator.W002"))
    return warnings


@register(deploy=True)
def check_broker(app_configs, **kwargs):
    from config.celery import app

    try:
        with app.connection_for_write(url=settings.CELERY_BROKER_URL) as conn:
            conn.ensure_connection(max_retries=1, timeout=settings.CELERY_BROKER_CONNECTION_TIMEOUT)
    except Exception as exc:  # any transport error means the same thing here
        return [Warning(f"Celery broker {settings.CELERY_BROKER_URL!r} is unreachable: {exc}", id="annotator.W003")]
    return []


@register(deploy=True)
def check_gpu_queue(app_configs, **kwargs):
    if not settings.TRAINING_ENABLED:
        return []
    routes = settings.CELERY_TASK_ROUTES or {}
    if not any(route.get("queue") == "gpu" for route in routes.values()):
        return [Warning("Training is enabled but no task is routed to the 'gpu' queue.", id="annotator.W004")]
    return []


@register(Tags.security, deploy=True)
def check_signed_file_urls(app_configs, **kwargs):
    if settings.AWS_STORAGE_BUCKET_NAME and not settings.AWS_QUERYSTRING_AUTH:
        return [Warning(
            "AWS_QUERYSTRING_AUTH is false: /files/ redirects staff and researchers to unsigned bucket URLs, so "
            "exports and training artifacts are as readable as the bucket is to anyone who knows their names.",
            hint="Keep AWS_QUERYSTRING_AUTH true (URLs signed for FILE_URL_MAX_AGE seconds).", id="annotator.W005",
        )]
    return []


def defined_task_names(roots):
    """{task name: "file:line"} of every Celery task the code under roots defines (@shared_task / @app.task) or names
    (app.signature("...") / send_task("...")), read from the source: what the code can send."""
    names = {}
    for root in roots:
        root = Path(root)
        for path in sorted(root.rglob("*.py")):
            if "migrations" in path.parts:
                continue
            module = ".".join(path.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.FunctionDef):
                    for decorator in node.decorator_list:
                        call = decorator if isinstance(decorator, ast.Call) else None
                        target = call.func if call else decorator
                        if _attribute_name(target) in TASK_DECORATORS:
                            explicit = [k.value.value for k in (call.keywords if call else [])
                                        if k.arg == "name" and isinstance(k.value, ast.Constant)]
                            names[explicit[0] if explicit else f"{module}.{node.name}"] = _where(path, node)
                elif (isinstance(node, ast.Call) and _attribute_name(node.func) in TASK_NAME_CALLS and node.args
                      and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                    names.setdefault(node.args[0].value, _where(path, node))
    return names


def _where(path, node):
    base = Path(settings.BASE_DIR).resolve()
    path = path.resolve()
    return f"{path.relative_to(base) if base in path.parents else path}:{node.lineno}"


def _attribute_name(node):
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


# What `celery -A config worker` registers at start: Django set up, then the worker's module imports.
FRESH_WORKER_SCRIPT = (
    "import json, django; django.setup(); from config.celery import app; app.loader.import_default_modules(); "
    "print(json.dumps(sorted(app.tasks)))"
)


def registered_task_names():
    """The task names a freshly started worker process registers (a new interpreter: nothing this process imported
    counts)."""
    result = subprocess.run([sys.executable, "-c", FRESH_WORKER_SCRIPT], cwd=settings.BASE_DIR, capture_output=True,
                            text=True, timeout=120)
    if result.returncode:
        raise RuntimeError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "no output")
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def our_app_paths():
    base = Path(settings.BASE_DIR).resolve()
    from django.apps import apps

    return [Path(config.path) for config in apps.get_app_configs() if base in Path(config.path).resolve().parents]


@register(deploy=True)
def check_tasks_registered(app_configs, roots=None, **kwargs):
    """Every task the code defines or sends by name is registered in a worker started the documented way."""
    defined = defined_task_names(roots or [*our_app_paths(), Path(settings.BASE_DIR) / "config"])
    try:
        registered = registered_task_names()
    except Exception as error:  # a worker that cannot even start is the same failure
        return [Error(f"a Celery worker process cannot load the tasks: {error}", id="annotator.E001")]
    return [
        Error(f"Celery task {name!r} ({where}) is not registered in a worker started with `celery -A config "
              "worker`: its messages would be refused as unregistered.",
              hint="Define tasks in a module named tasks.py inside one of the apps' packages.", id="annotator.E001")
        for name, where in sorted(defined.items()) if name not in registered
    ]


@register(deploy=True)
def check_prolific_credentials(app_configs, **kwargs):
    """A batch on Prolific needs the API token to publish and decide, and the webhook secret to hear back."""
    from django.db import DatabaseError

    from annotator.models import Batch, Provider

    try:
        names = list(Batch.objects.filter(provider=Provider.PROLIFIC).exclude(status=Batch.Status.CLOSED)
                     .order_by("name").values_list("name", flat=True)[:5])
    except DatabaseError:  # no database yet (first deploy, before migrate): nothing uses the provider
        return []
    if not names:
        return []
    warnings = []
    if not settings.PROLIFIC_API_TOKEN:
        warnings.append(Warning(
            f"PROLIFIC_API_TOKEN is not set, but batches use the prolific provider ({', '.join(names)}): nothing can "
            "be published on Prolific and no decision, bonus or message reaches it.", id="annotator.W006"))
    if not settings.PROLIFIC_WEBHOOK_SECRET:
        warnings.append(Warning(
            f"PROLIFIC_WEBHOOK_SECRET is not set, but batches use the prolific provider ({', '.join(names)}): every "
            "webhook call is refused and submissions change only with the periodic sync.",
            hint="Run `manage.py prolific_webhook --workspace <id>` and set the secret it prints.",
            id="annotator.W007"))
    return warnings
