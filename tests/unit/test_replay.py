"""Replay, against fakeredis + SQLite and the real Redis + MariaDB.

Entries are added with explicit IDs, so that a few days of stream can be laid out in a test:
an entry's ID is the time Redis accepted it, its `ts` the time the event happened.
"""

import datetime
import io
import itertools
import random
from collections import Counter
from zoneinfo import ZoneInfo

import pytest

from tracker.aggregate import Ledger
from tracker.cli.replay import ProgressBar, format_result
from tracker.drainer import Drainer
from tracker.errors import ReplayRefused
from tracker.events import CLICK, IMPRESSION, encode_fields
from tracker.models import AdDailyImpressions, StreamOffset
from tracker.replay import TRIMMED_TO_SUFFIX, Replayer, StreamFacts, Window, check_holds
from tracker.streams import Layout, ShardReader, ensure_groups

UTC = ZoneInfo("UTC")
DAY1 = datetime.date(2026, 3, 1)
DAY2 = datetime.date(2026, 3, 2)
DAY3 = datetime.date(2026, 3, 3)
HOUR_MS = 3_600_000


def ms_at(day: datetime.date, hour: float) -> int:
    return int(datetime.datetime.combine(day, datetime.time(), tzinfo=UTC).timestamp() * 1000 + hour * HOUR_MS)


class Stream:
    """Adds entries to one shard with explicit, increasing IDs."""

    def __init__(self, client, shard):
        self.client = client
        self.shard = shard
        self.seq = itertools.count(1)

    def add(self, ms: int, ad_id: int, ts_ms: int | None = None, fields: dict | None = None) -> bytes:
        ts = (ms if ts_ms is None else ts_ms) // 1000
        return self.client.xadd(self.shard.key, fields or encode_fields(ad_id, ts), id=f"{ms}-{next(self.seq)}")

    def spread(self, day: datetime.date, ads: list[int], start_hour: float = 1, step_hours: float = 0.01):
        for i, ad_id in enumerate(ads):
            self.add(ms_at(day, start_hour + i * step_hours), ad_id)


@pytest.fixture
def layout():
    return Layout()


@pytest.fixture
def stream(redis_client, layout):
    ensure_groups(redis_client, layout)
    return Stream(redis_client, layout.shard(IMPRESSION, 0))


@pytest.fixture
def drain(redis_client, database, settings, layout):
    drainer = Drainer(ShardReader(redis_client), Ledger(database, UTC), settings)
    return lambda kind=IMPRESSION, index=0: drainer.drain(layout.shard(kind, index))


@pytest.fixture
def replayer(redis_client, database, layout, settings):
    return Replayer(redis_client, database, layout, settings)


def rows(db) -> dict:
    return {(r.ad_id, r.date if isinstance(r.date, datetime.date) else datetime.date.fromisoformat(r.date)):
            r.impressions for r in AdDailyImpressions.select().bind(db)}


def damage(db):
    """Counts gone wrong: one row doubled, one deleted, one made up."""
    model = AdDailyImpressions
    model.update(impressions=model.impressions * 2).where((model.ad_id == 1) & (model.date == DAY1)).execute(db)
    model.delete().where((model.ad_id == 2) & (model.date == DAY2)).execute(db)
    model.insert(ad_id=99, date=DAY2, impressions=5).execute(db)
    model.update(impressions=model.impressions + 7).where((model.ad_id == 1) & (model.date == DAY3)).execute(db)


def test_replay_replaces_damaged_counts_with_the_streams_and_twice_changes_nothing(
        stream, drain, database, replayer):
    # Given three days of events, counted
    for day in (DAY1, DAY2, DAY3):
        stream.spread(day, [1, 1, 2, 3] * 25)
    drain()
    good = rows(database)
    assert sum(good.values()) == 300
    # ... and counts that went wrong since
    damage(database)
    # When the first two days are replayed
    result = replayer.replay(IMPRESSION, DAY1, DAY2)
    # Then they are the streams' counts again, and the third day is left as it was
    after = rows(database)
    assert {k: v for k, v in after.items() if k[1] != DAY3} == {k: v for k, v in good.items() if k[1] != DAY3}
    assert after[1, DAY3] == good[1, DAY3] + 7
    assert [(d.date, d.old, d.new, d.rows_changed) for d in result.days] == [
        (DAY1, 150, 100, 1), (DAY2, 80, 100, 2)]
    assert result.written and result.entries >= 200
    # And a second replay finds nothing to change
    again = replayer.replay(IMPRESSION, DAY1, DAY2)
    assert rows(database) == after
    assert all(d.old == d.new and d.rows_changed == 0 for d in again.days)


def test_a_dry_run_reports_the_changes_and_writes_nothing(stream, drain, database, replayer):
    stream.spread(DAY1, [1, 2] * 10)
    drain()
    damage(database)
    before = rows(database)
    result = replayer.replay(IMPRESSION, DAY1, DAY1, dry_run=True)
    assert rows(database) == before
    assert not result.written
    assert [(d.old, d.new, d.rows_changed) for d in result.days] == [(30, 20, 1)]  # ad 1 doubled, ad 2 ok
    text = format_result(result)
    assert "dry run: nothing was written." in text and "2026-03-01" in text


def test_entries_above_the_committed_offset_are_left_to_the_drains(stream, drain, database, replayer):
    # Given a day of events counted, and more of the same day not yet drained
    stream.spread(DAY1, [1] * 30, start_hour=1)
    drain()
    stream.spread(DAY1, [1] * 12, start_hour=5)
    # When the day is replayed before the drain has run
    result = replayer.replay(IMPRESSION, DAY1, DAY1)
    # Then it holds what was counted, not what is waiting (that would be counted twice)
    assert rows(database) == {(1, DAY1): 30}
    assert result.days[0].new == 30
    # and the drain adds the rest exactly once
    drain()
    assert rows(database) == {(1, DAY1): 42}


def test_events_are_dated_by_their_ts_within_the_clock_skew(stream, drain, database, replayer):
    stream.spread(DAY1, [1] * 5, start_hour=22)
    # An event that claims 00:05 on day 2 but was stored at 23:58 on day 1 (a fast clock) ...
    stream.add(ms_at(DAY1, 23.97), 2, ts_ms=ms_at(DAY2, 0.08))
    # ... and one that happened at 23:50 on day 1, stored at 00:20 on day 2 (a late beacon)
    stream.add(ms_at(DAY2, 0.33), 1, ts_ms=ms_at(DAY1, 23.83))
    stream.spread(DAY2, [2] * 3, start_hour=2)
    drain()
    assert rows(database) == {(1, DAY1): 6, (2, DAY2): 4}
    damage(database)
    replayer.replay(IMPRESSION, DAY1, DAY1)
    replayer.replay(IMPRESSION, DAY2, DAY2)
    assert rows(database) == {(1, DAY1): 6, (2, DAY2): 4}


def test_entries_the_drains_did_not_count_are_not_counted(stream, drain, database, replayer, redis_client):
    stream.spread(DAY1, [1, 2], start_hour=1)
    stream.add(ms_at(DAY1, 2), 0, fields={"ad_id": "12x", "ts": str(ms_at(DAY1, 2) // 1000)})
    stream.add(ms_at(DAY1, 2.1), 0, fields={"foo": "bar"})
    stream.spread(DAY1, [3], start_hour=3)
    report = drain()
    assert report.dead == 2 and rows(database) == {(1, DAY1): 1, (2, DAY1): 1, (3, DAY1): 1}
    # An entry that decodes but was dead-lettered anyway is left out too
    shard = stream.shard
    origin = redis_client.xrange(shard.key, count=1)[0][0]
    redis_client.xadd(shard.dead_key, {"origin_id": origin, "reason": "test", "fields": "{}", "stream": shard.key})
    database.execute_sql("DELETE FROM ad_daily_impressions WHERE ad_id = 1")
    replayer.replay(IMPRESSION, DAY1, DAY1)
    assert rows(database) == {(2, DAY1): 1, (3, DAY1): 1}


def test_every_shard_of_the_kind_is_replayed_and_the_other_kind_untouched(redis_client, database, settings):
    layout = Layout(shards=2)
    ensure_groups(redis_client, layout)
    for index in (0, 1):
        Stream(redis_client, layout.shard(IMPRESSION, index)).spread(DAY1, [index + 2] * 10)
    Stream(redis_client, layout.shard(CLICK, 0)).spread(DAY1, [2] * 4)
    drainer = Drainer(ShardReader(redis_client), Ledger(database, UTC), settings)
    for shard in layout.shards():
        drainer.drain(shard)
    database.execute_sql("UPDATE ad_daily_impressions SET impressions = 1")
    database.execute_sql("UPDATE ad_daily_clicks SET clicks = 1000")
    result = Replayer(redis_client, database, layout, settings).replay(IMPRESSION, DAY1, DAY1)
    assert result.shards == 2
    assert rows(database) == {(2, DAY1): 10, (3, DAY1): 10}
    assert database.execute_sql("SELECT clicks FROM ad_daily_clicks").fetchall()[0][0] == 1000


def test_a_shard_never_drained_gets_its_offset_row_so_it_can_be_locked(stream, database, replayer):
    stream.spread(DAY1, [1] * 3)
    result = replayer.replay(IMPRESSION, DAY1, DAY1)
    assert result.days[0].new == 0  # nothing was counted yet: the drains will count these
    assert StreamOffset.select().where(StreamOffset.stream == stream.shard.key).bind(database).count() == 1


# -- refusals ---------------------------------------------------------------------------------------

def test_refuses_when_the_trim_actor_trimmed_into_the_range(stream, drain, database, replayer, redis_client):
    stream.spread(DAY1, [1] * 10)
    stream.spread(DAY2, [1] * 10)
    drain()
    redis_client.set(stream.shard.aux(TRIMMED_TO_SUFFIX), f"{ms_at(DAY1, 12)}-0")
    before = rows(database)
    damage(database)
    damaged = rows(database)
    with pytest.raises(ReplayRefused, match="trimmed to"):
        replayer.replay(IMPRESSION, DAY1, DAY1)
    assert rows(database) == damaged != before
    replayer.replay(IMPRESSION, DAY2, DAY2)  # the day after the trim point is whole


def test_refuses_when_entries_before_the_first_were_trimmed_by_anyone(stream, drain, replayer, redis_client):
    stream.spread(DAY1, [1] * 10)
    stream.spread(DAY2, [1] * 10)
    drain()
    redis_client.xtrim(stream.shard.key, minid=ms_at(DAY2, 0), approximate=False)  # not recorded anywhere
    with pytest.raises(ReplayRefused, match="first entry"):
        replayer.replay(IMPRESSION, DAY1, DAY2)
    with pytest.raises(ReplayRefused):  # DAY2's window starts an hour before its midnight
        replayer.replay(IMPRESSION, DAY2, DAY2)
    replayer.replay(IMPRESSION, DAY3, DAY3)  # nothing of DAY3 was ever in the stream: nothing lost


def test_a_stream_that_simply_starts_later_is_not_refused(stream, drain, database, replayer):
    stream.spread(DAY2, [4] * 8)
    drain()
    result = replayer.replay(IMPRESSION, DAY1, DAY2)  # nothing was ever removed from the stream
    assert [d.new for d in result.days] == [0, 8]


def test_refuses_when_an_entry_of_the_range_was_deleted(stream, drain, replayer, redis_client):
    stream.spread(DAY1, [1] * 10)
    drain()
    victim = redis_client.xrange(stream.shard.key, count=3)[2][0]
    redis_client.xdel(stream.shard.key, victim)
    with pytest.raises(ReplayRefused, match="deleted"):
        replayer.replay(IMPRESSION, DAY1, DAY1)


def test_refuses_when_the_stream_was_lost_and_created_anew(stream, drain, replayer, redis_client):
    stream.spread(DAY1, [1] * 10)
    drain()
    redis_client.delete(stream.shard.key)
    with pytest.raises(ReplayRefused, match="empty or missing"):
        replayer.replay(IMPRESSION, DAY1, DAY1)
    # the stream comes back (an unpersisted Redis restarted), with a few new entries
    ensure_groups(redis_client, Layout())
    stream.spread(DAY1, [1] * 2, start_hour=20)
    drain()
    with pytest.raises(ReplayRefused, match="created anew|is gone"):
        replayer.replay(IMPRESSION, DAY1, DAY1)


@pytest.mark.parametrize("facts, refused", [
    (StreamFacts(10, (5_000, 0), True, None, None, None), True),  # Redis 6: cannot prove nothing was trimmed
    (StreamFacts(10, (5_000, 0), True, None, (0, 0), 10), False),  # Redis 7: nothing was ever removed
    (StreamFacts(10, (500, 0), True, None, None, None), False),  # the first entry is before the window
    (StreamFacts(10, (500, 0), True, (1_500, 0), None, None), True),  # trimmed into the window
    (StreamFacts(10, (500, 0), False, None, None, None), True),  # the last counted entry is gone
])
def test_check_holds(layout, facts, refused):
    window = Window(DAY1, DAY1, (1_000, 0), (9_000, 0))
    shard = layout.shard(IMPRESSION, 0)
    if refused:
        with pytest.raises(ReplayRefused):
            check_holds(shard, window, (8_000, 0), 5, facts)
    else:
        check_holds(shard, window, (8_000, 0), 5, facts)
    check_holds(shard, window, (999, 0), 5, facts)  # nothing counted from the window: nothing to hold


def test_the_window_reaches_the_skew_beyond_the_days_in_the_reporting_timezone():
    tz = ZoneInfo("Europe/Paris")
    window = Window.of(DAY1, DAY2, tz, skew_ms=600_000)
    midnight = datetime.datetime(2026, 3, 1, tzinfo=tz).timestamp() * 1000
    after = datetime.datetime(2026, 3, 3, tzinfo=tz).timestamp() * 1000
    assert window.lo == (midnight - 600_000 - 1_000, 0)
    assert window.hi[0] == after + 600_000 + 1_000
    with pytest.raises(ValueError):
        Window.of(DAY2, DAY1, tz, 0)


def test_the_progress_bar_draws_in_place_and_ends_its_line():
    out = io.StringIO()
    ticks = iter([0.0, 0.05, 1.0, 2.0])
    bar = ProgressBar(out, clock=lambda: next(ticks))
    bar.update(0.1, 10)  # drawn at t=0 (the first redraw is due at once)
    bar.update(0.2, 20)  # t=0.05: too soon, skipped
    bar.update(0.5, 500)
    bar.update(1.0, 1000)
    bar.close()
    text = out.getvalue()
    assert text.count("\r") == 3 and text.endswith("100%  1000 entries\n")
    assert "20 entries" not in text


def test_counts_per_day_are_what_a_fresh_count_gives(stream, drain, database, replayer):
    """Whatever the damage, the replayed rows equal a direct count of the events."""
    rng = random.Random(5)
    expected: Counter = Counter()
    for day in (DAY1, DAY2):
        for i in range(200):
            ad_id = rng.randint(1, 20)
            ms = ms_at(day, i * 0.1)
            stream.add(ms, ad_id)
            expected[ad_id, day] += 1
    drain()
    database.execute_sql("UPDATE ad_daily_impressions SET impressions = impressions + ad_id")
    replayer.replay(IMPRESSION, DAY1, DAY2)
    assert rows(database) == dict(expected)
