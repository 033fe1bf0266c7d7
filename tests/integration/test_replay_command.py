"""`tracker replay` as a user runs it, and replay's lock against a drain running at the same time."""

from __future__ import annotations

import subprocess
import threading
import time
from zoneinfo import ZoneInfo

import pytest

from tests.integration.conftest import per_ad
from tests.processes import TRACKER, tracker_env
from tests.unit.test_replay import DAY1, DAY2, Stream, ms_at
from tracker.aggregate import Ledger
from tracker.config import Settings
from tracker.drainer import Drainer
from tracker.events import IMPRESSION
from tracker.replay import TRIMMED_TO_SUFFIX, Replayer
from tracker.streams import Layout, ShardReader, ensure_groups

pytestmark = pytest.mark.integration

UTC = ZoneInfo("UTC")


def replay_command(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([TRACKER, "replay", "--kind", "impressions", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_the_command_prints_old_and_new_counts_per_day_and_refuses_a_trimmed_range(
        real_redis_url, real_redis, mysql_url, mysql_db):
    layout = Layout()
    ensure_groups(real_redis, layout)
    stream = Stream(real_redis, layout.shard(IMPRESSION, 0))
    stream.spread(DAY1, [1] * 30)
    stream.spread(DAY2, [1] * 20)
    Drainer(ShardReader(real_redis), Ledger(mysql_db, UTC), Settings(drain_poll_ms=0)).drain(layout.shard(IMPRESSION, 0))
    mysql_db.execute_sql("UPDATE ad_daily_impressions SET impressions = impressions * 2")
    env = tracker_env(real_redis_url, mysql_url)

    dry = replay_command(env, "--from", "2026-03-01", "--to", "2026-03-02", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "2026-03-01            60          30       -30            1" in dry.stdout
    assert "2026-03-02            40          20       -20            1" in dry.stdout
    assert dry.stdout.rstrip().endswith("dry run: nothing was written.")
    assert "\r" not in dry.stderr  # no progress bar: stderr is not a terminal
    assert per_ad(mysql_db, IMPRESSION) == {1: 100}

    done = replay_command(env, "--from", "2026-03-01", "--to", "2026-03-02", "--progress")
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("replaced.") and "100%" in done.stderr
    mysql_db.close()
    assert per_ad(mysql_db, IMPRESSION) == {1: 50}

    real_redis.set(layout.shard(IMPRESSION, 0).aux(TRIMMED_TO_SUFFIX), f"{ms_at(DAY2, 12)}-0")
    refused = replay_command(env, "--from", "2026-03-02", "--to", "2026-03-02")
    assert refused.returncode == 1
    assert "impressions_stream may no longer hold every entry" in refused.stderr
    assert "Nothing was changed." in refused.stderr and refused.stdout == ""

    backwards = replay_command(env, "--from", "2026-03-02", "--to", "2026-03-01")
    assert backwards.returncode != 0 and "'from' must not be after 'to'" in backwards.stderr


@pytest.mark.parametrize("db_fixture", ["sqlite_url", "mysql_url"])
def test_a_drain_waits_for_the_replay_and_then_adds_what_it_had_not_counted(
        request, db_fixture, real_redis, settings):
    from tracker.models import connect, create_tables
    url = request.getfixturevalue(db_fixture)
    db = connect(url)
    create_tables(db)
    layout = Layout()
    ensure_groups(real_redis, layout)
    shard = layout.shard(IMPRESSION, 0)
    stream = Stream(real_redis, shard)
    stream.spread(DAY1, [1] * 40)
    drainer = Drainer(ShardReader(real_redis), Ledger(db, UTC), settings)
    drainer.drain(shard)
    stream.spread(DAY1, [1] * 15, start_hour=6)  # stored, not yet counted
    db.execute_sql("UPDATE ad_daily_impressions SET impressions = 1")  # damaged
    replayer = Replayer(real_redis, db, layout, settings)
    rows_under_lock = replayer._rows
    seen = {}

    def drain_meanwhile(*args):
        # Under the replay's lock: a drain starts, and must wait for the replay to commit.
        thread = threading.Thread(target=lambda: seen.setdefault("report", drainer.drain(shard)))
        thread.start()
        time.sleep(1.0)
        seen["finished_under_lock"] = not thread.is_alive()
        seen["thread"] = thread
        return rows_under_lock(*args)
    replayer._rows = drain_meanwhile
    result = replayer.replay(IMPRESSION, DAY1, DAY1)
    seen["thread"].join(30)
    assert not seen["finished_under_lock"]
    assert result.days[0].new == 40  # what was counted when the lock was taken
    assert seen["report"].applied == 15  # the drain then added the rest
    db.close()
    assert per_ad(db, IMPRESSION) == {1: 55}
    db.close()
