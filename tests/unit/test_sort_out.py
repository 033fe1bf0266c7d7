"""Sorting raw entries out into a batch: the columnar fast path agrees with the entry-by-entry one."""

import datetime
from zoneinfo import ZoneInfo

from tracker.aggregate import DayOf, parse_id
from tracker.drainer import _sort_out_each, sort_out

DAY = DayOf(ZoneInfo("UTC"))
TS = 1_795_500_000  # 2026-11-24 in UTC
D24, D25 = datetime.date(2026, 11, 24), datetime.date(2026, 11, 25)


def raw(seq, ad_id, ts=TS):
    return [f"1795500000000-{seq}".encode(), [b"ad_id", str(ad_id).encode(), b"ts", str(ts).encode()]]


def test_regular_entries_take_the_fast_path_and_count_per_ad_and_day():
    entries = [raw(i, 1 + i % 3, TS + (86_400 if i >= 8 else 0)) for i in range(10)]
    batch, poison = sort_out(entries)
    assert poison == [] and len(batch) == 10 and isinstance(batch.ads[0], bytes)  # raw bytes: the fast path
    assert batch.counts(0, DAY) == {(1, D24): 3, (2, D24): 3, (3, D24): 2, (3, D25): 1, (1, D25): 1}
    slow, _ = _sort_out_each(entries)
    assert slow.counts(0, DAY) == batch.counts(0, DAY)


def test_two_spellings_of_one_ad_are_one_ad():
    batch, _ = sort_out([raw(0, "7"), raw(1, "007"), raw(2, 8)])
    assert batch.counts(0, DAY) == {(7, D24): 2, (8, D24): 1}


def test_counting_from_an_offset_counts_only_what_comes_after_it():
    batch, _ = sort_out([raw(i, i) for i in range(1, 6)])
    start = batch.start_after(parse_id(b"1795500000000-2"))
    assert start == 2 and batch.counts(start, DAY) == {(3, D24): 1, (4, D24): 1, (5, D24): 1}
    assert batch.start_after((0, 0)) == 0 and batch.start_after(batch.last_id) == 5


def test_irregular_entries_go_entry_by_entry_with_the_same_verdicts():
    entries = [
        raw(0, 1),
        [b"1795500000000-1", None],  # trimmed after its commit: neither counted nor dead
        [b"1795500000000-2", [b"ts", str(TS).encode(), b"ad_id", b"2"]],  # fields in another order
        [b"1795500000000-3", [b"ad_id", b"3"]],  # no ts: dated by its ID
        raw(4, "12x"),  # poison
        raw(5, 1),
    ]
    batch, poison = sort_out(entries)
    assert [entry.id for entry, _ in poison] == [b"1795500000000-4"]
    assert batch.ids == [b"1795500000000-0", b"1795500000000-2", b"1795500000000-3", b"1795500000000-5"]
    assert batch.counts(0, DAY) == {(1, D24): 2, (2, D24): 1, (3, D24): 1}


def test_a_regular_layout_with_a_bad_value_is_dead_lettered_alone():
    batch, poison = sort_out([raw(0, 1), raw(1, 99_999_999_999), raw(2, 2, ts="later")])
    assert [entry.id for entry, _ in poison] == [b"1795500000000-1", b"1795500000000-2"]
    assert batch.counts(0, DAY) == {(1, D24): 1}
