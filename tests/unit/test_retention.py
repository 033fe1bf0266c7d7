"""Trimming: counted entries go after the retention or beyond the maximum length; uncounted never.

Against fakeredis and the real Redis (`redis_client`), with the real ledger on SQLite.
"""

import logging
import random
from zoneinfo import ZoneInfo

import pytest

from tracker import retention
from tracker.aggregate import Ledger, format_id, parse_id
from tracker.drainer import Drainer
from tracker.events import IMPRESSION
from tracker.models import connect, create_tables
from tracker.retention import Trimmer, backlogs
from tracker.streams import Layout, ShardReader, ensure_groups

DAY_MS = 24 * 3600 * 1000
NOW_MS = 1_795_500_000_000


@pytest.fixture
def layout():
    return Layout()


@pytest.fixture
def shard(layout):
    return layout.shard(IMPRESSION, 0)


@pytest.fixture
def ledger(sqlite_url):
    db = connect(sqlite_url)
    create_tables(db)
    return Ledger(db, ZoneInfo("UTC"))


@pytest.fixture
def stream(redis_client, layout, shard):
    """add(n, at_ms): n entries with IDs at `at_ms` (in order); returns their IDs."""
    ensure_groups(redis_client, layout)

    def add(n, at_ms):
        ids = []
        for seq in range(n):
            ids.append(redis_client.xadd(shard.key, {"ad_id": "1", "ts": str(at_ms // 1000)}, id=f"{at_ms}-{seq}"))
        return [i.decode() for i in ids]
    return add


@pytest.fixture
def drain(redis_client, ledger, settings, shard):
    def run():
        return Drainer(ShardReader(redis_client), ledger, settings).drain(shard)
    return run


def trimmer(redis_client, ledger, layout, settings, **changes):
    return Trimmer(redis_client, ledger, layout, settings.replace(**changes))


def ids_in(client, key):
    return [e[0].decode() for e in client.xrange(key)]


def test_counted_entries_older_than_the_retention_are_trimmed(redis_client, ledger, layout, shard, stream, drain,
                                                             settings):
    counted = stream(5, NOW_MS - 9 * DAY_MS)
    drain()
    uncounted_old = stream(3, NOW_MS - 8 * DAY_MS)  # older than 7 days, but not counted yet
    recent = stream(2, NOW_MS - DAY_MS)

    report = trimmer(redis_client, ledger, layout, settings).trim(shard, NOW_MS)

    # the counted ones go, except the last counted entry itself (the trim never passes the offset)
    assert ids_in(redis_client, shard.key) == counted[-1:] + uncounted_old + recent
    assert report.removed == 4 and report.minid == counted[-1] == report.safe_bound
    assert report.held_back  # the old uncounted ones were kept
    assert redis_client.get(shard.trimmed_to_key).decode() == counted[-1]
    # once counted, they go too
    drain()
    report = trimmer(redis_client, ledger, layout, settings).trim(shard, NOW_MS)
    assert ids_in(redis_client, shard.key) == recent and not report.held_back
    assert redis_client.get(shard.trimmed_to_key).decode() == format_id((NOW_MS - 7 * DAY_MS, 0))


def test_a_shard_never_drained_is_never_trimmed_whatever_the_settings(redis_client, ledger, layout, shard, stream,
                                                                      settings):
    ids = stream(20, NOW_MS - 30 * DAY_MS)
    report = trimmer(redis_client, ledger, layout, settings, retention_ms=0, trim_max_len=1).trim(shard, NOW_MS)
    assert ids_in(redis_client, shard.key) == ids and report.removed == 0
    assert report.held_back and report.over_max_len


def test_the_maximum_length_trims_counted_entries_only(redis_client, ledger, layout, shard, stream, drain, settings,
                                                       caplog):
    counted = stream(100, NOW_MS - 3000)
    drain()
    uncounted = stream(50, NOW_MS - 1000)
    trim = trimmer(redis_client, ledger, layout, settings, trim_max_len=120)
    report = trim.trim(shard, NOW_MS)
    assert ids_in(redis_client, shard.key) == counted[30:] + uncounted  # 120 left
    assert report.removed == 30 and not report.held_back and not report.over_max_len

    # When the maximum is below the uncounted backlog, only the counted part goes, with a warning
    with caplog.at_level(logging.WARNING, logger="tracker.retention"):
        report = trimmer(redis_client, ledger, layout, settings, trim_max_len=10).trim(shard, NOW_MS)
    assert ids_in(redis_client, shard.key) == counted[-1:] + uncounted
    assert report.held_back and report.over_max_len
    assert "more than TRACKER_TRIM_MAX_LEN=10; the stream keeps them" in caplog.text
    if report.backlog.uncounted is not None:  # Redis 7 tells the lag (Redis 6 does not)
        assert report.backlog.uncounted == 50 and "50 entries are not counted yet" in caplog.text
    assert [b.over_max_len for b in backlogs(redis_client, layout, 10)] == [True, False]


def test_long_trims_by_length_run_in_bounded_steps(redis_client, ledger, layout, shard, stream, drain, settings,
                                                   monkeypatch):
    monkeypatch.setattr(retention, "LENGTH_STEP", 7)
    counted = stream(60, NOW_MS - 1000)
    drain()
    report = trimmer(redis_client, ledger, layout, settings, trim_max_len=5).trim(shard, NOW_MS)
    assert ids_in(redis_client, shard.key) == counted[-5:] and report.removed == 55


def test_entries_pending_for_another_consumer_are_kept(redis_client, ledger, layout, shard, stream, drain, settings):
    """A PHP consumer read these and never acknowledged them: maybe never counted."""
    old = stream(3, NOW_MS - 20 * DAY_MS)
    redis_client.xreadgroup(shard.group, "php-consumer-1", {shard.key: ">"}, count=2)
    later = stream(3, NOW_MS - 10 * DAY_MS)
    drain()  # counts the undelivered entry and the later ones; the PHP consumer's two stay pending
    report = trimmer(redis_client, ledger, layout, settings, retention_ms=0).trim(shard, NOW_MS)
    assert ids_in(redis_client, shard.key) == old + later and report.removed == 0
    assert report.safe_bound == old[0]


@pytest.mark.parametrize("seed", range(6))
def test_no_setting_ever_trims_an_uncounted_entry(redis_client, ledger, layout, shard, stream, drain, settings, seed):
    rng = random.Random(seed)
    at = NOW_MS - 10 * DAY_MS
    for _ in range(rng.randint(1, 4)):
        stream(rng.randint(1, 40), at)
        at += rng.randint(1, 3 * DAY_MS)
        if rng.random() < 0.5:
            drain()
    stream(rng.randint(0, 40), at)
    committed = ledger.committed(shard.key)
    kept = [i for i in ids_in(redis_client, shard.key) if parse_id(i) >= committed]  # uncounted, and the offset's
    for _ in range(3):
        trimmer(redis_client, ledger, layout, settings, retention_ms=rng.choice([0, DAY_MS, 7 * DAY_MS]),
                trim_max_len=rng.choice([0, 1, 5, 30])).trim(shard, NOW_MS)
        left = ids_in(redis_client, shard.key)
        assert left[-len(kept):] == kept if kept else True
        assert parse_id(redis_client.get(shard.trimmed_to_key)) <= committed
