"""The state of each stream shard, from Redis and the database: `tracker status` and /metrics.

One reading costs one pipelined Redis round trip for all shards (XLEN, XINFO GROUPS,
XPENDING, the dead-letter stream's XLEN and the last-drain mark of each), one query of
`stream_offsets`, whatever the number of shards, and one look at the Dramatiq broker's
dead-letter queue (tracker.queue_probe). `CachedStatus` shares a reading between the scrapes of a short interval, so
a burst of scrapes costs one reading.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import peewee
import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from redis import Redis

from .aggregate import Ledger, format_id, parse_id
from .drainlog import last_drain_of
from .errors import TrackerError
from .models import StreamOffset, database_errors
from .queue_probe import DeadLetterProbe, DeadLetterQueue
from .streams import Layout, Shard, redis_errors

log = logging.getLogger(__name__)


@dataclass
class ShardStatus:
    stream: str
    kind: str
    length: int  # entries in the stream (counted or not, until trimmed)
    lag: int | None  # entries not yet delivered to the group (None: Redis < 7 cannot tell)
    pending: int  # delivered, not yet acknowledged
    oldest_pending_age_ms: int | None
    committed_id: str  # last entry ID whose event is in the counts
    committed_age_ms: int | None  # how old that entry is (None before the first commit)
    applied: int  # events counted from this shard in all
    dead_letters: int
    last_drain_age_ms: int | None  # since a drain of this shard last began or ended (None: never)
    drain_running: bool  # a drain message of this shard is running (or was killed mid-run)
    last_drain_result: str | None  # how the last one ended: ok, handed_over or error
    last_drain_error: str | None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Status:
    at_ms: int
    shards: list[ShardStatus]
    dead_letter_queue: DeadLetterQueue | None  # None: not asked for, or a broker we cannot read

    def as_dict(self) -> dict:
        return asdict(self)


class StatusReader:
    """Reads the state of `shards` (usually `layout.shards()`: all of them)."""

    def __init__(self, client: Redis, db: peewee.Database, shards: Sequence[Shard],
                 dead_letters: DeadLetterProbe | None = None, clock: Callable[[], float] = time.time):
        self.client = client
        self.db = db
        self.shards = tuple(shards)
        self.dead_letters = dead_letters
        self.clock = clock

    def read(self) -> Status:
        """Raises StreamUnavailable or StorageError when Redis or the database cannot answer."""
        shards = self.shards
        redis_replies = self._redis_replies(shards)
        offsets = self._offsets([s.key for s in shards])
        now_ms = int(self.clock() * 1000)
        rows = [_shard_status(shard, replies, offsets.get(shard.key), now_ms)
                for shard, replies in zip(shards, redis_replies)]
        dlq = self.dead_letters.read() if self.dead_letters is not None else None
        return Status(now_ms, rows, dlq)

    def _redis_replies(self, shards) -> list[list]:
        per_shard = 5
        with redis_errors():
            pipe = self.client.pipeline(transaction=False)
            for shard in shards:
                pipe.xlen(shard.key)
                pipe.xinfo_groups(shard.key)
                pipe.xpending(shard.key, shard.group)
                pipe.xlen(shard.dead_key)
                pipe.hgetall(shard.last_drain_key)
            replies = pipe.execute(raise_on_error=False)
            for reply in replies:
                if isinstance(reply, (redis.ConnectionError, redis.TimeoutError)):
                    raise reply
        return [replies[i:i + per_shard] for i in range(0, len(replies), per_shard)]

    def _offsets(self, streams: list[str]) -> dict[str, StreamOffset]:
        with database_errors(self.db), _connection(self.db):
            query = StreamOffset.select().where(StreamOffset.stream.in_(streams)).bind(self.db)
            return {row.stream: row for row in query}


@contextlib.contextmanager
def _connection(db: peewee.Database):
    """Use the thread's open connection, or open one for this reading only (and close it)."""
    opened = db.connect(reuse_if_open=True)
    try:
        yield
    finally:
        if opened:
            db.close()


def _shard_status(shard: Shard, replies: list, offset: StreamOffset | None, now_ms: int) -> ShardStatus:
    length, groups, summary, dead, mark = (None if isinstance(r, redis.ResponseError) else r for r in replies)
    group = _group(groups, shard.group)
    oldest = summary.get("min") if group and summary else None
    committed = (offset.last_ms, offset.last_seq) if offset else (0, 0)
    last = last_drain_of(mark)
    return ShardStatus(
        stream=shard.key,
        kind=shard.kind.name,
        length=length or 0,
        lag=group.get("lag") if group else None,
        pending=summary.get("pending", 0) if group and summary else 0,
        oldest_pending_age_ms=max(0, now_ms - parse_id(oldest)[0]) if oldest else None,
        committed_id=format_id(committed),
        committed_age_ms=max(0, now_ms - committed[0]) if committed[0] else None,
        applied=offset.applied if offset else 0,
        dead_letters=dead or 0,
        last_drain_age_ms=max(0, now_ms - last.activity_ms) if last else None,
        drain_running=last.running if last else False,
        last_drain_result=last.result if last else None,
        last_drain_error=last.error if last else None,
    )


def _group(groups, name: str) -> dict | None:
    for group in groups or ():
        group_name = group["name"].decode() if isinstance(group["name"], bytes) else group["name"]
        if group_name == name:
            return group
    return None


class CachedStatus:
    """A StatusReader's last reading, reused for `ttl_ms`; one reading at a time.

    Concurrent callers wait for the reading in progress instead of starting their own, and a
    failure is cached like a result, so a scrape storm against a dead Redis costs one timeout
    per interval.
    """

    def __init__(self, reader: StatusReader, ttl_ms: int, clock: Callable[[], float] = time.monotonic):
        self.reader = reader
        self.ttl_s = ttl_ms / 1000
        self.clock = clock
        self._lock = threading.Lock()
        self._at: float | None = None
        self._value: Status | TrackerError | None = None

    def read(self) -> Status:
        with self._lock:
            if self._at is None or self.clock() - self._at >= self.ttl_s:
                try:
                    self._value = self.reader.read()
                except TrackerError as e:
                    self._value = e
                self._at = self.clock()
            value = self._value
        if isinstance(value, TrackerError):
            raise value
        return value


def all_status(client: Redis, ledger: Ledger, layout: Layout) -> list[ShardStatus]:
    return StatusReader(client, ledger.db, layout.shards()).read().shards



class StatusCollector:
    """The shard figures as Prometheus gauges, read (through a CachedStatus) at scrape time.

    Every web process serves the same figures (they describe Redis and the database, not the
    process): aggregate them with max(), never sum().
    """

    def __init__(self, status: CachedStatus):
        self.status = status

    def collect(self):
        started = time.perf_counter()
        try:
            status = self.status.read()
        except TrackerError as e:
            log.warning("cannot read the stream status for /metrics: %s", e)
            status = None
        yield _gauge("tracker_status_up", "1 when the last reading of Redis and the database succeeded.", [],
                     [((), 0 if status is None else 1)])
        yield _gauge("tracker_status_read_seconds", "Time this scrape spent reading (or waiting for) the status.", [],
                     [((), time.perf_counter() - started)])
        if status is not None:
            yield from _shard_families(status)


def _gauge(name: str, doc: str, labels: list[str], samples) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for values, value in samples:
        family.add_metric(list(values), value)
    return family


#: ShardStatus field -> (metric name, help, scale): ages are exported in seconds.
SHARD_GAUGES = {
    "length": ("tracker_stream_length", "Entries in the stream shard (counted or not, until trimmed).", 1),
    "lag": ("tracker_stream_lag", "Entries not yet delivered to the consumer group (Redis 7+).", 1),
    "pending": ("tracker_stream_pending", "Entries delivered to a drainer and not yet acknowledged.", 1),
    "oldest_pending_age_ms": ("tracker_stream_oldest_pending_age_seconds",
                              "Age of the oldest pending entry (0 when none is pending).", 0.001),
    "committed_age_ms": ("tracker_stream_committed_offset_age_seconds",
                         "Age of the last entry whose event is in the counts.", 0.001),
    "last_drain_age_ms": ("tracker_stream_last_drain_age_seconds",
                          "Time since a drain of the shard last began or ended.", 0.001),
    "dead_letters": ("tracker_stream_dead_letters", "Entries in the shard's dead-letter stream.", 1),
}


def _shard_families(status: Status):
    for field_name, (name, doc, scale) in SHARD_GAUGES.items():
        samples = []
        for shard in status.shards:
            value = getattr(shard, field_name)
            if value is None and field_name == "oldest_pending_age_ms":
                value = 0
            if value is not None:
                samples.append(((shard.stream, shard.kind), value * scale))
        yield _gauge(name, doc, ["stream", "kind"], samples)
    applied = CounterMetricFamily("tracker_stream_applied_events", "Events counted into the database from the shard, "
                                  "in all (from stream_offsets).", labels=["stream", "kind"])
    for shard in status.shards:
        applied.add_metric([shard.stream, shard.kind], shard.applied)
    yield applied
    if status.dead_letter_queue is not None and status.dead_letter_queue.messages is not None:
        yield _gauge("tracker_dramatiq_dead_letters", "Messages in Dramatiq's dead-letter queue (retries exhausted).",
                     ["queue"], [((status.dead_letter_queue.key,), status.dead_letter_queue.messages)])
