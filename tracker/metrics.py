"""Prometheus metrics: what each process counts, and how a process exposes them.

The metrics a process updates (all names start with `tracker_`; the README's "Monitoring"
section lists them with their meaning):

    web     events_accepted_total{kind}               stored in a stream (a 200)
            events_rejected_total{kind,status,reason} answered 4xx/5xx, not stored
            events_deduplicated_total{kind}           a retry of an event id already stored
            events_filtered_total{kind,reason}        answered, deliberately not counted (bots...)
            ingest_duration_seconds{endpoint}         time in the ingest handler, per request
    worker  drains_total{stream,result}               drain messages run: ok, busy, handed_over, error
            drain_duration_seconds{stream}            one drain message, from start to end
            drain_batch_size{stream}                  entries per committed batch
            drain_batch_duration_seconds{stream}      one batch: read, commit, acknowledge
            drained_events_total{stream,outcome}      applied, skipped (counted before), dead

The per-shard figures read from Redis and the database at scrape time (length, lag, pending,
ages, dead letters) come from `tracker.status` through `StatusCollector`.

Processes and forks. One process: its metrics live in its own registry. Several processes
behind one port (`tracker serve --processes N`) or under one supervisor (`dramatiq
--processes N`) use prometheus_client's multiprocess mode: each process writes its values to
memory-mapped files in a directory of that run, and whichever process answers a scrape sums
the files of all of them, so every scrape sees the whole server's totals. `use_directory`
switches a process to that mode; it must run before the first metric is created (children
forked afterwards inherit it).

Incrementing is cheap (a lock and an add, or an mmap write in multiprocess mode); the label
children of the hot paths are looked up once and kept.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector

from .config import Settings
from .errors import ConfigurationError
from .events import KINDS, Kind

log = logging.getLogger(__name__)

#: Content type of the exposition format served at /metrics.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Ingest handler time (s): a request usually takes well under a millisecond of our time, plus
#: one Redis round trip (~0.2 ms); the upper buckets catch a slow Redis (timeout 1 s).
INGEST_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: One drain message (s): up to TRACKER_DRAIN_BUDGET_MS (5 s), more when a commit is slow.
DRAIN_BUCKETS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0, 60.0, 120.0)
#: One batch (s): a read, one transaction, an XACK.
BATCH_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Entries per committed batch: TRACKER_BATCH_SIZE times TRACKER_READS_PER_COMMIT at most.
BATCH_SIZE_BUCKETS = (1, 10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000)


class Metrics:
    """The metrics of one process, and the small API the code updates them through.

    `reason` labels must be fixed phrases chosen by the code (never a value taken from a
    request): each distinct value is a time series of its own.
    """

    def __init__(self, registry: CollectorRegistry | None = None, directory: Path | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        self.directory = directory  # multiprocess files, or None: this registry holds the values
        self._define(self.registry)
        self._children: dict[tuple, object] = {}  # (id(metric), labels...) -> child, for the hot paths
        self._reasons: dict[str, str] = {}

    def _define(self, registry: CollectorRegistry) -> None:
        def counter(name, doc, labels):
            return Counter(name, doc, labels, registry=registry)

        def histogram(name, doc, labels, buckets):
            return Histogram(name, doc, labels, buckets=buckets, registry=registry)

        self.events_accepted = counter("tracker_events_accepted", "Events stored in a stream (answered 200).", ["kind"])
        self.events_rejected = counter("tracker_events_rejected", "Events refused and not stored, by HTTP status and reason.",
                                       ["kind", "status", "reason"])
        self.events_deduplicated = counter("tracker_events_deduplicated",
                                           "Events not stored again: their event id was stored within the dedupe window.", ["kind"])
        self.events_filtered = counter("tracker_events_filtered",
                                       "Events answered normally but not counted (bots, prefetches...), by reason.", ["kind", "reason"])
        self.ingest_duration = histogram("tracker_ingest_duration_seconds",
                                         "Time spent in the ingest handler per request, storing included.", ["endpoint"], INGEST_BUCKETS_S)
        self.drains = counter("tracker_drains", "Drain messages run, by result (ok, busy, handed_over, error).", ["stream", "result"])
        self.drain_duration = histogram("tracker_drain_duration_seconds", "Duration of one drain message.", ["stream"], DRAIN_BUCKETS_S)
        self.drain_batch_size = histogram("tracker_drain_batch_size", "Entries per committed batch.", ["stream"], BATCH_SIZE_BUCKETS)
        self.drain_batch_duration = histogram("tracker_drain_batch_duration_seconds",
                                              "Duration of one batch: read, transaction, acknowledgement.", ["stream"], BATCH_BUCKETS_S)
        self.drained_events = counter("tracker_drained_events",
                                      "Entries a drain dealt with: applied to the counts, skipped (counted before), dead-lettered.",
                                      ["stream", "outcome"])

    # -- ingest: the web layer (and the batch endpoint, dedupe and filters) call these ----------

    def declare_ingest(self, endpoints: Iterable[str] = ()) -> None:
        """Create the ingest series at 0 (a web process calls this at start), so the first
        event of a kind is an increase Prometheus can see, not the birth of a series."""
        for kind in KINDS:
            self.accepted(kind, 0)
            self.deduplicated(kind, 0)
        for endpoint in endpoints:
            self._child(self.ingest_duration, endpoint)

    def _child(self, metric, *labels):
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def accepted(self, kind: Kind, n: int = 1) -> None:
        self._child(self.events_accepted, kind.name).inc(n)

    def rejected(self, kind: Kind | str, status: int, reason: str, n: int = 1) -> None:
        """`n` requests for `kind` (a Kind, or "batch") refused with HTTP `status`; `reason` is
        a fixed phrase of the code's (slugged), never a value taken from the request."""
        label = kind.name if isinstance(kind, Kind) else kind
        self.events_rejected.labels(label, str(status), self._slug(reason)).inc(n)

    def deduplicated(self, kind: Kind, n: int = 1) -> None:
        self._child(self.events_deduplicated, kind.name).inc(n)

    def filtered(self, kind: Kind, reason: str, n: int = 1) -> None:
        """`n` events of `kind` answered but not counted; `reason` such as "bot" or "prefetch"."""
        self.events_filtered.labels(kind.name, self._slug(reason)).inc(n)

    def stored(self, kinds: Iterable[Kind], results: Iterable) -> None:
        """Count what Producer.store did: each result is new (accepted) or a duplicate."""
        for kind, result in zip(kinds, results):
            (self.accepted if result.new else self.deduplicated)(kind)

    def ingest_time(self, endpoint: str, seconds: float) -> None:
        self._child(self.ingest_duration, endpoint).observe(seconds)

    def _slug(self, reason: str) -> str:
        slug = self._reasons.get(reason)
        if slug is None:
            slug = re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_")[:60] or "unknown"
            self._reasons[reason] = slug
        return slug

    # -- drains: the worker ----------------------------------------------------------------------

    def drain_result(self, stream: str, result: str, seconds: float | None) -> None:
        self.drains.labels(stream, result).inc()
        if seconds is not None:
            self.drain_duration.labels(stream).observe(seconds)

    def drain_batches(self, stream: str, sizes: Sequence[int], durations: Sequence[float]) -> None:
        size, duration = self.drain_batch_size.labels(stream), self.drain_batch_duration.labels(stream)
        for n in sizes:
            size.observe(n)
        for seconds in durations:
            duration.observe(seconds)

    def drained(self, stream: str, applied: int, skipped: int, dead: int) -> None:
        for outcome, n in (("applied", applied), ("skipped", skipped), ("dead", dead)):
            if n:
                self.drained_events.labels(stream, outcome).inc(n)

    # -- exposition ------------------------------------------------------------------------------

    def sources(self) -> list:
        """What a scrape of this process reads: its registry, or every process's files."""
        if self.directory is None:
            return [self.registry]
        return [MultiProcessCollector(None, path=str(self.directory))]


class _Union:
    """Several collectors read as one registry (what generate_latest expects)."""

    def __init__(self, collectors: Sequence):
        self.collectors = collectors

    def collect(self):
        for collector in self.collectors:
            yield from collector.collect()


def exposition(metrics: Metrics, *collectors) -> bytes:
    """The text exposition of `metrics` (every process's, in multiprocess mode) and `collectors`."""
    return generate_latest(_Union([*metrics.sources(), *collectors]))


# -- the process's metrics, and multiprocess mode ---------------------------------------------

_lock = threading.Lock()
_process_metrics: Metrics | None = None
_directory: Path | None = None


def process_metrics() -> Metrics:
    """This process's metrics, created on first use (after any `use_directory`)."""
    global _process_metrics
    with _lock:
        if _process_metrics is None:
            registry = CollectorRegistry()
            if _directory is None:
                ProcessCollector(registry=registry)  # CPU, memory, file descriptors of this process
            _process_metrics = Metrics(registry, _directory)
        return _process_metrics


def use_directory(directory: Path) -> None:
    """Switch this process, and the children it forks from now on, to multiprocess mode."""
    global _directory
    with _lock:
        if _process_metrics is not None and _directory != directory:
            raise ConfigurationError("metrics already exist in this process; switch to multiprocess mode earlier")
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)  # read by prometheus_client, not by us
        values.ValueClass = values.MultiProcessValue()
        _directory = directory


def base_directory(settings: Settings) -> Path:
    """TRACKER_METRICS_DIR, or a directory of this user's under the system's temp directory."""
    if settings.metrics_dir:
        return Path(settings.metrics_dir)
    return Path(tempfile.gettempdir()) / f"tracker-metrics-{os.getuid()}"


def run_directory(settings: Settings, role: str, owner_pid: int) -> Path:
    """The multiprocess directory of one run: named by its supervisor's pid and start time.

    The start time makes a reused pid name a new directory, so a run never inherits the
    files of an earlier one.
    """
    return base_directory(settings) / f"{role}-{owner_pid}-{_start_ticks(owner_pid)}"


def remove_stale_runs(settings: Settings) -> None:
    """Delete the directories of runs whose supervisor is gone (left by a crash or SIGKILL)."""
    base = base_directory(settings)
    if not base.is_dir():
        return
    for path in base.iterdir():
        match = re.fullmatch(r"[a-z]+-(\d+)-(\d+)", path.name)
        if match and path.is_dir() and _start_ticks(int(match[1])) != match[2]:
            with contextlib.suppress(OSError):
                shutil.rmtree(path)
                log.debug("removed the metrics files of a finished run: %s", path)


def _start_ticks(pid: int) -> str:
    """When process `pid` started (clock ticks since boot, from /proc), or "0" if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return "0"
    return stat.rsplit(b")", 1)[1].split()[19].decode()


@contextlib.contextmanager
def shared_metrics(settings: Settings, role: str):
    """Within the block, this process and the children it forks share multiprocess metrics.

    For a supervisor that forks its workers (`tracker serve --processes N`): the directory is
    this run's own, and is removed when the run ends.
    """
    remove_stale_runs(settings)
    directory = run_directory(settings, role, os.getpid())
    use_directory(directory)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)
