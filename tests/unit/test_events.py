"""Validation of ad ids, timestamps and stream entries: what the PHP system's (int) cast got wrong."""

import pytest

from tracker.errors import InvalidEvent
from tracker.events import CLICK, IMPRESSION, MAX_AD_ID, decode_entry, kind_named, parse_ad_id, parse_ts


@pytest.mark.parametrize("raw, expected", [
    ("1", 1), ("123", 123), ("007", 7), (str(MAX_AD_ID), MAX_AD_ID), (42, 42), (b"99", 99), (MAX_AD_ID, MAX_AD_ID),
])
def test_accepts_whole_numbers_in_range(raw, expected):
    assert parse_ad_id(raw) == expected


@pytest.mark.parametrize("raw", [
    None, "", " ", "0", 0, "-3", -3, "12x", "x12", "1e3", "1.0", 1.0, 1.5, " 7", "7 ", "+7", "0x1f",
    str(MAX_AD_ID + 1), MAX_AD_ID + 1, "99999999999", "9" * 5000, True, False, [], {}, [7], "١٢٣", "１２", "7\n",
])
def test_refuses_what_the_php_cast_accepted_or_mangled(raw):
    with pytest.raises(InvalidEvent) as caught:
        parse_ad_id(raw)
    assert caught.value.message == "Invalid or missing ad_id parameter"


def test_timestamps_must_be_plausible_seconds():
    assert parse_ts("1700000000") == 1_700_000_000
    for bad in ("1700000000000", "-1", "17e8", "", "123", True):
        with pytest.raises(InvalidEvent):
            parse_ts(bad)


def test_decode_entry_reads_ad_id_and_ts():
    assert decode_entry(b"1700000000000-0", {b"ad_id": b"5", b"ts": b"1700000001"}) == (5, 1_700_000_001)


def test_decode_entry_dates_an_entry_without_ts_by_its_id():
    assert decode_entry(b"1700000123456-7", {b"ad_id": b"5"}) == (5, 1_700_000_123)


@pytest.mark.parametrize("fields", [{}, {b"ad_id": b"0"}, {b"ad_id": b"12x"}, {b"ad_id": b"5", b"ts": b"soon"},
                                    {b"ts": b"1700000000"}, {b"ad_id": b"99999999999"}])
def test_decode_entry_refuses_malformed_entries(fields):
    with pytest.raises(InvalidEvent):
        decode_entry(b"1700000000000-0", fields)


def test_kinds_keep_the_php_systems_names():
    assert (IMPRESSION.stream, IMPRESSION.group, IMPRESSION.table) == (
        "impressions_stream", "impression_group", "ad_daily_impressions")
    assert (CLICK.stream, CLICK.group, CLICK.table) == ("clicks_stream", "click_group", "ad_daily_clicks")
    assert kind_named("impressions") is IMPRESSION and kind_named("click") is CLICK
    with pytest.raises(ValueError):
        kind_named("views")
