"""The tracker's Redis operations on a real 3-master Redis Cluster, in-process.

Every script (`_ADD_ONCE`, `_DEAD_LETTER` in streams.py, the lease scripts), the lease-gated read's
WATCH transaction, dead-letter requeues, the
cross-shard pipeline of `Producer.store`, the tick and `tracker status` run against a cluster
started by the test, with the shards spread over its masters. The cluster requires a password
with characters that must be escaped in the URL.
"""

from __future__ import annotations

import collections

import pytest
import redis
from redis.cluster import RedisClusterException, key_slot

from tests.integration.conftest import totals
from tests.servers import LocalRedisCluster
from tracker.deadletters import DeadLetters
from tracker.events import CLICK, IMPRESSION, encode_fields
from tracker.lease import Lease
from tracker.runtime import Runtime
from tracker.scheduler import DrainFlags, Scheduler
from tracker.status import all_status
from tracker.streams import NewEvent, ensure_groups

pytestmark = pytest.mark.integration

PASSWORD = "cl/uster+pass@1"
TS = 1_795_500_000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = LocalRedisCluster.unavailable()
    if reason:
        from tests.conftest import service_missing  # noqa: PLC0415
        service_missing("redis-server (for the Redis Cluster tests)", RuntimeError(reason))
    started = LocalRedisCluster(tmp_path_factory.mktemp("cluster"), masters=3, password=PASSWORD).start()
    yield started
    started.stop()


@pytest.fixture
def runtime(cluster, mysql_url, mysql_db, settings):
    cluster.flush()
    rt = Runtime(settings.replace(redis_url=cluster.url(), database_url=mysql_url, shards=4))
    ensure_groups(rt.redis, rt.layout)
    yield rt
    rt.close()
    cluster.flush()


def test_the_cluster_refuses_a_script_over_two_slots(cluster):
    # The premise of every other test here: the cluster enforces slots, so a script whose keys
    # did not share one would fail.
    with cluster.client() as client:
        assert key_slot(b"a") != key_slot(b"b")
        with pytest.raises((RedisClusterException, redis.ResponseError)):
            client.eval("return redis.call('MGET', KEYS[1], KEYS[2])", 2, "a", "b")


def test_the_shards_live_on_several_masters(runtime, cluster):
    with cluster.client() as client:
        owners = {client.get_node_from_key(s.key).port for s in runtime.layout.shards()}
    assert len(owners) >= 2, owners


def test_store_drain_dead_letter_and_status_on_the_cluster(runtime, mysql_db):
    # Given events for 40 ads over 4 shards per kind, stored in one cross-shard pipeline, some
    # with event ids, one of them retried, and a malformed entry in two shards
    events = [NewEvent(IMPRESSION if i % 4 else CLICK, 1 + i % 40, TS, f"e-{i}" if i % 3 == 0 else None)
              for i in range(400)]
    stored = runtime.producer.store(events)
    retry = runtime.producer.store([events[0]])[0]
    assert all(s.new for s in stored) and not retry.new and retry.entry_id == stored[0].entry_id
    bad = [runtime.layout.shard(IMPRESSION, 1), runtime.layout.shard(CLICK, 2)]
    for shard in bad:
        runtime.redis.xadd(shard.key, {**encode_fields(7, TS), "ad_id": "12x"})

    # When each shard is drained
    reports = [runtime.drainer.drain(shard) for shard in runtime.layout.shards()]

    # Then every event is counted once, the malformed ones are dead letters, no lease is left
    expected = collections.defaultdict(collections.Counter)
    for e in events:
        expected[e.kind.plural][e.ad_id] += 1
    assert totals(mysql_db) == {k: dict(v) for k, v in expected.items()}
    assert sum(r.dead for r in reports) == 2 and not any(r.busy or r.lost_lease for r in reports)
    assert not any(runtime.redis.exists(s.lease_key) for s in runtime.layout.shards())
    rows = {row.stream: row for row in all_status(runtime.redis, runtime.ledger, runtime.layout)}
    assert sum(r.applied for r in rows.values()) == len(events)
    assert [r.dead_letters for r in rows.values()].count(1) == 2
    assert all(r.pending == 0 and r.lag == 0 for r in rows.values())

    # And the dead letters can be requeued (a script per letter, in one cross-slot pipeline)
    dead = DeadLetters(runtime.redis, runtime.layout)
    letters = dead.select(dead.shards())
    before = [runtime.redis.xlen(s.key) for s in bad]
    assert len(letters) == 2 and len(dead.requeue(letters)) == 2
    assert dead.select(dead.shards()) == [] and [runtime.redis.xlen(s.key) for s in bad] == [n + 1 for n in before]


def test_a_drainer_finds_a_leased_shard_busy_and_drains_it_once_released(runtime):
    shard = runtime.layout.shard(IMPRESSION, 3)
    runtime.producer.add(IMPRESSION, 3, TS)
    holder = Lease(runtime.redis, shard.lease_key, 5_000)
    assert holder.acquire() and holder.renew()  # SET NX, then the compare-and-expire script
    assert runtime.drainer.drain(shard).busy
    holder.release()  # the compare-and-delete script
    assert runtime.drainer.drain(shard).applied == 1


def test_the_tick_leads_and_sends_one_drain_per_shard_on_the_cluster(runtime):
    sent = []
    flags = DrainFlags(runtime.redis, 10_000)
    scheduler = Scheduler(runtime.redis, runtime.layout, flags, sent.append, 1_000)
    rival = Scheduler(runtime.redis, runtime.layout, flags, sent.append, 1_000)
    assert len(scheduler.tick()) == 8  # the leader lock taken, one drain per shard
    assert rival.tick() == []  # not the leader
    assert scheduler.tick() == []  # leader lock renewed (a script); every shard already queued
    scheduler.resign()
    assert len(sent) == 8 and len({(s.kind.name, s.index) for s in sent}) == 8
