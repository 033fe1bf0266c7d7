"""The exactly-once transaction: fencing, the offset filter and the upsert.

Runs against SQLite and, as an integration test, MariaDB (the `database` fixture).
"""

import datetime
from zoneinfo import ZoneInfo

import pytest

from tracker.aggregate import DayOf, Ledger, fold, format_id, parse_id
from tracker.errors import FencedOut
from tracker.events import CLICK, IMPRESSION
from tracker.models import AdDailyClicks, AdDailyImpressions

UTC = ZoneInfo("UTC")
TS = 1_795_500_000  # 2026-11-24 in UTC


def counts(db, model=AdDailyImpressions):
    column = model.impressions if model is AdDailyImpressions else model.clicks
    return {(r.ad_id, r.date.isoformat() if hasattr(r.date, "isoformat") else r.date): getattr(r, column.name)
            for r in model.select().bind(db)}


def events(first_seq, ad_ids, ts=TS, ms=1_795_500_000_000):
    return [((ms, first_seq + i), ad_id, ts) for i, ad_id in enumerate(ad_ids)]


def test_stream_ids_compare_numerically():
    assert parse_id(b"1700000000000-10") > parse_id("1700000000000-9")
    assert parse_id("1700000000001-0") > parse_id("1700000000000-99")
    assert format_id((5, 6)) == "5-6"


def test_days_follow_the_reporting_timezone():
    # 2026-11-24 23:30 UTC is already the 25th in Paris and still the 24th in New York.
    ts = int(datetime.datetime(2026, 11, 24, 23, 30, tzinfo=UTC).timestamp())
    assert DayOf(UTC)(ts) == datetime.date(2026, 11, 24)
    assert DayOf(ZoneInfo("Europe/Paris"))(ts) == datetime.date(2026, 11, 25)
    assert DayOf(ZoneInfo("America/New_York"))(ts) == datetime.date(2026, 11, 24)


def test_fold_counts_per_ad_and_day():
    folded = fold(events(0, [1, 1, 2]) + events(3, [1], ts=TS + 86_400), DayOf(UTC))
    day = datetime.date(2026, 11, 24)
    assert folded == {(1, day): 2, (2, day): 1, (1, day + datetime.timedelta(days=1)): 1}


def test_claim_issues_increasing_fences(database):
    ledger = Ledger(database, UTC)
    assert ledger.claim("s") == (1, (0, 0))
    assert ledger.claim("s")[0] == 2
    assert ledger.claim("other")[0] == 1


def test_commit_adds_counts_and_moves_the_offset(database):
    ledger = Ledger(database, UTC)
    token, _ = ledger.claim("impressions_stream")
    batch = events(0, [1, 1, 2])
    result = ledger.commit(IMPRESSION, "impressions_stream", token, batch, batch[-1][0])
    assert (result.applied, result.skipped) == (3, 0)
    assert counts(database) == {(1, "2026-11-24"): 2, (2, "2026-11-24"): 1}
    assert ledger.committed("impressions_stream") == batch[-1][0]
    row = ledger.offset_row("impressions_stream")
    assert row.applied == 3 and row.committed_at_ms > 0


def test_commit_adds_to_existing_rows(database):
    ledger = Ledger(database, UTC)
    token, _ = ledger.claim("clicks_stream")
    first, second = events(0, [9, 9]), events(2, [9])
    ledger.commit(CLICK, "clicks_stream", token, first, first[-1][0])
    ledger.commit(CLICK, "clicks_stream", token, second, second[-1][0])
    assert counts(database, AdDailyClicks) == {(9, "2026-11-24"): 3}


def test_events_at_or_below_the_offset_are_not_counted_again(database):
    """A batch re-read after its commit (the XACK was lost) changes nothing."""
    ledger = Ledger(database, UTC)
    token, _ = ledger.claim("s")
    batch = events(0, [1, 2, 3])
    ledger.commit(IMPRESSION, "s", token, batch, batch[-1][0])
    token, offset = ledger.claim("s")  # a new drainer after a crash
    assert offset == batch[-1][0]
    overlap = batch + events(3, [1])
    result = ledger.commit(IMPRESSION, "s", token, overlap, overlap[-1][0])
    assert (result.applied, result.skipped) == (1, 3)
    assert counts(database) == {(1, "2026-11-24"): 2, (2, "2026-11-24"): 1, (3, "2026-11-24"): 1}
    assert ledger.offset_row("s").applied == 4


def test_a_stale_drainer_cannot_commit(database):
    ledger = Ledger(database, UTC)
    old, _ = ledger.claim("s")
    new, _ = ledger.claim("s")
    batch = events(0, [1])
    with pytest.raises(FencedOut):
        ledger.commit(IMPRESSION, "s", old, batch, batch[-1][0])
    assert counts(database) == {}
    ledger.commit(IMPRESSION, "s", new, batch, batch[-1][0])
    assert counts(database) == {(1, "2026-11-24"): 1}


def test_a_commit_without_a_claim_is_refused(database):
    with pytest.raises(FencedOut):
        Ledger(database, UTC).commit(IMPRESSION, "s", 1, events(0, [1]), (1, 0))


def test_one_commit_upserts_many_distinct_ads(database):
    ledger = Ledger(database, UTC)
    token, _ = ledger.claim("s")
    batch = events(0, list(range(1, 12_001)))  # more rows than one upsert chunk
    ledger.commit(IMPRESSION, "s", token, batch, batch[-1][0])
    ledger.commit(IMPRESSION, "s", token, events(20_000, list(range(1, 12_001))), (1_795_500_000_000, 40_000))
    table = counts(database)
    assert len(table) == 12_000 and set(table.values()) == {2}


def test_the_offset_moves_past_entries_that_were_not_events(database):
    """Poison or trimmed entries at the end of a batch still move the offset."""
    ledger = Ledger(database, UTC)
    token, _ = ledger.claim("s")
    batch = events(0, [1])
    ledger.commit(IMPRESSION, "s", token, batch, (1_795_500_000_000, 5))
    assert ledger.committed("s") == (1_795_500_000_000, 5)
