"""The Redis ACL the README's Hardening section recommends is enough for the tracker, and no more.

A Redis whose default user is off and whose `tracker` user has exactly those rules serves
ingest (with dedupe), drains (with dead letters), the tick and `tracker status`; and, through the
web app, bot filtering, rate limiting and the filtered counts; the drain log, the trim and
dead-letter requeues.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import redis

from tests.servers import AclRedis
from tracker.events import CLICK, IMPRESSION, encode_fields
from tracker.models import create_tables
from tracker.runtime import Runtime
from tracker.scheduler import DrainFlags, Scheduler
from tracker.status import all_status
from tracker.streams import NewEvent
from tests.wsgi import call
from tracker.deadletters import DeadLetters
from tracker.retention import Trimmer
from tracker.status import StatusReader
from tracker.web import create_app

BOT = {"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"
TS = 1_795_500_000


def readme_acl_rules() -> str:
    """The rules of the `user tracker ...` line of the README (password and keys aside)."""
    line = re.search(r"^user tracker on >\S+ (.*)$", README.read_text(), re.MULTILINE)
    assert line, "the README's Hardening section shows a `user tracker on >... ` ACL line"
    return line.group(1)


@pytest.fixture
def acl_redis(tmp_path):
    server = AclRedis(tmp_path / "redis", readme_acl_rules(), "acl-secret-3").start()
    yield server
    server.stop()


def test_the_tracker_runs_with_the_readme_acl(acl_redis, settings):
    runtime = Runtime(settings.replace(redis_url=acl_redis.url(), shards=2))
    try:
        sent: list = []
        scheduler = Scheduler(runtime.redis, runtime.layout, DrainFlags(runtime.redis, 5_000), sent.append, 1_000)
        assert len(scheduler.tick()) == 4 and scheduler.tick() == []  # creates the groups, leads, flags
        runtime.producer.add(IMPRESSION, 1, TS)
        runtime.producer.store([NewEvent(CLICK, 2, TS, "e-1"), NewEvent(CLICK, 2, TS, "e-1")])
        runtime.redis.xadd(runtime.layout.shard(IMPRESSION, 0).key, {**encode_fields(3, TS), "ad_id": "x"})
        create_tables(runtime.database)
        reports = [runtime.drainer.drain(shard) for shard in runtime.layout.shards()]
        assert sum(r.applied for r in reports) == 2 and sum(r.dead for r in reports) == 1
        assert sum(s.applied for s in all_status(runtime.redis, runtime.ledger, runtime.layout)) == 2
        scheduler.resign()
    finally:
        runtime.close()


def test_the_readme_acl_refuses_what_the_tracker_does_not_need(acl_redis):
    with redis.Redis.from_url(acl_redis.url()) as client:
        for command in (("FLUSHALL",), ("CONFIG", "GET", "*"), ("KEYS", "*"), ("SHUTDOWN",)):
            with pytest.raises(redis.exceptions.NoPermissionError):
                client.execute_command(*command)


def test_the_web_app_drain_log_trim_and_requeue_run_with_the_readme_acl(acl_redis, settings):
    settings = settings.replace(redis_url=acl_redis.url(), rate_limit=100, ip_hash_key="acl-ip-hash-key-0123456789",
                                retention_ms=1)
    runtime = Runtime(settings)
    try:
        create_tables(runtime.database)
        app = create_app(runtime)
        assert call(app, "GET", "/v1/impressions?ad_id=4").status == 200  # rate limited, stored
        assert call(app, "GET", "/v1/clicks?ad_id=4", headers=BOT).status == 200  # filtered, counted as such
        filtered = call(app, "GET", "/v1/filtered")
        assert filtered.status == 200 and b'"bot"' in filtered.body
        shard = runtime.layout.shard(IMPRESSION, 0)
        runtime.redis.xadd(shard.key, {"ad_id": "x"})
        runtime.drain_log.started(shard)
        report = runtime.drainer.drain(shard)
        runtime.drain_log.finished(shard, report, 0.1)
        assert report.applied == 1 and report.dead == 1
        status = StatusReader(runtime.redis, runtime.database, runtime.layout.shards()).read()
        assert any(s.last_drain_age_ms is not None for s in status.shards)
        Trimmer(runtime.redis, runtime.ledger, runtime.layout, settings).trim_all()
        dead = DeadLetters(runtime.redis, runtime.layout)
        letters = dead.select(dead.shards(IMPRESSION))
        assert len(letters) == 1 and len(dead.requeue(letters)) == 1
    finally:
        runtime.close()
