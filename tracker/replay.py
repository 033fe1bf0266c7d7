"""Replay: recompute a range of days' counts from the events still in the streams, and replace them.

The stream entries are the source of truth; the daily counts are derived from them. Replay
repairs the counts of some days (after a hand edit of the tables, a bug) by
counting those days' events again and *replacing* the rows, never adding to them, so running
it twice gives the same totals. Drains keep running meanwhile, and it stays exact:

- Only entries at or below each shard's committed offset are counted: those are exactly the
  ones the counts hold. Entries above it are added by the drains afterwards, as usual.
- The replacement is one transaction that first locks the `stream_offsets` rows of every shard
  of the kind (SELECT ... FOR UPDATE; SQLite's write lock), so the drains of that kind wait and
  no offset moves between the last read and the write.
- So that the drains wait only briefly, most of the scan runs before that lock, up to the
  offsets of that moment; under the lock, only what was committed since is read.
- An event is dated by its `ts`, which lies within `clock_skew_ms` of its entry ID's time
  (ingest refuses a client `ts` further off). Entries are scanned from the first day's midnight
  minus the skew to the midnight after the last day plus the skew, and kept when their `ts`
  falls on one of the days, in the reporting timezone.
- Entries that do not decode were never counted, nor were those the drains moved to the
  dead-letter stream: replay leaves both out too.

It refuses (ReplayRefused, nothing changed) when a shard may no longer hold every entry of that
window that the counts hold: see `check_holds`.
"""

from __future__ import annotations

import datetime
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import peewee
import redis
from redis import Redis

from .aggregate import UPSERT_CHUNK_ROWS, DayOf, StreamId, format_id, parse_id, upsert_sql
from .config import Settings
from .errors import InvalidEvent, ReplayRefused
from .events import Kind, decode_entry
from .models import (StreamOffset, as_date, count_field, counts_model, database_errors, ensure_offset_rows, is_mysql,
                     write_transaction)
from .streams import Layout, Shard, redis_errors

log = logging.getLogger(__name__)

#: Entries per XRANGE while scanning.
SCAN_PAGE_ENTRIES = 5_000
#: Added to the skew on both sides: `ts` is whole seconds, rounded down (ms).
TS_ROUNDING_MS = 1_000
#: A shard's key holding the MINID the trim actor last trimmed it to (`{S}:trimmed-to`).
TRIMMED_TO_SUFFIX = "trimmed-to"
MAX_SEQ = 2**64 - 1

#: progress(fraction done in 0..1, entries read so far)
Progress = Callable[[float, int], None]


def _no_progress(fraction: float, entries: int) -> None:
    pass


@dataclass(frozen=True)
class Window:
    """The days to replay, and the stream IDs whose entries may carry events of those days."""

    start: datetime.date
    end: datetime.date
    lo: StreamId
    hi: StreamId

    @classmethod
    def of(cls, start: datetime.date, end: datetime.date, tz: ZoneInfo, skew_ms: int) -> Window:
        if end < start:
            raise ValueError("'from' must not be after 'to'")
        slack = skew_ms + TS_ROUNDING_MS
        lo_ms = max(0, _midnight_ms(start, tz) - slack)
        hi_ms = _midnight_ms(end + datetime.timedelta(days=1), tz) + slack
        return cls(start, end, (lo_ms, 0), (hi_ms, MAX_SEQ))

    def holds(self, day: datetime.date) -> bool:
        return self.start <= day <= self.end


def _midnight_ms(day: datetime.date, tz: ZoneInfo) -> int:
    return int(datetime.datetime.combine(day, datetime.time(), tzinfo=tz).timestamp() * 1000)


def next_id(stream_id: StreamId) -> StreamId:
    ms, seq = stream_id
    return (ms + 1, 0) if seq >= MAX_SEQ else (ms, seq + 1)


# -- does the stream still hold the window? -----------------------------------------------------

@dataclass(frozen=True)
class StreamFacts:
    """What Redis can tell about what a shard's stream has lost."""

    length: int  # 0 when the stream is missing
    first_id: StreamId | None
    offset_entry_present: bool  # the last counted entry is still in the stream
    trimmed_to: StreamId | None  # `{S}:trimmed-to`, recorded by the trim actor
    max_deleted: StreamId | None  # Redis 7: the largest ID ever deleted (XDEL)
    entries_added: int | None  # Redis 7: entries ever added, deleted or not


def stream_facts(client: Redis, shard: Shard, offset: StreamId) -> StreamFacts:
    with redis_errors():
        try:
            info = client.xinfo_stream(shard.key)
        except redis.ResponseError:  # no such key
            info = {}
        first = info.get("first-entry")
        trimmed_to = client.get(shard.aux(TRIMMED_TO_SUFFIX))
        present = bool(info) and bool(client.xrange(shard.key, format_id(offset), format_id(offset), count=1))
    max_deleted = info.get("max-deleted-entry-id")
    return StreamFacts(
        length=int(info.get("length", 0)),
        first_id=parse_id(first[0]) if first else None,
        offset_entry_present=present,
        trimmed_to=parse_id(trimmed_to) if trimmed_to else None,
        max_deleted=parse_id(max_deleted) if max_deleted is not None else None,
        entries_added=int(info["entries-added"]) if "entries-added" in info else None,
    )


def check_holds(shard: Shard, window: Window, offset: StreamId, applied: int, facts: StreamFacts) -> None:
    """Raise ReplayRefused unless `shard` provably holds every entry in [window.lo, offset].

    Entries above the offset do not matter (they are not in the counts), so a shard whose offset
    is below the window holds all that matters. Otherwise it is refused when, conservatively:
    the stream is empty or missing; the trim actor trimmed it above the window's start; Redis 7
    says an entry at or after the start was deleted; fewer entries were ever added to it than
    were counted from it (it was lost and recreated); the last counted entry is gone; or its
    first entry lies after the start and it cannot be shown that nothing before it was removed
    (Redis 7: nothing was ever removed; older Redis cannot tell).
    """
    if offset == (0, 0) or offset < window.lo:
        return
    start = format_id(window.lo)

    def refuse(why: str):
        raise ReplayRefused(f"{shard.key} may no longer hold every entry from {start} to {format_id(offset)} "
                            f"(the range plus the clock skew allowance): {why}. Nothing was changed.")
    if facts.length == 0:
        refuse(f"the stream is empty or missing, yet events up to {format_id(offset)} were counted from it")
    if facts.trimmed_to is not None and facts.trimmed_to > window.lo:
        refuse(f"it was trimmed to {format_id(facts.trimmed_to)}")
    if facts.max_deleted is not None and facts.max_deleted >= window.lo:
        refuse(f"entries up to {format_id(facts.max_deleted)} were deleted from it")
    if facts.entries_added is not None and applied > facts.entries_added:
        refuse(f"{applied} events were counted from it but only {facts.entries_added} entries were ever added "
               "to it: the stream was lost and created anew")
    if not facts.offset_entry_present:
        refuse(f"the last counted entry {format_id(offset)} is gone")
    never_removed = facts.entries_added is not None and facts.entries_added == facts.length
    if facts.first_id is not None and facts.first_id > window.lo and not never_removed:
        refuse(f"its first entry is {format_id(facts.first_id)}, and older entries may have been trimmed")


# -- counting -------------------------------------------------------------------------------------

@dataclass
class Tally:
    """Events counted per (ad_id, day) of the window, and how many entries were read."""

    counts: Counter = field(default_factory=Counter)
    entries: int = 0


def dead_origins(client: Redis, shard: Shard) -> set[bytes]:
    """IDs of the shard's entries that the drains moved to the dead-letter stream."""
    origins: set[bytes] = set()
    start = "-"
    with redis_errors():
        while True:
            page = client.xrange(shard.dead_key, start, "+", count=SCAN_PAGE_ENTRIES)
            origins.update(fields[b"origin_id"] for _, fields in page if b"origin_id" in fields)
            if len(page) < SCAN_PAGE_ENTRIES:
                return origins
            start = format_id(next_id(parse_id(page[-1][0])))


class ShardScan:
    """Reads one shard's entries in [first, last], counting the events dated within the window."""

    def __init__(self, client: Redis, shard: Shard, window: Window, day_of: DayOf, dead: set[bytes]):
        self.client = client
        self.shard = shard
        self.window = window
        self.day_of = day_of
        self.dead = dead

    def run(self, first: StreamId, last: StreamId, tally: Tally, progress: Callable[[StreamId], None]) -> None:
        while first <= last:
            with redis_errors():
                page = self.client.xrange(self.shard.key, format_id(first), format_id(last), count=SCAN_PAGE_ENTRIES)
            self._count(page, tally)
            if len(page) < SCAN_PAGE_ENTRIES:
                return
            first = next_id(parse_id(page[-1][0]))
            progress(first)

    def _count(self, page: list, tally: Tally) -> None:
        tally.entries += len(page)
        for entry_id, fields in page:
            if entry_id in self.dead:
                continue
            try:
                ad_id, ts = decode_entry(entry_id, fields)
            except InvalidEvent:
                continue
            day = self.day_of(ts)
            if self.window.holds(day):
                tally.counts[ad_id, day] += 1


# -- the result -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class DayChange:
    date: datetime.date
    old: int  # the day's total before
    new: int  # the day's total recomputed
    rows_changed: int  # ads whose count for the day differs


@dataclass
class ReplayResult:
    kind: Kind
    start: datetime.date
    end: datetime.date
    shards: int
    entries: int  # stream entries read
    days: list[DayChange]
    written: bool  # False for a dry run

    @property
    def old_total(self) -> int:
        return sum(d.old for d in self.days)

    @property
    def new_total(self) -> int:
        return sum(d.new for d in self.days)


def day_changes(window: Window, old: dict[tuple[int, datetime.date], int], new: Counter) -> list[DayChange]:
    days = [window.start + datetime.timedelta(days=i) for i in range((window.end - window.start).days + 1)]
    old_by_day: Counter = Counter()
    new_by_day: Counter = Counter()
    changed: Counter = Counter()
    for (ad_id, day), n in old.items():
        old_by_day[day] += n
    for (ad_id, day), n in new.items():
        new_by_day[day] += n
    for key in old.keys() | new.keys():
        if old.get(key, 0) != new.get(key, 0):
            changed[key[1]] += 1
    return [DayChange(day, old_by_day[day], new_by_day[day], changed[day]) for day in days]


# -- the replay -----------------------------------------------------------------------------------

class Replayer:
    """Replays ranges of days of one Redis into one database."""

    def __init__(self, client: Redis, db: peewee.Database, layout: Layout, settings: Settings):
        self.client = client
        self.db = db
        self.layout = layout
        self.tz = settings.tz
        self.skew_ms = settings.clock_skew_ms

    def replay(self, kind: Kind, start: datetime.date, end: datetime.date, dry_run: bool = False,
               progress: Progress = _no_progress) -> ReplayResult:
        """Recompute `kind`'s counts for the days start..end and replace them (unless `dry_run`).

        Raises ReplayRefused when a shard may no longer hold the whole range; nothing is changed.
        """
        window = Window.of(start, end, self.tz, self.skew_ms)
        shards = self.layout.shards(kind)
        day_of = DayOf(self.tz)
        tally = Tally()
        # Before the lock: everything up to the offsets of this moment.
        before = self._offsets(shards, lock=False)
        dead = {shard.key: dead_origins(self.client, shard) for shard in shards}
        self._check(shards, window, before)
        self._scan_all(shards, window, before, day_of, dead, tally, progress)
        self._ensure_offset_rows(shards)
        with database_errors(self.db), write_transaction(self.db) as transaction:
            # Under the lock: what the drains committed meanwhile; then check nothing was trimmed
            # away while we read (a trim never passes the offsets, which are now held still).
            now = self._offsets(shards, lock=True)
            self._catch_up(shards, window, before, now, day_of, dead, tally)
            self._check(shards, window, now)
            old = self._rows(kind, window)
            changes = day_changes(window, old, tally.counts)
            if dry_run:
                transaction.rollback()
            else:
                self._replace(kind, window, tally.counts)
        progress(1.0, tally.entries)
        result = ReplayResult(kind, start, end, len(shards), tally.entries, changes, written=not dry_run)
        log.info("replay of %s %s..%s: %d entries read, %d -> %d events%s", kind.plural, start, end,
                 tally.entries, result.old_total, result.new_total, " (dry run)" if dry_run else "")
        return result

    def _check(self, shards, window: Window, offsets: dict) -> None:
        for shard in shards:
            offset, applied = offsets[shard.key]
            check_holds(shard, window, offset, applied, stream_facts(self.client, shard, offset))

    def _scan_all(self, shards, window: Window, offsets: dict, day_of: DayOf, dead: dict, tally: Tally,
                  progress: Progress) -> None:
        spans = {s.key: (window.lo, min(window.hi, offsets[s.key][0])) for s in shards}
        total_ms = sum(max(0, last[0] - first[0]) for first, last in spans.values()) or 1
        done_ms = 0
        for shard in shards:
            first, last = spans[shard.key]

            def report(at: StreamId, base=done_ms, origin=first[0]):
                progress(min(1.0, (base + at[0] - origin) / total_ms), tally.entries)
            ShardScan(self.client, shard, window, day_of, dead[shard.key]).run(first, last, tally, report)
            done_ms += max(0, last[0] - first[0])
            progress(min(1.0, done_ms / total_ms), tally.entries)

    def _catch_up(self, shards, window: Window, before: dict, now: dict, day_of: DayOf, dead: dict,
                  tally: Tally) -> None:
        for shard in shards:
            fresh_dead = dead_origins(self.client, shard) - dead[shard.key]
            scanned_to = min(window.hi, before[shard.key][0])
            if any(window.lo <= parse_id(origin) <= scanned_to for origin in fresh_dead):
                raise ReplayRefused(f"{shard.key}: entries already read were moved to the dead-letter stream "
                                    "during the replay; run it again. Nothing was changed.")
            first = max(window.lo, next_id(before[shard.key][0]))
            last = min(window.hi, now[shard.key][0])
            ShardScan(self.client, shard, window, day_of, dead[shard.key] | fresh_dead).run(
                first, last, tally, lambda at: None)

    # -- the database -------------------------------------------------------------------------

    def _offsets(self, shards: Iterable[Shard], lock: bool) -> dict[str, tuple[StreamId, int]]:
        """(committed offset, events applied) per shard; with `lock`, the rows stay locked."""
        keys = sorted(shard.key for shard in shards)  # one lock order, as the drains lock one row
        query = StreamOffset.select().where(StreamOffset.stream.in_(keys)).order_by(StreamOffset.stream)
        if lock and is_mysql(self.db):
            query = query.for_update()
        with database_errors(self.db):
            rows = {row.stream: ((row.last_ms, row.last_seq), row.applied) for row in query.bind(self.db)}
        return {key: rows.get(key, ((0, 0), 0)) for key in keys}

    def _ensure_offset_rows(self, shards: Iterable[Shard]) -> None:
        """Create missing offset rows, so every shard's row can be locked (its drain would anyway)."""
        ensure_offset_rows(self.db, [shard.key for shard in shards])

    def _rows(self, kind: Kind, window: Window) -> dict[tuple[int, datetime.date], int]:
        model, column = counts_model(kind), count_field(kind)
        query = model.select(model.ad_id, model.date, column).where(model.date.between(window.start, window.end))
        return {(ad_id, as_date(day)): int(n) for ad_id, day, n in query.bind(self.db).tuples()}

    def _replace(self, kind: Kind, window: Window, counts: Counter) -> None:
        model = counts_model(kind)
        model.delete().where(model.date.between(window.start, window.end)).execute(self.db)
        rows = sorted((ad_id, day, n) for (ad_id, day), n in counts.items())
        for at in range(0, len(rows), UPSERT_CHUNK_ROWS):  # the drains' statement: an insert, the days being empty
            self.db.execute_sql(upsert_sql(kind, rows[at:at + UPSERT_CHUNK_ROWS], is_mysql(self.db)))

