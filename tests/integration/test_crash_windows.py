"""A process that dies between its commit and its XACK: the batch is counted once."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.integration.conftest import pending, per_ad
from tests.processes import tracker_env
from tracker.config import Settings
from tracker.events import IMPRESSION
from tracker.runtime import Runtime
from tracker.streams import Layout, Producer, ensure_groups

pytestmark = pytest.mark.integration


def test_a_process_killed_after_commit_before_xack_counts_the_batch_once(
        real_redis_url, real_redis, mysql_url, mysql_db):
    layout = Layout()
    ensure_groups(real_redis, layout)
    producer = Producer(real_redis, layout)
    for i in range(800):
        producer.add(IMPRESSION, 1 + i % 8, 1_795_500_000)
    env = tracker_env(real_redis_url, mysql_url, lease_ttl_ms=500, drain_poll_ms=0)
    crashed = subprocess.run([sys.executable, "-m", "tests.integration.crash_after_commit"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert crashed.returncode == 137, crashed.stderr
    # Given: the counts are committed, and every entry is still pending
    assert sum(per_ad(mysql_db, IMPRESSION).values()) == 800
    assert pending(real_redis, "impressions_stream", "impression_group") == 800
    # When the next drainer runs (after the dead one's lease expired)
    settings = Settings(redis_url=real_redis_url, database_url=mysql_url, drain_poll_ms=0, lease_ttl_ms=500)
    runtime = Runtime(settings)
    import time
    time.sleep(0.6)
    report = runtime.drainer.drain(layout.shard(IMPRESSION, 0))
    runtime.close()
    # Then nothing is counted twice and the entries are acknowledged
    assert report.skipped == 800 and report.applied == 0
    mysql_db.close()
    assert per_ad(mysql_db, IMPRESSION) == {ad: 100 for ad in range(1, 9)}
    assert pending(real_redis, "impressions_stream", "impression_group") == 0


def test_tables_created_by_the_php_system_keep_working(real_redis, mysql_db):
    """The PHP schema had an auto-increment id beside UNIQUE(ad_id, date); we never touch it."""
    mysql_db.execute_sql("DROP TABLE ad_daily_impressions")
    mysql_db.execute_sql("""CREATE TABLE ad_daily_impressions (
        id INT AUTO_INCREMENT PRIMARY KEY, ad_id INT NOT NULL, date DATE NOT NULL,
        impressions INT DEFAULT 0, UNIQUE KEY unique_ad_date (ad_id, date))""")
    mysql_db.execute_sql("INSERT INTO ad_daily_impressions (ad_id, date, impressions) VALUES (4, '2023-11-14', 10)")
    layout = Layout()
    ensure_groups(real_redis, layout)
    producer = Producer(real_redis, layout)
    for _ in range(5):
        producer.add(IMPRESSION, 4, 1_700_000_000)  # 2023-11-14 in UTC
    from tracker.aggregate import Ledger
    from tracker.drainer import Drainer
    from tracker.streams import ShardReader
    from zoneinfo import ZoneInfo
    drainer = Drainer(ShardReader(real_redis), Ledger(mysql_db, ZoneInfo("UTC")), Settings(drain_poll_ms=0))
    drainer.drain(layout.shard(IMPRESSION, 0))
    rows = mysql_db.execute_sql("SELECT ad_id, date, impressions FROM ad_daily_impressions").fetchall()
    assert [(r[0], str(r[1]), r[2]) for r in rows] == [(4, "2023-11-14", 15)]
