"""Isolating refused events: the bisection's logic, against a ledger that refuses chosen ads."""

import pytest

from tracker.aggregate import Batch, CommitResult, parse_id
from tracker.errors import DatabaseUnavailable, RowRejected
from tracker.isolation import commit_isolating


class RefusingLedger:
    """Commits like the real ledger (offset, ID order), refusing any run that holds a bad ad."""

    def __init__(self, bad_ads=(), down=False):
        self.bad_ads = set(bad_ads)
        self.down = down
        self.offset = (0, 0)
        self.counted = []
        self.attempts = 0

    def commit(self, batch, last_id):
        events = as_events(batch)
        self.attempts += 1
        if self.down:
            raise DatabaseUnavailable("connection refused")
        assert all(event[0] > self.offset for event in events), "commits must come in ID order"
        bad = [event for event in events if event[1] in self.bad_ads]
        if bad:
            raise RowRejected(f"foreign key fails for ad {bad[0][1]}")
        self.counted += events
        self.offset = max(self.offset, last_id)
        return CommitResult(applied=len(events), skipped=0, offset=self.offset)


def events_of(ad_ids):
    return [((1000 + i, 0), ad_id, 1_795_500_000) for i, ad_id in enumerate(ad_ids)]


def as_events(batch: Batch):
    """(stream ID, ad_id, ts) of each event of `batch`."""
    return [(parse_id(i), batch.ad_of[a], batch.ts_of[t]) for i, a, t in zip(batch.ids, batch.ads, batch.tss)]


def run(ledger, events, last_id=None):
    """Commit `events` with isolation; the rejected ones come back as (event, reason)."""
    by_id = {event[0]: event for event in events}
    rejected = []
    results = commit_isolating(ledger.commit, Batch.of(events), last_id or events[-1][0],
                               lambda entry_id, reason: rejected.append((by_id[parse_id(entry_id)], reason)))
    return results, rejected


def test_a_batch_the_database_accepts_is_one_commit():
    ledger = RefusingLedger()
    events = events_of([1, 2, 3])
    results, rejected = run(ledger, events)
    assert [r.applied for r in results] == [3] and rejected == [] and ledger.attempts == 1


@pytest.mark.parametrize("position", [0, 1, 499, 998, 999])
def test_one_refused_event_is_rejected_and_every_other_is_counted(position):
    # Given a batch of 1000 events whose event at `position` the database refuses
    ads = [7] * 1000
    ads[position] = 666
    events = events_of(ads)
    ledger = RefusingLedger(bad_ads={666})
    # When it is committed with isolation
    results, rejected = run(ledger, events)
    # Then the refused event alone is rejected, with the database's reason, and the rest counted
    assert [event for event, _ in rejected] == [events[position]]
    assert "foreign key fails for ad 666" in rejected[0][1]
    assert sorted(ledger.counted) == sorted(e for e in events if e[1] != 666)
    assert sum(r.applied for r in results) == 999
    # and the offset ends at the batch's end, so nothing is read again
    assert ledger.offset == events[-1][0] and results[-1].offset == events[-1][0]
    assert ledger.attempts <= 2 * 10 + 2  # about two commits per halving


def test_several_refused_events_anywhere_each_end_up_rejected_once():
    ads = [(666 if i % 97 == 5 else i % 13 + 1) for i in range(1000)]
    events = events_of(ads)
    ledger = RefusingLedger(bad_ads={666})
    results, rejected = run(ledger, events)
    assert [event for event, _ in rejected] == [e for e in events if e[1] == 666]
    assert len(ledger.counted) == 1000 - len(rejected) and len(set(ledger.counted)) == len(ledger.counted)


def test_a_batch_of_only_refused_events_rejects_them_all_and_still_moves_the_offset():
    events = events_of([666] * 8)
    ledger = RefusingLedger(bad_ads={666})
    results, rejected = run(ledger, events, last_id=(5000, 0))
    assert len(rejected) == 8 and ledger.counted == []
    assert ledger.offset == (5000, 0)


def test_an_unreachable_database_is_not_mistaken_for_bad_rows():
    ledger = RefusingLedger(down=True)
    rejected = []
    with pytest.raises(DatabaseUnavailable):
        commit_isolating(ledger.commit, Batch.of(events_of([1, 2])), (1001, 0), lambda e, r: rejected.append(e))
    assert rejected == [] and ledger.attempts == 1
