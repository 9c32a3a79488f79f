"""gunicorn settings for the web app: `gunicorn -c config/gunicorn.conf.py config.wsgi` (README, "How to run it").

Every value can be overridden on the command line or with GUNICORN_* / the variables below.
"""
import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Threads, not sync workers: a sync worker serves one request at a time, so one slow client stalls it entirely.
# The deadline worker (config/gunicorn_worker.py) cuts a request that has not fully arrived after
# REQUEST_READ_TIMEOUT seconds (default 30), so a slow-body client (slowloris) frees its thread again.
worker_class = "config.gunicorn_worker.DeadlineThreadWorker"
workers = int(os.environ.get("GUNICORN_WORKERS", 2 * multiprocessing.cpu_count() + 1))
threads = int(os.environ.get("GUNICORN_THREADS", 4))
# Connections one worker keeps open (idle keep-alive ones wait in its selector, holding no thread).
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", 1000))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", 5))
# A worker whose main loop is stuck this long is restarted (this does not watch single requests: see above).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 60))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", 30))
# Limits on the request line and headers (gunicorn's defaults, stated): bodies are capped by WORKER_MAX_BODY_BYTES.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
# Behind a TLS-terminating proxy on the same host; set FORWARDED_ALLOW_IPS to the proxy's address otherwise.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
# Gunicorn's default format without the query string and the referer: beacons carry the worker's token as ?token=,
# task URLs carry market worker and assignment ids (the referer of every request from a task page).
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(a)s"'
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
