"""What each drain did, recorded where an on-call engineer looks: metrics, Redis, the log.

The drain actor calls `DrainLog.finished` (or `failed`) once per drain message. Besides the
worker's metrics and a log line with structured fields, it leaves a mark in Redis, the hash
`{S}:last-drain` in the shard's own cluster slot:

    at_ms        when the drain ended (Unix ms)
    result       ok | handed_over (a newer drainer took the shard) | error
    entries      entries read;  applied, dead: counted, dead-lettered
    duration_ms  how long the drain message ran
    error        the error of a failed drain ("" otherwise)

`tracker status` and /metrics read it as the shard's "last drain". A drain of an idle shard
commits nothing, so the database's `committed_at_ms` alone cannot tell an idle shard from one
that no worker drains; this mark can. A drain that found the shard busy (another drainer held
its lease) did nothing and leaves no mark.
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
    at_ms: int
    result: str
    entries: int
    duration_ms: int
    error: str | None


def last_drain_of(mark: dict | None) -> LastDrain | None:
    """The mark's fields (as HGETALL returns them), or None when there is no mark."""
    if not mark:
        return None
    fields = {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
              for k, v in mark.items()}
    try:
        return LastDrain(int(fields["at_ms"]), fields.get("result", "ok"), int(fields.get("entries", 0)),
                         int(fields.get("duration_ms", 0)), fields.get("error") or None)
    except (KeyError, ValueError):
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
        fields = {"at_ms": int(self.clock() * 1000), "result": result, "entries": entries, "applied": applied,
                  "dead": dead, "duration_ms": int(seconds * 1000), "error": error}
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
