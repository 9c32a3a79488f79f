"""All settings, read from the environment (see README, "Configuration").

With no environment at all this is the embedded demo set-up: SQLite, kombu's filesystem broker and local
files, all under var/. Production sets DJANGO_DEBUG=false, DJANGO_SECRET_KEY, DATABASE_URL,
CELERY_BROKER_URL and, for S3, AWS_STORAGE_BUCKET_NAME.
"""
import os
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env.bool("DJANGO_DEBUG", default=True)
INSECURE_DEV_KEY = "insecure-dev-key-only-for-the-local-demo-never-in-production"
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=INSECURE_DEV_KEY)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc served by the app itself: no CDN
    "storages",
    "annotator",
    "training",
]
# The demo's and the tests' tools (simulate_crowd, make_demo_dataset, demo_links, demo_superuser): never deployed.
if env.bool("DJANGO_DEVTOOLS", default=DEBUG):
    INSTALLED_APPS.append("devtools")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 30, "transaction_mode": "IMMEDIATE"})
    # A file, not memory, so that tests marked celery_worker share the test database with the worker process;
    # one per test run (process id), so that runs sharing VAR_DIR do not delete each other's database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Throttle counters live here: point CACHE_URL at Redis (redis://host:6379/1) so every web process shares one limit.
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    # A Redis that is down or hung must not fail worker requests: short timeouts, and the cache fails open.
    CACHES["default"]["BACKEND"] = "config.cache.FailOpenRedisCache"
    CACHES["default"].setdefault("OPTIONS", {}).update({"socket_connect_timeout": 1.0, "socket_timeout": 1.0})

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "frontend_static"]
# In debug, whitenoise serves straight from frontend_static/ (no collectstatic needed).
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
MEDIA_URL = env.str("MEDIA_URL", default="/media/")
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))

# Files: local folder unless an S3 bucket is configured (AWS_S3_ENDPOINT_URL for S3-compatible stores).
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
AWS_S3_ENDPOINT_URL = env.str("AWS_S3_ENDPOINT_URL", default=None)
AWS_S3_REGION_NAME = env.str("AWS_S3_REGION_NAME", default="us-east-1")
AWS_ACCESS_KEY_ID = env.str("AWS_ACCESS_KEY_ID", default=None)
AWS_SECRET_ACCESS_KEY = env.str("AWS_SECRET_ACCESS_KEY", default=None)
AWS_QUERYSTRING_AUTH = env.bool("AWS_QUERYSTRING_AUTH", default=True)
AWS_S3_FILE_OVERWRITE = False
AWS_S3_SIGNATURE_VERSION = env.str("AWS_S3_SIGNATURE_VERSION", default="s3v4")  # SigV2 is deprecated
# Lifetime of the signed bucket URL the files view redirects to (exports, reports, training artifacts).
FILE_URL_MAX_AGE = env.int("FILE_URL_MAX_AGE", default=60)
if AWS_STORAGE_BUCKET_NAME:
    DEFAULT_STORAGE = {"BACKEND": "storages.backends.s3.S3Storage"}
else:
    DEFAULT_STORAGE = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": DEFAULT_STORAGE,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Celery: a real broker always (filesystem transport when no server is configured), never eager mode.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=None)


def filesystem_broker_options(var_dir):
    """kombu's filesystem transport in folders under var_dir (the embedded default; the tests' workers too)."""
    folder = Path(var_dir) / "celery"
    return {
        "data_folder_in": str(folder / "broker"),
        "data_folder_out": str(folder / "broker"),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),
        "store_processed": False,
        # How often the folder is looked at for a message (kombu's default: 1 s).
        "polling_interval": 0.1,
    }


if CELERY_BROKER_URL == "filesystem://":  # kombu's transport with atomic message files (config/filesystem_broker.py)
    CELERY_BROKER_TRANSPORT_OPTIONS = filesystem_broker_options(VAR_DIR)
    CELERY_RESULT_BACKEND = CELERY_RESULT_BACKEND or f"file://{VAR_DIR / 'celery' / 'results'}"
CELERY_TASK_DEFAULT_QUEUE = "default"
# The training sweeper runs beside the jobs it watches, not behind them on the gpu queue.
CELERY_TASK_ROUTES = {"training.tasks.sweep_jobs": {"queue": "default"}, "training.tasks.*": {"queue": "gpu"}}
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One message at a time per process on Redis/RabbitMQ (a training job must not hold others back). Celery's loop for
# polling transports (the filesystem broker) sends acknowledgements only between 2 s waits for a message, so with
# one message prefetched each task would cost 2 s there: the embedded default prefetches more.
CELERY_WORKER_PREFETCH_MULTIPLIER = 16 if CELERY_BROKER_URL == "filesystem://" else 1
CELERY_TASK_SERIALIZER = "json"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=4.0)
TRAINING_ENABLED = env.bool("TRAINING_ENABLED", default=True)
# A training job may run this long before Celery stops it (seconds).
TRAINING_TASK_TIME_LIMIT = env.int("TRAINING_TASK_TIME_LIMIT", default=24 * 3600)
# Local working folders of training jobs (checkpoints to resume from, the data snapshot): <this>/<job id>.
TRAINING_WORK_DIR = Path(env.str("TRAINING_WORK_DIR", default=str(VAR_DIR / "training")))
# A running job whose heartbeat is older than this (seconds) has lost its worker; it is resumed or failed.
TRAINING_HEARTBEAT_TIMEOUT = env.int("TRAINING_HEARTBEAT_TIMEOUT", default=300)
# Deliveries of one job that may start running it (a job that keeps killing its worker fails after these).
TRAINING_MAX_ATTEMPTS = env.int("TRAINING_MAX_ATTEMPTS", default=3)
# Progress and heartbeat are written to the job row at most this often (seconds).
TRAINING_PROGRESS_INTERVAL = env.float("TRAINING_PROGRESS_INTERVAL", default=2.0)
if CELERY_BROKER_URL.startswith(("redis", "rediss", "sqs")):
    # An unacknowledged training message must not be redelivered while its job still runs. So a message whose
    # worker died whole (kill -9, lost host) is not redelivered in practice: the sweepers below pick its work up.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": TRAINING_TASK_TIME_LIMIT + 3600}
# A Redis broker that is down or hung must not hold a web request: one connection attempt (kombu retries for
# seconds otherwise), short connect and read timeouts; request handlers publish once (config.celery.send_task).
# The worker's own reconnection loop is not affected (its retries are CELERY_BROKER_CONNECTION_MAX_RETRIES).
REDIS_BROKER_FAIL_FAST_OPTIONS = {
    "max_retries": 0,
    "socket_connect_timeout": env.float("CELERY_BROKER_SOCKET_CONNECT_TIMEOUT", default=2.0),
    "socket_timeout": env.float("CELERY_BROKER_SOCKET_TIMEOUT", default=5.0),
}
if CELERY_BROKER_URL.startswith(("redis", "rediss")):
    CELERY_BROKER_TRANSPORT_OPTIONS.update(REDIS_BROKER_FAIL_FAST_OPTIONS)
# Sweepers (beat, or cron with manage.py sweep_work / recover_training_jobs): every SWEEP_INTERVAL seconds they queue
# again the work left undone for longer than SWEEP_AFTER seconds (a review, a market decision, an unsent job).
SWEEP_INTERVAL = env.float("SWEEP_INTERVAL", default=60.0)
SWEEP_AFTER = env.float("SWEEP_AFTER", default=120.0)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    # The API speaks JSON only: a form body (where a key can come several times) gets 415 instead of DRF guessing.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "annotator.api.schema.ErrorDocumentingAutoSchema",
    "DEFAULT_PAGINATION_CLASS": "annotator.api.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "annotator.api.errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        # "none" turns a limit off. worker: per assignment; worker_entry and worker_bad_token: per client address.
        **{scope: None if rate.strip().lower() in ("", "none", "off") else rate.strip() for scope, rate in {
            "worker": env.str("WORKER_API_RATE", default="600/min"),
            "worker_entry": env.str("WORKER_ENTRY_RATE", default="300/min"),
            "worker_bad_token": env.str("WORKER_BAD_TOKEN_RATE", default="120/min"),
        }.items()},
    },
    # The client address of the per-address limits: REMOTE_ADDR, or with N trusted proxies in front the address
    # the Nth-last one put in X-Forwarded-For (a client can write anything in that header itself).
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "LUAB annotation backend API",
    "DESCRIPTION": "Crowdsourcing annotation with byproducts, review and a learning loop.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The API docs pages load Swagger UI and ReDoc from our static files (drf-spectacular-sidecar), never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a "status" field with different choices; give each enum its own name.
    "ENUM_NAME_OVERRIDES": {
        "BatchStatusEnum": "annotator.models.Batch.Status",
        "HitStatusEnum": "annotator.models.Hit.Status",
        "ExportJobStatusEnum": "annotator.models.ExportJob.Status",
        "JobStatusEnum": "training.models.JobStatus",
    },
}

# Worker pages: assignment-scoped signed tokens (no cookies inside the market's iframe).
WORKER_TOKEN_MAX_AGE = env.int("WORKER_TOKEN_MAX_AGE", default=6 * 3600)
WORKER_ID_SALT = env.str("WORKER_ID_SALT", default="demo-worker-salt")
# Open (taken, unsubmitted, not expired) assignments one client address may hold at a time: anyone can open task
# URLs with made-up worker ids, each taking a place. "none" turns the limit off.
_open_per_address = env.str("WORKER_OPEN_PER_ADDRESS", default="50").strip().lower()
WORKER_OPEN_PER_ADDRESS = None if _open_per_address in ("", "none", "off") else int(_open_per_address)
# Origins allowed to frame the worker pages (CSP frame-ancestors); nothing else may.
WORKER_FRAME_ANCESTORS = env.list(
    "WORKER_FRAME_ANCESTORS",
    default=["https://worker.mturk.com", "https://workersandbox.mturk.com", "https://app.prolific.com"],
)
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000")
# Largest worker API body accepted; larger ones get 413.
WORKER_MAX_BODY_BYTES = env.int("WORKER_MAX_BODY_BYTES", default=2 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = WORKER_MAX_BODY_BYTES

# Crowd markets.
MTURK_SANDBOX = env.bool("MTURK_SANDBOX", default=True)
MTURK_ENDPOINT_URL = env.str("MTURK_ENDPOINT_URL", default=None)
# Prolific (annotator.providers.prolific): the workspace's API token, the API's origin (a local fake in tests and the
# demo), the webhook secret POST /api/v1/hooks/secrets/ returned, how old a signed webhook call may be, and how often
# beat syncs the published Prolific batches for the webhook calls that never arrived.
PROLIFIC_API_TOKEN = env.str("PROLIFIC_API_TOKEN", default="")
PROLIFIC_API_URL = env.str("PROLIFIC_API_URL", default="https://api.prolific.com")
PROLIFIC_WEBHOOK_SECRET = env.str("PROLIFIC_WEBHOOK_SECRET", default="")
PROLIFIC_WEBHOOK_TOLERANCE = env.int("PROLIFIC_WEBHOOK_TOLERANCE", default=300)
PROLIFIC_SYNC_INTERVAL = env.float("PROLIFIC_SYNC_INTERVAL", default=600.0)
# A participant group of the workspace: blocked workers are added to it, and every study excludes it.
PROLIFIC_BLOCKLIST_GROUP_ID = env.str("PROLIFIC_BLOCKLIST_GROUP_ID", default="")

if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    if env.bool("DJANGO_BEHIND_TLS_PROXY", default=True):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
