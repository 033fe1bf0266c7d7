"""The drain of one stream shard: lease, read, sort out, commit once, acknowledge.

One drain call is one Dramatiq message. It holds the shard's lease for its whole run and reads
the shard's pending entries first (left by a drainer that died before its XACK), then new ones,
for up to `drain_budget_ms`: while a backlog is waiting it reads and commits as fast as it can;
when caught up it waits on a blocking XREAD (up to `drain_poll_ms` at a time) for new entries,
so an event is usually counted a few milliseconds after it was stored. With `drain_poll_ms`
at 0 it returns as soon as it is caught up.

Why this counts every event exactly once, whatever dies when:
- entries are acknowledged only after the transaction that counted them committed, so a crash
  before the commit leaves them pending, and the next drainer reads them again;
- that transaction also stores the last counted ID (the offset), so a crash between the commit
  and the XACK leaves entries pending that the next drainer recognises as counted (at or below
  the offset), skips and acknowledges;
- reads happen only under the lease (checked in the read's own Redis transaction, WATCH /
  EXEC), so a drainer that lost its lease can never read entries after a newer drainer did,
  and batches commit in ID order, which is what makes "at or below the offset means counted"
  true;
- the database refuses a commit whose fencing token is older than the newest drainer's.
"""

from __future__ import annotations

import logging
import operator
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .aggregate import Batch, CommitResult, Ledger, StreamId, parse_id
from .config import Settings
from .errors import FencedOut, InvalidEvent, LeaseLost
from .events import decode_entry, parse_ad_id, parse_ts
from .isolation import commit_isolating
from .lease import Lease
from .streams import Entry, RawEntry, Shard, ShardReader

log = logging.getLogger(__name__)

PENDING_FROM_START = b"0"
NEW_ENTRIES = ">"


@dataclass
class DrainReport:
    """What one drain did; logged, and returned by the actor for tests and the CLI."""

    stream: str
    busy: bool = False  # another drainer holds the lease: nothing done
    lost_lease: bool = False  # stopped because a newer drainer took over
    reads: int = 0
    entries: int = 0
    applied: int = 0
    skipped: int = 0
    dead: int = 0
    commits: int = 0
    offset: StreamId = (0, 0)
    batch_sizes: list[int] = field(default_factory=list)
    batch_seconds: list[float] = field(default_factory=list)  # per batch: its reads, commit and XACK


@dataclass
class _Batch:
    entries: list[RawEntry]
    full: bool  # the last read returned as many entries as asked: more may be waiting


class Drainer:
    """Drains shards of one Redis into one database."""

    def __init__(self, reader: ShardReader, ledger: Ledger, settings: Settings,
                 clock: Callable[[], float] = time.monotonic):
        self.reader = reader
        self.ledger = ledger
        self.settings = settings
        self.clock = clock

    def drain(self, shard: Shard, keep_alive: Callable[[], None] | None = None,
              stopping: Callable[[], bool] | None = None) -> DrainReport:
        """Drain `shard` for up to the time budget. Safe to call concurrently and repeatedly.

        `keep_alive` is called between batches; when `stopping()` turns true (the worker is
        shutting down) the drain ends after its current batch instead of using its budget.
        """
        report = DrainReport(shard.key)
        lease = Lease(self.reader.client, shard.lease_key, self.settings.lease_ttl_ms)
        if not lease.acquire():
            report.busy = True
            return report
        try:
            token, report.offset = self.ledger.claim(shard.key)
            self._run(shard, lease, token, report, keep_alive or (lambda: None), stopping or (lambda: False))
        except (LeaseLost, FencedOut) as e:
            # Not a failure: a newer drainer owns the shard, and what we read is pending for it.
            log.info("drain of %s handed over: %s", shard.key, e)
            report.lost_lease = True
        finally:
            lease.release()
        return report

    def _run(self, shard: Shard, lease: Lease, token: int, report: DrainReport, keep_alive, stopping) -> None:
        deadline = self.clock() + self.settings.drain_budget_ms / 1000
        cursor: bytes | str = PENDING_FROM_START
        while True:
            started = self.clock()
            batch = self._gather(shard, lease, cursor, report)
            if batch.entries:
                self._apply(shard, lease, token, batch.entries, report)
                report.batch_seconds.append(self.clock() - started)
            if cursor != NEW_ENTRIES:
                if not batch.full:
                    cursor = NEW_ENTRIES  # the pending list is done: on to new entries
                    continue
                cursor = batch.entries[-1][0]
            remaining = deadline - self.clock()
            if remaining <= 0 or stopping() or (not batch.full and not self.settings.drain_poll_ms):
                return
            keep_alive()
            if not batch.full:
                self.reader.wait(shard, min(self.settings.drain_poll_ms, int(remaining * 1000)))

    def _gather(self, shard: Shard, lease: Lease, cursor, report: DrainReport) -> _Batch:
        """Up to `reads_per_commit` reads, stopping at the first that is not full."""
        entries: list[RawEntry] = []
        size = self.settings.batch_size
        for _ in range(self.settings.reads_per_commit):
            got = self.reader.read(shard, lease.token, lease.ttl_ms, size, cursor)
            report.reads += 1
            entries += got
            if len(got) < size:
                return _Batch(entries, full=False)
            if cursor != NEW_ENTRIES:
                cursor = got[-1][0]
        return _Batch(entries, full=True)

    def _apply(self, shard: Shard, lease: Lease, token: int, entries: list[RawEntry], report: DrainReport) -> None:
        valid, poison = sort_out(entries, report.offset)
        if poison:
            lost = sum(1 for _, reason in poison if reason == DELETED_UNCOUNTED)
            if lost:
                log.error("%d entries of %s were deleted from the stream before they were counted: they are "
                          "lost; their IDs are in %s", lost, shard.key, shard.dead_key)
            report.dead += self.reader.dead_letter(shard, lease.token, poison, int(time.time() * 1000))
        last_id = parse_id(entries[-1][0])
        if valid and valid.last_id > report.offset:
            for result in self._commit(shard, lease, token, entries, valid, last_id, report):
                report.applied += result.applied
                report.skipped += result.skipped
                report.offset = result.offset
                report.commits += 1
        else:
            report.skipped += len(valid)  # all counted before: the XACK after that commit was lost
        self.reader.ack(shard, [entry[0] for entry in entries])
        report.entries += len(entries)
        report.batch_sizes.append(len(entries))

    def _commit(self, shard: Shard, lease: Lease, token: int, entries: list[RawEntry], valid: Batch,
                last_id: StreamId, report: DrainReport) -> list[CommitResult]:
        """Commit `valid`; events the database refuses are dead-lettered with its reason."""
        def commit(events: Batch, upto: StreamId) -> CommitResult:
            return self.ledger.commit(shard.kind, shard.key, token, events, upto)

        def reject(entry_id, reason: str) -> None:
            wanted = parse_id(entry_id)
            entry = Entry.of(next(raw for raw in entries if parse_id(raw[0]) == wanted))
            report.dead += self.reader.dead_letter(shard, lease.token, [(entry, reason)], int(time.time() * 1000))
        return commit_isolating(commit, valid, last_id, reject)


#: How a stream entry's fields are laid out when the producer wrote it: ad_id, then ts.
_LAYOUT = (b"ad_id", b"ts")
_names = operator.itemgetter(0, 2)
_second = operator.itemgetter(1)
_fourth = operator.itemgetter(3)


#: The dead-letter reason of a pending entry that was deleted before it was counted.
DELETED_UNCOUNTED = ("entry: deleted from the stream before it was counted (an XDEL or XTRIM not made by "
                     "the tracker, whose trim never passes the committed offset)")


def sort_out(entries: list[RawEntry], counted: StreamId | None = None) -> tuple[Batch, list[tuple[Entry, str]]]:
    """Split entries into a batch of valid events and (entry, reason) pairs that cannot be counted.

    An entry without fields was deleted from the stream while pending. At or below `counted`
    (the committed offset) it was counted before our trim took it: it only needs its
    acknowledgement. Above it, something else deleted an event before it was counted: it is
    lost, and said so as a dead letter rather than acknowledged in silence. (Without `counted`,
    every such entry is taken as counted.)

    The common case, every entry laid out as the producer writes it, takes a few C-level passes
    over the entries, and validation runs once per distinct ad id and once per distinct second.
    Anything else (a trimmed, malformed or differently laid out entry) sends the batch down the
    entry-by-entry path.
    """
    fields = list(map(_second, entries))
    try:
        regular = set(map(len, fields)) == {4} and set(map(_names, fields)) == {_LAYOUT}
    except TypeError:  # a trimmed entry: no fields
        regular = False
    if not regular:
        return _sort_out_each(entries, counted)
    ads, tss = list(map(_second, fields)), list(map(_fourth, fields))
    try:
        ad_of = {raw: parse_ad_id(raw) for raw in set(ads)}
        ts_of = {raw: parse_ts(raw) for raw in set(tss)}
    except InvalidEvent:
        return _sort_out_each(entries, counted)
    return Batch(list(map(_first, entries)), ads, tss, ad_of, ts_of), []


_first = operator.itemgetter(0)


def _sort_out_each(entries: list[RawEntry], counted: StreamId | None = None) -> tuple[Batch, list[tuple[Entry, str]]]:
    ids, ads, tss = [], [], []
    poison: list[tuple[Entry, str]] = []
    for raw in entries:
        entry = Entry.of(raw)
        if entry.fields is None:
            if counted is not None and parse_id(entry.id) > counted:
                poison.append((entry, DELETED_UNCOUNTED))
            continue
        try:
            ad_id, ts = decode_entry(entry.id, entry.fields)
        except InvalidEvent as e:
            poison.append((entry, f"{e.field or 'entry'}: {e.message}"))
            continue
        ids.append(entry.id)
        ads.append(ad_id)
        tss.append(ts)
    return Batch(ids, ads, tss, {a: a for a in ads}, {t: t for t in tss}), poison
