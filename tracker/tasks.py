"""Dramatiq actors and the worker's tick: `dramatiq tracker.tasks` runs them.

Importing this module reads the settings and declares the broker, as Dramatiq requires of the
module its CLI is given; connections open lazily in each worker process (see Runtime).

Actors (queue TRACKER_QUEUE_NAME, default "tracker"):
    drain(kind, shard)   drain one stream shard for up to TRACKER_DRAIN_BUDGET_MS
    trim()               trim every shard, never above its committed offset (every TRACKER_TRIM_INTERVAL_MS)
"""

from __future__ import annotations

import logging
import threading
import time

import dramatiq
from dramatiq.middleware import CurrentMessage

from .broker import build_broker
from .config import Settings
from .errors import DatabaseUnavailable, StreamUnavailable
from .events import kind_named
from .retention import Trimmer
from .logs import configure_logging
from .runtime import Runtime
from .scheduler import DrainFlags, Periodic, Scheduler, SchedulerMiddleware
from .streams import Shard
from .worker_metrics import WorkerMetricsMiddleware

log = logging.getLogger(__name__)

settings = Settings.from_env()
configure_logging(settings)  # Dramatiq's CLI configured logging its own way before importing us
broker = build_broker(settings)
dramatiq.set_broker(broker)
runtime = Runtime(settings)

#: Set when this worker process starts shutting down: running drains end after their batch.
stopping = threading.Event()

#: A drain may run this long past its budget (a slow commit) before Dramatiq interrupts it (ms).
DRAIN_TIME_LIMIT_SLACK_MS = 120_000


def drain_flags() -> DrainFlags:
    # The flag outlives one drain's budget plus its lease, and is refreshed while it runs.
    return DrainFlags(runtime.redis, settings.drain_budget_ms + settings.lease_ttl_ms)


@dramatiq.actor(
    queue_name=settings.queue_name,
    max_retries=settings.drain_max_retries,
    min_backoff=settings.drain_min_backoff_ms,
    max_backoff=settings.drain_max_backoff_ms,
    time_limit=settings.drain_budget_ms + DRAIN_TIME_LIMIT_SLACK_MS,
)
def drain(kind: str, shard: int) -> None:
    """Drain one shard. Safe to run twice at once (the lease admits one) and to retry."""
    target = runtime.layout.shard(kind_named(kind), shard)
    flags = drain_flags()
    runtime.drain_log.started(target)
    started = time.monotonic()
    try:
        report = runtime.drainer.drain(target, keep_alive=lambda: flags.refresh(target), stopping=stopping.is_set)
    except Exception as e:
        runtime.drain_log.failed(target, time.monotonic() - started, e)
        _hold_flag_for_retry(flags, target)
        raise
    runtime.drain_log.finished(target, report, time.monotonic() - started)
    flags.after_drain(target, report, send_drain)


def _hold_flag_for_retry(flags: DrainFlags, shard: Shard) -> None:
    """Keep the tick from sending more drains while Dramatiq waits to retry this one.

    Without this, a database outage would add one failing message (and its retries) per tick.
    When the retries are used up, the message goes to the dead-letter queue and the flag is
    cleared, so the next tick starts afresh.
    """
    message = CurrentMessage.get_current_message()
    retries = message.options.get("retries", 0) if message else 0
    try:
        if retries >= settings.drain_max_retries:
            flags.clear(shard)
        else:
            backoff = min(settings.drain_min_backoff_ms * 2 ** (retries + 1), settings.drain_max_backoff_ms)
            flags.hold(shard, backoff + settings.tick_interval_ms)
    except Exception:  # Redis is down too: the flag's own TTL takes over
        log.debug("could not hold the drain flag of %s", shard.key, exc_info=True)


def send_drain(shard: Shard) -> None:
    drain.send(shard.kind.name, shard.index)


#: Longest a trim may run before Dramatiq interrupts it (ms).
TRIM_TIME_LIMIT_MS = 600_000


@dramatiq.actor(queue_name=settings.queue_name, max_retries=0, time_limit=TRIM_TIME_LIMIT_MS)
def trim() -> None:
    """Trim every shard (tracker/retention.py). Safe to run twice at once; the next period retries."""
    try:
        reports = Trimmer(runtime.redis, runtime.ledger, runtime.layout, settings).trim_all()
    except (StreamUnavailable, DatabaseUnavailable) as e:
        log.warning("trim skipped, next try in %d ms: %s", settings.trim_interval_ms, e)
        return
    for report in reports:
        if report.removed:
            log.debug("trimmed %s: %s", report.stream, report)


def make_scheduler() -> Scheduler:
    return Scheduler(runtime.redis, runtime.layout, drain_flags(), send_drain, settings.tick_interval_ms,
                     periodic=[Periodic("trim", settings.trim_interval_ms, trim.send)])


class StopDrains(dramatiq.Middleware):
    """Tell running drains to finish their batch and return when the worker shuts down."""

    def before_worker_shutdown(self, broker, worker):
        stopping.set()


broker.add_middleware(StopDrains())
broker.add_middleware(SchedulerMiddleware(make_scheduler, settings.tick_interval_ms))
broker.add_middleware(WorkerMetricsMiddleware(settings))
