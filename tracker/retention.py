"""Trimming the streams: counted events stay for the retention, then go; uncounted ones never do.

`XTRIM S MINID m` removes the entries of S whose ID is below m. The trim of a shard asks for
the highest m its settings want:
- by age: entries older than TRACKER_RETENTION_MS (default 7 days) may go;
- by length, if TRACKER_TRIM_MAX_LEN > 0: the oldest entries beyond that many may go;
and lowers m to the shard's **safe bound** before anything is removed: its committed offset in
the database (stream_offsets), or the oldest entry still pending in its group if that is lower
(pending entries of another consumer, a PHP one for instance, may not be counted). Batches
commit in ID order, so every entry below the committed offset is counted, or dead-lettered; no
setting can make the trim remove an entry that has not been counted. When the uncounted backlog
alone is longer than the maximum length, the stream stays longer: the trim says so in a
warning and in its report (`over_max_len`), and `backlogs()` tells /metrics the same.

The highest m used is kept in `{S}:trimmed-to`: every entry of S at or above it is still in the
stream (trims only ever raise it, in the same script as the XTRIM). Replay uses it to know
whether a range of events is still complete.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis
from redis import Redis

from .aggregate import Ledger, StreamId, format_id, parse_id
from .config import Settings
from .streams import Layout, Shard, redis_errors, text

log = logging.getLogger(__name__)

#: Most entries one trim script skips over to find the length target (bounds its run time).
LENGTH_STEP = 10_000
#: Most trim scripts per shard and run: LENGTH_STEP * this entries trimmed by length at most.
MAX_PASSES = 100

# KEYS: the stream S, {S}:trimmed-to (one slot).
# ARGV: the safe bound, the MINID by age, the maximum length (0: none), LENGTH_STEP.
# Trims S to the highest MINID the age and the length ask for, never above the safe bound, and
# raises {S}:trimmed-to to it. Returns {MINID used, entries removed, length after}.
_TRIM = """
local function less(a, b)
    local am, as = string.match(a, '^(%d+)-(%d+)$')
    local bm, bs = string.match(b, '^(%d+)-(%d+)$')
    am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
    return am < bm or (am == bm and as < bs)
end
local safe = ARGV[1]
local minid = ARGV[2]
if less(safe, minid) then minid = safe end
local max_len = tonumber(ARGV[3])
if max_len > 0 then
    local excess = redis.call('XLEN', KEYS[1]) - max_len
    if excess > 0 then
        local skip = math.min(excess, tonumber(ARGV[4]))
        local head = redis.call('XRANGE', KEYS[1], '-', safe, 'COUNT', skip + 1)
        local by_length = safe
        if #head > skip then by_length = head[skip + 1][1] end
        if less(minid, by_length) then minid = by_length end
    end
end
local removed = redis.call('XTRIM', KEYS[1], 'MINID', minid)
local before = redis.call('GET', KEYS[2])
if not before or less(before, minid) then redis.call('SET', KEYS[2], minid) end
return {minid, removed, redis.call('XLEN', KEYS[1])}
"""


@dataclass(frozen=True)
class Backlog:
    """How much of a shard is not counted yet, against the maximum length."""

    stream: str
    length: int  # entries in the stream
    uncounted: int | None  # not yet delivered (lag) + delivered, not acknowledged; None: Redis < 7
    max_len: int  # TRACKER_TRIM_MAX_LEN (0: no maximum)

    @property
    def over_max_len(self) -> bool:
        """The uncounted entries alone exceed the maximum length: the trim cannot honour it."""
        return self.max_len > 0 and (self.uncounted if self.uncounted is not None else self.length) > self.max_len


@dataclass(frozen=True)
class TrimReport:
    """What one trim of one shard did."""

    stream: str
    minid: str  # entries below this ID were removed (or had been)
    removed: int
    safe_bound: str  # the highest MINID allowed: committed offset, or oldest pending if lower
    held_back: bool  # an entry the settings would trim was kept: it is not counted yet
    backlog: Backlog

    @property
    def over_max_len(self) -> bool:
        return self.backlog.over_max_len


def backlog(client: Redis, shard: Shard, max_len: int) -> Backlog:
    """The shard's length and uncounted entries, from Redis alone (cheap: XLEN, XINFO GROUPS)."""
    with redis_errors():
        length = client.xlen(shard.key)
        try:
            groups = client.xinfo_groups(shard.key)
        except redis.ResponseError:  # no stream yet
            groups = []
    group = next((g for g in groups if text(g["name"]) == shard.group), None)
    uncounted = None
    if group is not None and group.get("lag") is not None:
        uncounted = int(group["lag"]) + int(group["pending"])
    return Backlog(shard.key, length, uncounted, max_len)


def backlogs(client: Redis, layout: Layout, max_len: int) -> list[Backlog]:
    """Every shard's backlog: what a metrics endpoint exports (see `Backlog.over_max_len`)."""
    return [backlog(client, shard, max_len) for shard in layout.shards()]


class Trimmer:
    """Trims the shards of one Redis, bounded by the offsets committed in one database."""

    def __init__(self, client: Redis, ledger: Ledger, layout: Layout, settings: Settings):
        self.client = client
        self.ledger = ledger
        self.layout = layout
        self.retention_ms = settings.retention_ms
        self.max_len = settings.trim_max_len
        self._trim = client.register_script(_TRIM)

    def trim_all(self, now_ms: int | None = None) -> list[TrimReport]:
        return [self.trim(shard, now_ms) for shard in self.layout.shards()]

    def trim(self, shard: Shard, now_ms: int | None = None) -> TrimReport:
        """Trim `shard` as far as its settings ask and its safe bound allows."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        safe = self.safe_bound(shard)
        by_age = (max(now_ms - self.retention_ms, 0), 0)
        keys, removed = [shard.key, shard.trimmed_to_key], 0
        for _ in range(MAX_PASSES):
            with redis_errors():
                minid, step_removed, length = self._trim(
                    keys=keys, args=[format_id(safe), format_id(by_age), self.max_len, LENGTH_STEP])
            removed += step_removed
            if not (self.max_len and length > self.max_len and step_removed and parse_id(minid) < safe):
                break
        over_length = bool(self.max_len and length > self.max_len)
        report = TrimReport(shard.key, text(minid), removed, format_id(safe),
                            held_back=over_length or (by_age > safe and self._uncounted_before(shard, safe, by_age)),
                            backlog=backlog(self.client, shard, self.max_len))
        self._warn(report)
        return report

    def safe_bound(self, shard: Shard) -> StreamId:
        """The highest MINID that removes only counted entries."""
        committed = self.ledger.committed(shard.key)
        with redis_errors():
            try:
                oldest = self.client.xpending(shard.key, shard.group).get("min")
            except redis.ResponseError:  # no stream or group yet: nothing was ever counted
                return (0, 0)
        return min(committed, parse_id(oldest)) if oldest else committed

    def _uncounted_before(self, shard: Shard, safe: StreamId, cutoff: StreamId) -> bool:
        """Is there an entry above the safe bound (not counted) but older than `cutoff`?"""
        with redis_errors():
            first = self.client.xrange(shard.key, f"({format_id(safe)}", "+", count=1)
        return bool(first) and parse_id(first[0][0]) < cutoff

    def _warn(self, report: TrimReport) -> None:
        backlog = report.backlog
        if report.over_max_len:
            counted = (f"{backlog.uncounted} entries are not counted yet" if backlog.uncounted is not None else
                       f"{backlog.length} entries are left, uncounted ones among them (Redis < 7 cannot tell how many)")
            log.warning("%s: %s, more than TRACKER_TRIM_MAX_LEN=%d; the stream keeps them (nothing uncounted is "
                        "ever trimmed): are the drains failing or too slow?", report.stream, counted, self.max_len)
        elif report.held_back:
            log.warning("%s: entries the retention settings would trim are not counted yet; the stream keeps them "
                        "(committed up to %s)", report.stream, report.safe_bound)
