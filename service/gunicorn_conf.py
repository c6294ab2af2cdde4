"""gunicorn settings for production: `gunicorn -c python:service.gunicorn_conf service.app:create_app`.

Everything comes from the same environment settings as the app; a bad value stops the master
with one line before any worker starts. Command-line flags (or GUNICORN_CMD_ARGS) still
override what is set here, e.g. `--keep-alive 90`."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from typing import TYPE_CHECKING

from service.settings import load_settings
from service.shutdown import graceful_timeout as shutdown_budget

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker

_settings = load_settings()

bind = f"{_settings.host}:{_settings.port}"
workers = _settings.web_concurrency
worker_class = "service.worker.ConduitWorker"
# A worker's whole stop (SHUTDOWN_DELAY, SHUTDOWN_TIMEOUT of draining, the bounded pool close)
# fits inside graceful_timeout, so gunicorn never kills a worker that is still within its budget.
graceful_timeout = shutdown_budget(_settings)
# The worker heartbeat stops while a worker drains (a HUP or TTOU stops workers while the master
# keeps checking heartbeats), so the heartbeat timeout is at least the stop's budget.
timeout = max(30, graceful_timeout)
# Longer than the idle timeout of the proxy in front (60 s on AWS ALB and nginx's default), so
# the proxy, not the worker, closes an idle connection: no request races a closing socket.
keepalive = 75
accesslog = None  # one JSON line per request comes from the app's middleware
# gunicorn's runtime control socket defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl),
# shared by every gunicorn of that user on the host; this service does not use it.
control_socket_disable = True

_METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"
_own_metrics_dir: str | None = None


def on_starting(server: Arbiter) -> None:
    """Master, once before the first fork: an empty directory for prometheus-client's
    multiprocess files, so a scrape of any worker reports the sum of all of them. A directory
    left by an earlier run is emptied (its counters would be summed in), except by a master
    that USR2 started next to a running one (GUNICORN_PID): those files are still being written."""
    global _own_metrics_dir  # noqa: PLW0603 - the master removes it at exit (on_exit)
    path = os.environ.get(_METRICS_DIR)
    if path:
        os.makedirs(path, exist_ok=True)
        if "GUNICORN_PID" not in os.environ:
            for stale in glob.glob(os.path.join(path, "*.db")):
                os.remove(stale)
    else:
        # In memory where the system has it: every request updates these files (mmap), and on a
        # disk each page written back must fault again (a tenth of a small request's CPU).
        shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None  # noqa: S108 - mkdtemp makes a private directory there
        path = _own_metrics_dir = tempfile.mkdtemp(prefix="conduit-metrics-", dir=shm)
        os.environ[_METRICS_DIR] = path  # inherited by every worker, before it imports prometheus_client
    if server.cfg.graceful_timeout < shutdown_budget(_settings):
        server.log.warning(  # type: ignore[union-attr]  # the arbiter sets its log in setup(), before this hook
            "graceful_timeout %ss is shorter than the workers' stop (%ss): draining workers may be killed",
            server.cfg.graceful_timeout,
            shutdown_budget(_settings),
        )


def child_exit(server: Arbiter, worker: Worker) -> None:
    """Master, after a worker exited: its pool gauges leave the sums (its counters stay)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Arbiter) -> None:
    if _own_metrics_dir is not None:
        shutil.rmtree(_own_metrics_dir, ignore_errors=True)
