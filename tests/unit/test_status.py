"""The shard status (`tracker status`, /metrics), against fakeredis and the real Redis, SQLite and MariaDB."""

from __future__ import annotations

import threading
import time
from zoneinfo import ZoneInfo

import fakeredis
import pytest

from tracker.aggregate import Ledger, format_id, parse_id
from tracker.cli.reporting import format_status, human_age
from tracker.drainer import DrainReport
from tracker.drainlog import DrainLog
from tracker.errors import StreamUnavailable
from tracker.events import CLICK, IMPRESSION
from tracker.metrics import Metrics
from tracker.queue_probe import DeadLetterProbe, RedisDeadLetters
from tracker.status import CachedStatus, StatusReader
from tracker.streams import DRAIN_CONSUMER, Layout, Producer, ensure_groups

TS = 1_795_500_000


@pytest.fixture
def layout() -> Layout:
    return Layout(shards=2)


def test_reader_reports_every_shard_exactly(redis_client, database, layout):
    # Given: ads 1..10 on the impressions (even ads on shard 0, odd on shard 1), one click on shard 1
    ensure_groups(redis_client, layout)
    producer = Producer(redis_client, layout)
    ids = {ad: producer.add(IMPRESSION, ad, TS) for ad in range(1, 11)}
    producer.add(CLICK, 3, TS)
    shard0, shard1 = layout.shards(IMPRESSION)
    # shard 0: 2 of its 5 entries delivered to the drainer and not acknowledged (a batch in flight)
    delivered = redis_client.xreadgroup(shard0.group, DRAIN_CONSUMER, {shard0.key: ">"}, count=2)[0][1]
    # shard 1: all read, counted up to ad 5's entry, acknowledged; one entry dead-lettered
    redis_client.xreadgroup(shard1.group, DRAIN_CONSUMER, {shard1.key: ">"}, count=10)
    redis_client.xack(shard1.key, shard1.group, *[ids[ad] for ad in (1, 3, 5, 7, 9)])
    ledger = Ledger(database, ZoneInfo("UTC"))
    token, _ = ledger.claim(shard1.key)
    ledger.commit(IMPRESSION, shard1.key, token, [(parse_id(ids[ad]), ad, TS) for ad in (1, 3, 5)], parse_id(ids[5]))
    redis_client.xadd(shard1.dead_key, {"origin_id": "1-1", "reason": "ad_id: bad"})
    DrainLog(redis_client, Metrics(), clock=lambda: 1_000_000.0).failed(shard1, 0.25, RuntimeError("db down"))
    redis_client.zadd("dramatiq:tracker.XQ", {"message-1": 1, "message-2": 2})
    now_s = parse_id(ids[10])[0] / 1000 + 60

    # When
    status = StatusReader(redis_client, database, layout.shards(), DeadLetterProbe(RedisDeadLetters(redis_client, "dramatiq", "tracker")),
                          clock=lambda: now_s).read()

    # Then
    rows = {row.stream: row for row in status.shards}
    assert list(rows) == ["impressions_stream", "impressions_stream:1", "clicks_stream", "clicks_stream:1"]
    first, second = rows["impressions_stream"], rows["impressions_stream:1"]
    assert (first.length, first.pending, first.applied, first.dead_letters) == (5, 2, 0, 0)
    assert first.oldest_pending_age_ms == int(now_s * 1000) - parse_id(delivered[0][0])[0]
    assert first.committed_id == "0-0" and first.committed_age_ms is None
    assert first.last_drain_age_ms is None and first.last_drain_result is None
    assert (second.length, second.pending, second.applied, second.dead_letters) == (5, 0, 3, 1)
    assert second.oldest_pending_age_ms is None
    assert second.committed_id == format_id(parse_id(ids[5]))
    assert second.committed_age_ms == int(now_s * 1000) - parse_id(ids[5])[0]
    assert second.last_drain_result == "error" and second.last_drain_error == "RuntimeError: db down"
    assert second.last_drain_age_ms == int(now_s * 1000) - 1_000_000_000
    assert rows["clicks_stream:1"].length == 1 and rows["clicks_stream"].length == 0
    if not isinstance(redis_client, fakeredis.FakeRedis):  # Redis 7 reports the lag
        assert (first.lag, second.lag, rows["clicks_stream:1"].lag) == (3, 0, 1)
    assert (status.dead_letter_queue.key, status.dead_letter_queue.messages) == ("dramatiq:tracker.XQ", 2)
    assert status.at_ms == int(now_s * 1000)


def test_reader_copes_with_streams_that_do_not_exist_yet(redis_client, database, layout):
    status = StatusReader(redis_client, database, layout.shards()).read()
    assert [(r.length, r.lag, r.pending, r.applied, r.committed_id) for r in status.shards] == [(0, None, 0, 0, "0-0")] * 4
    assert status.dead_letter_queue is None


class CountingReader:
    def __init__(self, delay_s: float = 0.0, error: Exception | None = None):
        self.calls = 0
        self.delay_s = delay_s
        self.error = error

    def read(self):
        self.calls += 1
        time.sleep(self.delay_s)
        if self.error:
            raise self.error
        return f"reading {self.calls}"


def test_cached_status_reads_once_per_interval():
    now = [100.0]
    reader = CountingReader()
    cached = CachedStatus(reader, ttl_ms=1000, clock=lambda: now[0])
    assert [cached.read() for _ in range(5)] == ["reading 1"] * 5
    now[0] += 1.0
    assert cached.read() == "reading 2"
    assert reader.calls == 2


def test_cached_status_shares_one_reading_between_concurrent_scrapes():
    reader = CountingReader(delay_s=0.2)
    cached = CachedStatus(reader, ttl_ms=60_000)
    results = []
    threads = [threading.Thread(target=lambda: results.append(cached.read())) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["reading 1"] * 20 and reader.calls == 1


def test_cached_status_caches_a_failure_too():
    now = [0.0]
    reader = CountingReader(error=StreamUnavailable("Redis unavailable: connection refused"))
    cached = CachedStatus(reader, ttl_ms=1000, clock=lambda: now[0])
    for _ in range(3):
        with pytest.raises(StreamUnavailable):
            cached.read()
    assert reader.calls == 1


@pytest.mark.parametrize("ms, text", [(0, "0ms"), (850, "850ms"), (12_400, "12.4s"), (185_000, "3m05s"),
                                      (7_440_000, "2h04m"), (266_400_000, "3d02h")])
def test_ages_read_like_people_say_them(ms, text):
    assert human_age(ms) == text


def test_status_table_shows_ages_last_drain_and_dead_letters(fake_redis, sqlite_url):
    from tracker.models import connect, create_tables

    db = connect(sqlite_url)
    create_tables(db)
    layout = Layout()
    ensure_groups(fake_redis, layout)
    Producer(fake_redis, layout).add(IMPRESSION, 7, TS)
    entry_ms = parse_id(fake_redis.xrange("impressions_stream")[0][0])[0]
    fake_redis.xreadgroup("impression_group", DRAIN_CONSUMER, {"impressions_stream": ">"})
    DrainLog(fake_redis, Metrics(), clock=lambda: entry_ms / 1000 + 10).finished(
        layout.shards(IMPRESSION)[0], DrainReport("impressions_stream", lost_lease=True), 1.0)
    status = StatusReader(fake_redis, db, layout.shards(), DeadLetterProbe(RedisDeadLetters(fake_redis, "dramatiq", "tracker")),
                          clock=lambda: entry_ms / 1000 + 75).read()

    lines = format_status(status).splitlines()

    assert lines[0].split("  ")[0] == "stream"
    for heading in ("length", "lag", "pending", "oldest pending", "committed id", "committed age", "last drain",
                    "dead letters"):
        assert heading in lines[0]
    impressions = lines[1]
    assert impressions.startswith("impressions_stream")
    assert "1m15s" in impressions  # the oldest pending entry
    assert "1m05s ago (handed_over)" in impressions
    assert lines[2].startswith("clicks_stream") and "never" in lines[2]

    # a drain that began and has not ended (running, or killed mid-run) shows how long ago it began
    DrainLog(fake_redis, Metrics(), clock=lambda: entry_ms / 1000 + 70).started(layout.shards(IMPRESSION)[0])
    status = StatusReader(fake_redis, db, layout.shards(), clock=lambda: entry_ms / 1000 + 75).read()
    assert status.shards[0].drain_running and status.shards[0].last_drain_age_ms == 5000
    assert "running for 5.0s" in format_status(status).splitlines()[1]
    assert lines[-1] == "dramatiq dead-letter queue dramatiq:tracker.XQ: 0 messages"
