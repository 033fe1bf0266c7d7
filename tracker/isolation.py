"""Committing a batch the database partly refuses, without stalling the shard.

A batch's commit is all or nothing. When the database refuses the data itself (`RowRejected`:
a foreign key to a table of ads, a value out of a legacy column's range), retrying the batch
fails again forever and every valid event behind the bad one waits with it: the PHP system
lost 40 valid events that way. Instead the batch is split in two and each half committed on
its own, recursively, until each refused event stands alone; those are handed to `reject`
(the drain dead-letters them with the database's reason) and everything else is counted.

The halves are committed left to right, each moving the offset to its own last ID, so commits
still happen in ID order and "at or below the offset means counted" stays true. k refused
events among n cost about 2·k·log2(n) extra transactions.

Errors that are not about the rows (the database is down, a table is missing) propagate: they
say nothing about which events are bad, and Dramatiq retries the drain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .aggregate import Batch, CommitResult, StreamId
from .errors import RowRejected

log = logging.getLogger(__name__)

#: commit(events, last_id): the ledger's exactly-once transaction for one run of events.
Commit = Callable[[Batch, StreamId], CommitResult]
#: reject(entry_id, reason): take a refused event out of the stream's way (dead-letter it).
Reject = Callable[[bytes | str, str], None]


def commit_isolating(commit: Commit, events: Batch, last_id: StreamId, reject: Reject) -> list[CommitResult]:
    """Commit `events` (in ID order, up to `last_id`), rejecting each event the database refuses.

    Returns the results of the commits that succeeded, in order. After it returns, the offset
    is at `last_id` and every event is either counted or rejected.
    """
    try:
        return [commit(events, last_id)]
    except RowRejected as e:
        if len(events) == 1:
            entry_id = events.ids[0]
            log.warning("the database refused event %s: %s", entry_id, e)
            reject(entry_id, str(e))  # first: were the offset moved first, a crash would hide it
            return [commit(events.part(0, 0), last_id)]  # then move the offset past it
        middle = len(events) // 2
        left, right = events.part(0, middle), events.part(middle)
        return commit_isolating(commit, left, left.last_id, reject) + commit_isolating(commit, right, last_id, reject)
