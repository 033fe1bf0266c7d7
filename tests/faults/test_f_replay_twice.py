"""(f) Replay run twice over a range of days while events keep arriving and workers keep draining.

Three past days of impressions are laid into two shards (with explicit entry IDs, some dated by
a `ts` on the other side of midnight), counted, then damaged. While live events for today flow
in and the worker counts them, the range from the first past day to tomorrow is replayed twice.
"""

from __future__ import annotations

import datetime
import random
import time
from collections import Counter
from zoneinfo import ZoneInfo

import pytest

from tests.faults.accounting import Figures, Ledger, counted, report, wait_counted
from tests.faults.load import XaddLoad
from tests.processes import tracker_env, worker
from tracker.config import Settings
from tracker.events import IMPRESSION, encode_fields
from tracker.models import connect
from tracker.replay import Replayer
from tracker.streams import Layout, ensure_groups

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PAST_DAYS = 3
PAST_PER_DAY = 5_000
LIVE_EVENTS = 20_000
LIVE_S = 12
SHARDS = 2
UTC = ZoneInfo("UTC")


def lay_past_days(client, layout: Layout, first: datetime.date, ledger: Ledger, rng: random.Random) -> Counter:
    """PAST_PER_DAY impressions a day, spread over each day; one in 50 stored up to 20 minutes
    after its `ts` (a late beacon), so that some cross midnight. Returns the events per day."""
    per_day: Counter = Counter()
    pipe = client.pipeline(transaction=False)
    for d in range(PAST_DAYS):
        midnight = int(datetime.datetime.combine(first + datetime.timedelta(days=d), datetime.time(),
                                                 tzinfo=UTC).timestamp() * 1000)
        for i in range(PAST_PER_DAY):
            ms = midnight + i * (86_400_000 // PAST_PER_DAY)
            ts_ms = ms - rng.randint(0, 1_200_000) if i % 50 == 0 else ms
            ad_id = rng.randint(1, 200)
            pipe.xadd(layout.shard_for(IMPRESSION, ad_id).key, encode_fields(ad_id, ts_ms // 1000), id=f"{ms}-{i + 1}")
            ledger.attempt()
            ledger.ack(IMPRESSION.plural, ad_id)
            per_day[datetime.datetime.fromtimestamp(ts_ms // 1000, UTC).date()] += 1
    pipe.execute()
    return per_day


def damage(db, first: datetime.date) -> None:
    """Counts gone wrong: the first day lost, the second doubled, a row made up on the third."""
    days = [first + datetime.timedelta(days=d) for d in range(3)]
    db.execute_sql("DELETE FROM ad_daily_impressions WHERE date = %s", (days[0],))
    db.execute_sql("UPDATE ad_daily_impressions SET impressions = impressions * 2 WHERE date = %s", (days[1],))
    db.execute_sql("INSERT INTO ad_daily_impressions (ad_id, date, impressions) VALUES (9999, %s, 77)", (days[2],))


def test_replay_twice_while_events_are_counted(tmp_path, real_redis_url, real_redis, mysql_url, mysql_db,
                                                env_settings):
    layout = Layout(shards=SHARDS)
    ensure_groups(real_redis, layout)
    today = datetime.datetime.now(UTC).date()
    first = today - datetime.timedelta(days=PAST_DAYS + 1)
    last = today + datetime.timedelta(days=1)  # live events stay in the range across midnight
    ledger = Ledger()
    per_day = lay_past_days(real_redis, layout, first, ledger, random.Random(51))
    env = tracker_env(real_redis_url, mysql_url, **{**env_settings, "shards": SHARDS})
    current = worker(env, tmp_path / "worker.log", processes=1, threads=2)
    settings = Settings(shards=SHARDS)
    db = connect(mysql_url)
    replayer = Replayer(real_redis, db, layout, settings)
    try:
        wait_counted(ledger, mysql_db, 60)
        damage(mysql_db, first)
        load = XaddLoad(real_redis, ledger, LIVE_EVENTS, LIVE_S, seed=52, ads=200, layout=layout)
        load.start()
        time.sleep(3)
        once = replayer.replay(IMPRESSION, first, last)
        time.sleep(2)
        twice = replayer.replay(IMPRESSION, first, last)
        load.finish()
        wait_counted(ledger, mysql_db, 120)
        check = replayer.replay(IMPRESSION, first, last, dry_run=True)
    finally:
        current.stop()
        db.close()
    past = slice(0, PAST_DAYS)
    repaired = sum(d.rows_changed for d in once.days[past])
    report("(f) replay twice", Figures.of(ledger, counted(mysql_db)),
           f"{repaired} damaged rows repaired by the first replay, {sum(d.rows_changed for d in twice.days[past])} "
           f"changed by the second")
    assert [d.new for d in once.days[past]] == [d.new for d in twice.days[past]] == [d.old for d in twice.days[past]]
    assert repaired > 0 and all(d.rows_changed == 0 for d in twice.days[past])
    assert [d.new for d in once.days[past]] == [per_day[d.date] for d in once.days[past]]
    assert all(d.old == d.new and d.rows_changed == 0 for d in check.days), "replay and the drains agree on every day"
    # the replays ran while the live events were being counted, not before or after
    live = slice(PAST_DAYS, None)
    assert 0 < sum(d.new for d in once.days[live]) <= sum(d.new for d in twice.days[live]) < \
        sum(d.new for d in check.days[live])
