"""gunicorn settings for production: `gunicorn -c python:service.gunicorn_conf service.app:create_app`.

Everything comes from the same environment settings as the app; a bad value stops the master
with one line before any worker starts."""

from service.settings import load_settings

_settings = load_settings()

bind = f"{_settings.host}:{_settings.port}"
workers = _settings.web_concurrency
worker_class = "service.worker.ConduitWorker"
# The worker's whole stop (SHUTDOWN_DELAY, then SHUTDOWN_TIMEOUT of draining, then the bounded
# pool close) fits inside graceful_timeout, so gunicorn never kills a worker that is draining.
graceful_timeout = _settings.graceful_timeout
timeout = max(30, graceful_timeout)
keepalive = 75  # longer than a typical load balancer's idle timeout (60 s), so it closes first
accesslog = None  # one JSON line per request comes from the app's middleware
