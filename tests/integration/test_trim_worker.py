"""The trim actor, sent by the tick leader of a real `dramatiq tracker.tasks`: once counted,
events beyond the retention leave the stream, down to the committed offset and no further."""

from __future__ import annotations

import pytest

from tests.integration.conftest import ledger, totals
from tests.processes import tracker_env, wait_until, worker
from tracker.aggregate import format_id
from tracker.events import IMPRESSION
from tracker.streams import Layout, Producer, ensure_groups

pytestmark = pytest.mark.integration


def test_the_worker_trims_counted_events_on_its_own(tmp_path, real_redis_url, real_redis, mysql_url, mysql_db,
                                                    env_settings):
    layout = Layout()
    ensure_groups(real_redis, layout)
    producer = Producer(real_redis, layout)
    for i in range(500):
        producer.add(IMPRESSION, i % 10 + 1, 1_795_500_000)
    shard = layout.shard(IMPRESSION, 0)
    settings = {**env_settings, "retention_ms": 0, "trim_interval_ms": 300}
    process = worker(tracker_env(real_redis_url, mysql_url, **settings), tmp_path / "worker.log")
    try:
        wait_until(lambda: totals(mysql_db)["impressions"] == {ad: 50 for ad in range(1, 11)}, 60, 0.2,
                   "the events to be counted")
        wait_until(lambda: real_redis.xlen(shard.key) == 1, 30, 0.2, "the stream to be trimmed")
    finally:
        process.stop()
    committed = format_id(ledger(mysql_db).committed(shard.key))
    assert [e[0].decode() for e in real_redis.xrange(shard.key)] == [committed]  # the offset's entry stays
    assert real_redis.get(shard.trimmed_to_key).decode() == committed
