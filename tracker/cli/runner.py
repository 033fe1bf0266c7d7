"""`tracker run` (everything in one process, for a laptop), `tracker serve`, `tracker init-db`."""

from __future__ import annotations

import argparse
import logging
import os

from ..config import Settings
from ..embedded import EmbeddedRedis
from ..local_secret import local_click_secret
from ..metrics import shared_metrics
from ..models import create_tables
from ..runtime import Runtime
from ..server import create_server, serve_forever, serve_processes

log = logging.getLogger(__name__)

#: Dramatiq worker threads in `tracker run`.
RUN_WORKER_THREADS = 4


def register(subparsers) -> None:
    run = subparsers.add_parser("run", help="run web, worker and tick together (embedded Redis/SQLite by default)")
    run.add_argument("--port", type=int, default=None, help="web port (default 8080, or TRACKER_PORT)")
    run.add_argument("--host", default=None, help="web address (default 127.0.0.1, or TRACKER_HOST)")
    run.add_argument("--worker-threads", type=int, default=RUN_WORKER_THREADS, help="Dramatiq worker threads")
    run.set_defaults(func=cmd_run)

    serve = subparsers.add_parser("serve", help="run the web server only (ingest, stats, pages)")
    serve.add_argument("--port", type=int, default=None, help="web port (default 8080, or TRACKER_PORT)")
    serve.add_argument("--host", default=None, help="web address (default 127.0.0.1, or TRACKER_HOST)")
    serve.add_argument("--processes", type=int, default=None,
                       help="web processes sharing the port (default 1, or TRACKER_WEB_PROCESSES)")
    serve.set_defaults(func=cmd_serve)

    init_db = subparsers.add_parser("init-db", help="create the tables if they do not exist")
    init_db.set_defaults(func=cmd_init_db)


def _web_settings(args: argparse.Namespace, settings: Settings) -> Settings:
    options = ("port", "host", "processes")
    changes = {name if name != "processes" else "web_processes": getattr(args, name)
               for name in options if getattr(args, name, None) is not None}
    return settings.replace(**changes)


def cmd_init_db(args: argparse.Namespace, settings: Settings) -> int:
    runtime = Runtime(settings)
    create_tables(runtime.database)
    print(f"tables ready in {_display_url(settings.effective_database_url)}")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from ..web import create_app  # noqa: PLC0415 - the web layer loads only for commands that serve

    settings = _web_settings(args, settings)
    if settings.web_processes > 1:
        with shared_metrics(settings, "web"):  # a scrape of any process sums them all
            serve_processes(lambda: create_app(Runtime(settings)), settings, settings.web_processes)
        return 0
    runtime = Runtime(settings)
    serve_forever(create_server(create_app(runtime), settings))
    runtime.close()
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Web server, Dramatiq worker and tick in this process; Ctrl-C stops all of them."""
    settings = _web_settings(args, settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not settings.click_secret:  # the demo's signed link works out of the box (see local_secret.py)
        settings = settings.replace(click_secret=local_click_secret(settings.data_dir))
    embedded = None
    if not settings.redis_url:
        embedded = EmbeddedRedis(settings.data_dir / "redis")
        settings = settings.replace(redis_url=embedded.start())
    try:
        _export(settings)
        runtime = Runtime(settings)
        create_tables(runtime.database)
        _run_all(runtime, args.worker_threads)
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


def _export(settings: Settings) -> None:
    """Hand the resolved settings to `tracker.tasks`, which reads the environment at import."""
    os.environ["REDIS_URL"] = settings.redis_url
    os.environ["DATABASE_URL"] = settings.effective_database_url
    os.environ.pop("REDIS_HOST", None)
    os.environ.pop("DB_HOST", None)


def _run_all(runtime: Runtime, worker_threads: int) -> None:
    import dramatiq  # noqa: PLC0415

    from .. import tasks  # noqa: PLC0415 - declares the broker from the exported settings
    from ..web import create_app  # noqa: PLC0415

    worker = dramatiq.Worker(tasks.broker, worker_threads=worker_threads)
    worker.start()
    try:
        server = create_server(create_app(runtime), runtime.settings)
        print(f"tracker is running: http://{server.effective_host}:{server.effective_port}/  (Ctrl-C stops)",
              flush=True)
        serve_forever(server)
    finally:
        log.info("stopping the worker")
        worker.stop(timeout=runtime.settings.drain_budget_ms + 5_000)
        tasks.runtime.close()
        runtime.close()


def _display_url(url: str) -> str:
    """A database URL without its password, for printing."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    if ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"
