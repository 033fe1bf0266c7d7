"""The worker's metrics endpoint: one port per `dramatiq tracker.tasks` run, whatever --processes.

A Dramatiq worker has no web server, and its CLI forks N worker processes (`--processes`,
default: one per CPU). Rather than one port per process (which Prometheus would have to be
told about one by one, and which changes with N), every worker process of a run writes its
metrics to a directory of that run (prometheus_client's multiprocess mode), and one extra
process, started by Dramatiq's CLI through this middleware's `forks`, serves their sum on
TRACKER_WORKER_METRICS_HOST:TRACKER_WORKER_METRICS_PORT (default 127.0.0.1:9191; 0 disables it).

The run's directory is named after the Dramatiq main process (the parent of the workers and
of the server), so a new run starts from fresh files, and directories of runs that are gone
are removed when a new server starts.

`tracker run` runs its worker inside the web process: its drain metrics are served by that
process's /metrics, and none of this applies (Dramatiq emits no process_boot there).
"""

from __future__ import annotations

import logging
import os
import shutil

import dramatiq
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from .config import Settings
from .logs import configure_logging
from .metrics import remove_stale_runs, run_directory, use_directory

log = logging.getLogger(__name__)

ROLE = "worker"


class WorkerMetricsMiddleware(dramatiq.Middleware):
    """Multiprocess metrics in each worker process, and the one process that serves them."""

    def __init__(self, settings: Settings):
        self.settings = settings

    @property
    def forks(self):
        return [serve_worker_metrics] if self.settings.worker_metrics_port else []

    def after_process_boot(self, broker):
        # Only Dramatiq's CLI emits process_boot: this is a worker process among --processes N.
        if self.settings.worker_metrics_port:
            use_directory(run_directory(self.settings, ROLE, os.getppid()))


def serve_worker_metrics() -> int:
    """Run by Dramatiq's CLI in a process of its own: serve the sum of the run's worker processes."""
    settings = Settings.from_env()
    configure_logging(settings)
    remove_stale_runs(settings)
    directory = run_directory(settings, ROLE, os.getppid())
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    host, port = settings.worker_metrics_host, settings.worker_metrics_port
    try:
        _, thread = start_http_server(port, host, registry)
    except OSError as e:
        log.error("cannot serve the worker's metrics on %s:%s: %s", host, port, e)
        return 1
    log.info("worker metrics on http://%s:%s/metrics", host, port, extra={"metrics_dir": str(directory)})
    try:
        thread.join()  # until Dramatiq stops the run (SIGTERM: SystemExit here)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return 0
