"""From a batch of events to daily counts, committed exactly once.

`Ledger.commit` is the one transaction of the exactly-once protocol (DESIGN.md, and the
README's "How it works"): under the shard's offset row lock it refuses a stale drainer (fence),
drops the events at or below the committed stream ID (already counted by an earlier commit
whose XACK was lost), adds the rest with one multi-row upsert, and moves the offset, all or
nothing.
"""

from __future__ import annotations

import datetime
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import peewee

from .errors import FencedOut
from .events import Kind
from .models import StreamOffset, count_field, counts_model, database_errors, is_mysql

#: Rows per upsert statement; keeps SQLite under its bound-variable limit (3 per row).
UPSERT_CHUNK_ROWS = 5_000

StreamId = tuple[int, int]
#: (stream ID, ad_id, ts) of a valid event, as the drain hands it over.
Event = tuple[StreamId, int, int]


def parse_id(entry_id: bytes | str) -> StreamId:
    """A stream entry ID ("1700000000000-3") as a comparable (ms, seq) pair."""
    if isinstance(entry_id, bytes):
        entry_id = entry_id.decode()
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def format_id(stream_id: StreamId) -> str:
    return f"{stream_id[0]}-{stream_id[1]}"


class DayOf:
    """ts (Unix seconds) -> the date in the reporting timezone, computed once per distinct second."""

    def __init__(self, tz: ZoneInfo):
        self.tz = tz
        self._cache: dict[int, datetime.date] = {}

    def __call__(self, ts: int) -> datetime.date:
        day = self._cache.get(ts)
        if day is None:
            if len(self._cache) > 100_000:
                self._cache.clear()
            day = self._cache[ts] = datetime.datetime.fromtimestamp(ts, self.tz).date()
        return day


def fold(events: Iterable[Event], day_of: DayOf) -> Counter:
    """Count events per (ad_id, date)."""
    counts: Counter = Counter()
    for _, ad_id, ts in events:
        counts[ad_id, day_of(ts)] += 1
    return counts


@dataclass(frozen=True)
class CommitResult:
    applied: int  # events added to the counts by this commit
    skipped: int  # events at or below the committed offset: counted before, not again
    offset: StreamId  # the committed offset after this commit


class Ledger:
    """The counts tables and the stream offsets of one database."""

    def __init__(self, db: peewee.Database, tz: ZoneInfo):
        self.db = db
        self.day_of = DayOf(tz)

    def claim(self, stream: str) -> tuple[int, StreamId]:
        """Become the newest drainer of `stream`: bump its fence; return (token, committed offset)."""
        self._ensure_offset_row(stream)
        with database_errors(self.db), self._transaction():
            row = self._locked_offset(stream)
            if row is None:
                StreamOffset.insert(stream=stream, fence=1).execute(self.db)
                return 1, (0, 0)
            token = row.fence + 1
            StreamOffset.update(fence=token).where(StreamOffset.stream == stream).execute(self.db)
            return token, (row.last_ms, row.last_seq)

    def _ensure_offset_row(self, stream: str) -> None:
        """Create the stream's offsets row if missing, outside the claim's transaction.

        On MariaDB, SELECT ... FOR UPDATE of a missing row locks the gap where it would go; two
        first claims of different shards in one gap then deadlock on their INSERTs (seen with 8
        shards claimed at once). With the row in place, the claim locks that row only.
        """
        with database_errors(self.db):
            StreamOffset.insert(stream=stream).on_conflict_ignore().execute(self.db)

    def offset_row(self, stream: str) -> StreamOffset | None:
        """The offsets table's row of `stream` (None before its first drain)."""
        with database_errors(self.db):
            return StreamOffset.select().where(StreamOffset.stream == stream).bind(self.db).first()

    def committed(self, stream: str) -> StreamId:
        """The committed offset of `stream` ((0, 0) before its first commit)."""
        row = self.offset_row(stream)
        return (row.last_ms, row.last_seq) if row else (0, 0)

    def commit(self, kind: Kind, stream: str, token: int, events: list[Event], last_id: StreamId) -> CommitResult:
        """Add `events` (read from `stream`, in ID order, up to `last_id`) to the counts, once.

        Raises FencedOut when a newer drainer has claimed the stream since `token` was issued.
        """
        with database_errors(self.db), self._transaction():
            row = self._locked_offset(stream)
            if row is None or row.fence != token:
                raise FencedOut(f"{stream}: fence is {row.fence if row else None}, this drainer holds {token}")
            committed = (row.last_ms, row.last_seq)
            fresh = [event for event in events if event[0] > committed]
            if fresh:
                self._upsert(kind, fold(fresh, self.day_of))
            offset = max(committed, last_id)
            if fresh or offset != committed:
                self._move_offset(stream, offset, len(fresh))
        return CommitResult(applied=len(fresh), skipped=len(events) - len(fresh), offset=offset)

    # -- inside the transaction ----------------------------------------------------------------

    def _transaction(self):
        # SQLite: take the write lock at BEGIN, the closest it has to SELECT ... FOR UPDATE.
        return self.db.atomic() if is_mysql(self.db) else self.db.atomic("IMMEDIATE")

    def _locked_offset(self, stream: str) -> StreamOffset | None:
        query = StreamOffset.select().where(StreamOffset.stream == stream)
        if is_mysql(self.db):
            query = query.for_update()
        return query.bind(self.db).first()

    def _upsert(self, kind: Kind, counts: Counter) -> None:
        model, column = counts_model(kind), count_field(kind)
        rows = sorted((ad_id, day, n) for (ad_id, day), n in counts.items())  # one lock order: no deadlocks
        if is_mysql(self.db):
            conflict = {"update": {column: column + peewee.fn.VALUES(column)}}
        else:
            conflict = {"conflict_target": [model.ad_id, model.date], "update": {column: column + getattr(peewee.EXCLUDED, column.name)}}
        for start in range(0, len(rows), UPSERT_CHUNK_ROWS):
            chunk = rows[start:start + UPSERT_CHUNK_ROWS]
            model.insert_many(chunk, fields=[model.ad_id, model.date, column]).on_conflict(**conflict).execute(self.db)

    def _move_offset(self, stream: str, offset: StreamId, applied: int) -> None:
        StreamOffset.update(
            last_ms=offset[0], last_seq=offset[1], applied=StreamOffset.applied + applied,
            committed_at_ms=int(time.time() * 1000),
        ).where(StreamOffset.stream == stream).execute(self.db)
