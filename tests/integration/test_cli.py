"""The `tracker` commands an operator types: init-db, stats, status."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.processes import TRACKER, tracker_env
from tracker.events import CLICK, IMPRESSION
from tracker.models import connect
from tracker.streams import Layout, Producer, ensure_groups

pytestmark = pytest.mark.integration


def tracker(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([TRACKER, *args], env=env, capture_output=True, text=True, timeout=60)


def test_init_db_is_idempotent_and_creates_the_schema(real_redis_url, mysql_url):
    env = tracker_env(real_redis_url, mysql_url)
    for _ in range(2):
        result = tracker(env, "init-db")
        assert result.returncode == 0, result.stderr
        assert "tables ready in mysql://root@127.0.0.1" in result.stdout
    db = connect(mysql_url)
    tables = {row[0] for row in db.execute_sql("SHOW TABLES").fetchall()}
    assert tables == {"ad_daily_impressions", "ad_daily_clicks", "stream_offsets"}
    keys = db.execute_sql("SHOW KEYS FROM ad_daily_clicks WHERE Key_name = 'PRIMARY'").fetchall()
    assert [k[4] for k in keys] == ["ad_id", "date"]  # (ad_id, date) is unique


def test_stats_and_status_after_a_drain(real_redis_url, real_redis, mysql_url):
    env = tracker_env(real_redis_url, mysql_url, drain_poll_ms=0)
    assert tracker(env, "init-db").returncode == 0
    layout = Layout()
    ensure_groups(real_redis, layout)
    producer = Producer(real_redis, layout)
    for _ in range(4):
        producer.add(IMPRESSION, 21, 1_795_500_000)  # 2026-11-24 UTC
    producer.add(CLICK, 21, 1_795_500_000)
    real_redis.xadd("impressions_stream", {"ad_id": "oops"})
    from tracker.config import Settings
    from tracker.runtime import Runtime
    runtime = Runtime(Settings(redis_url=real_redis_url, database_url=mysql_url, drain_poll_ms=0))
    for shard in layout.shards():
        runtime.drainer.drain(shard)
    runtime.close()

    stats = tracker(env, "stats", "--ad-id", "21", "--from", "2026-11-24", "--to", "2026-11-24")
    assert stats.returncode == 0, stats.stderr
    assert "2026-11-24" in stats.stdout and "25.00%" in stats.stdout
    report = json.loads(tracker(env, "stats", "--from", "2026-11-24", "--to", "2026-11-24", "--json").stdout)
    assert report["totals"] == {"impressions": 4, "clicks": 1, "ctr": 0.25}

    status = tracker(env, "status", "--json")
    assert status.returncode == 0, status.stderr
    rows = {row["stream"]: row for row in json.loads(status.stdout)["shards"]}
    assert rows["impressions_stream"]["applied"] == 4 and rows["impressions_stream"]["pending"] == 0
    assert rows["impressions_stream"]["dead_letters"] == 1 and rows["clicks_stream"]["applied"] == 1
    table = tracker(env, "status")
    assert table.returncode == 0 and "impressions_stream" in table.stdout


def test_bad_settings_are_reported_not_raised(real_redis_url, mysql_url):
    result = tracker(tracker_env(real_redis_url, mysql_url, shards="zero"), "status")
    assert result.returncode == 2 and "TRACKER_SHARDS" in result.stderr and "Traceback" not in result.stderr
