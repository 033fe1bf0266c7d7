"""What each drain did, recorded where an on-call engineer looks: metrics, Redis, the log.

The drain actor calls `DrainLog.started` before each drain message, and `finished` (or
`failed`) after it. Besides the worker's metrics and a log line with structured fields, they
keep a mark in Redis, the hash `{S}:last-drain` in the shard's own cluster slot:

    started_at_ms  when the latest drain message of S began (Unix ms)
    ended_at_ms    when the latest one ended, and how:
    result         ok | handed_over (a newer drainer took the shard) | error
    entries        entries read;  applied, dead: counted, dead-lettered
    duration_ms    how long it ran
    error          the error of a failed drain ("" otherwise)

`tracker status` and /metrics read it as the shard's "last drain": a drain is running while
started_at_ms is the later of the two, and the time since the later of the two is the age of
the last drain activity. That age stays below the drain budget (5 s) while workers drain the
shard; it grows when none does, or when a drain hangs or was killed mid-run. A drain of an
idle shard commits nothing, so the database's `committed_at_ms` alone could not tell an idle
shard from an abandoned one. A drain that found the shard busy (another drainer held its lease)
leaves no end mark: the drainer that holds the lease will.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from redis import Redis

from .drainer import DrainReport
from .errors import StreamUnavailable
from .metrics import Metrics
from .streams import Shard, redis_errors

log = logging.getLogger(__name__)

#: A mark not refreshed for this long (ms) expires: it belonged to a shard that no longer exists.
MARK_TTL_MS = 7 * 24 * 3600 * 1000
#: Longest error text kept in a mark (characters).
MAX_ERROR_CHARS = 300


@dataclass(frozen=True)
class LastDrain:
    started_at_ms: int  # 0: unknown
    ended_at_ms: int  # 0: none has ended yet
    result: str | None
    entries: int
    duration_ms: int
    error: str | None

    @property
    def running(self) -> bool:
        return self.started_at_ms > self.ended_at_ms

    @property
    def activity_ms(self) -> int:
        """When a drain last began or ended."""
        return max(self.started_at_ms, self.ended_at_ms)


def last_drain_of(mark: dict | None) -> LastDrain | None:
    """The mark's fields (as HGETALL returns them), or None when there is no mark."""
    if not mark:
        return None
    fields = {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
              for k, v in mark.items()}
    try:
        return LastDrain(int(fields.get("started_at_ms", 0)), int(fields.get("ended_at_ms", 0)),
                         fields.get("result") or None, int(fields.get("entries", 0)),
                         int(fields.get("duration_ms", 0)), fields.get("error") or None)
    except ValueError:
        return None  # not written by us; ignore rather than fail a status reading


def drain_result(report: DrainReport) -> str:
    if report.busy:
        return "busy"
    return "handed_over" if report.lost_lease else "ok"


class DrainLog:
    """Records drains into the metrics, the last-drain marks and the log. Never raises."""

    def __init__(self, client: Redis, metrics: Metrics, clock: Callable[[], float] = time.time):
        self.client = client
        self.metrics = metrics
        self.clock = clock

    def started(self, shard: Shard) -> None:
        self._write(shard, {"started_at_ms": self._now_ms()})

    def finished(self, shard: Shard, report: DrainReport, seconds: float) -> None:
        result = drain_result(report)
        if result == "busy":
            self.metrics.drain_result(shard.key, result, None)
            return
        self.metrics.drain_result(shard.key, result, seconds)
        self.metrics.drain_batches(shard.key, report.batch_sizes, report.batch_seconds)
        self.metrics.drained(shard.key, report.applied, report.skipped, report.dead)
        self._mark(shard, result, seconds, report.entries, report.applied, report.dead)
        log.debug("drained %s", shard.key, extra={
            "stream": shard.key, "result": result, "entries": report.entries, "applied": report.applied,
            "skipped": report.skipped, "dead": report.dead, "commits": report.commits,
            "duration_ms": round(seconds * 1000, 1), "offset": f"{report.offset[0]}-{report.offset[1]}"})

    def failed(self, shard: Shard, seconds: float, error: BaseException) -> None:
        self.metrics.drain_result(shard.key, "error", seconds)
        text = f"{type(error).__name__}: {error}"[:MAX_ERROR_CHARS]
        self._mark(shard, "error", seconds, 0, 0, 0, text)
        log.warning("drain of %s failed after %.0f ms: %s", shard.key, seconds * 1000, text, extra={
            "stream": shard.key, "result": "error", "duration_ms": round(seconds * 1000, 1), "error": text})

    def _mark(self, shard: Shard, result: str, seconds: float, entries: int, applied: int, dead: int,
              error: str = "") -> None:
        self._write(shard, {"ended_at_ms": self._now_ms(), "result": result, "entries": entries, "applied": applied,
                            "dead": dead, "duration_ms": int(seconds * 1000), "error": error})

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _write(self, shard: Shard, fields: dict) -> None:
        try:
            with redis_errors():
                pipe = self.client.pipeline(transaction=False)
                pipe.hset(shard.last_drain_key, mapping=fields)
                pipe.pexpire(shard.last_drain_key, MARK_TTL_MS)
                pipe.execute()
        except StreamUnavailable as e:  # the mark is advisory; the drain's own outcome stands
            log.debug("could not record the last drain of %s: %s", shard.key, e)
        except redis.RedisError as e:
            log.warning("could not record the last drain of %s: %s", shard.key, e)
