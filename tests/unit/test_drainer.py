"""The drain protocol, against fakeredis and the real Redis (the `redis_client` fixture).

Each test reads as Given / When / Then; crashes are simulated by abandoning a drainer at the
step where a process would have died.
"""

import json
from zoneinfo import ZoneInfo

import peewee
import pytest

from tracker.aggregate import Ledger, parse_id
from tracker.drainer import Drainer
from tracker.errors import LeaseLost
from tracker.events import CLICK, IMPRESSION
from tracker.lease import Lease
from tracker.models import AdDailyClicks, AdDailyImpressions, connect, create_tables
from tracker.streams import DRAIN_CONSUMER, Layout, Producer, ShardReader, ensure_groups

TS = 1_795_500_000


@pytest.fixture
def db(sqlite_url) -> peewee.Database:
    database = connect(sqlite_url)
    create_tables(database)
    return database


@pytest.fixture
def layout():
    return Layout()


@pytest.fixture
def make_drainer(redis_client, db, settings):
    def make(**changes):
        return Drainer(ShardReader(redis_client), Ledger(db, ZoneInfo("UTC")), settings.replace(**changes))
    return make


@pytest.fixture
def produce(redis_client, layout):
    ensure_groups(redis_client, layout)
    producer = Producer(redis_client, layout)

    def add(kind, ad_ids, ts=TS):
        return [producer.add(kind, ad_id, ts) for ad_id in ad_ids]
    return add


def total(db, kind=IMPRESSION):
    model = AdDailyImpressions if kind is IMPRESSION else AdDailyClicks
    column = getattr(model, kind.plural)
    return model.select(peewee.fn.COALESCE(peewee.fn.SUM(column), 0)).bind(db).scalar()


def per_ad(db, kind=IMPRESSION):
    model = AdDailyImpressions if kind is IMPRESSION else AdDailyClicks
    return {r.ad_id: getattr(r, kind.plural) for r in model.select().bind(db)}


def pending(client, shard):
    return client.xpending(shard.key, shard.group)["pending"]


def test_drain_counts_every_event_once_and_acknowledges_it(make_drainer, produce, db, redis_client, layout):
    produce(IMPRESSION, [1, 1, 2] * 700)
    produce(CLICK, [1])
    report = make_drainer().drain(layout.shard(IMPRESSION, 0))
    assert report.applied == 2100 and report.commits == 3  # batches of 1000
    assert per_ad(db) == {1: 1400, 2: 700}
    assert pending(redis_client, layout.shard(IMPRESSION, 0)) == 0
    assert total(db, CLICK) == 0  # each shard is drained on its own
    make_drainer().drain(layout.shard(CLICK, 0))
    assert per_ad(db, CLICK) == {1: 1}


def test_folding_several_reads_into_one_commit(make_drainer, produce, db, layout):
    produce(IMPRESSION, range(1, 4001))
    report = make_drainer(reads_per_commit=5).drain(layout.shard(IMPRESSION, 0))
    # one read finds the pending list empty; then four full reads and a short one, one commit
    assert report.applied == 4000 and report.commits == 1 and report.reads == 6


def test_a_drainer_that_died_before_committing_leaves_its_entries_to_the_next(
        make_drainer, produce, db, redis_client, layout):
    shard = layout.shard(IMPRESSION, 0)
    produce(IMPRESSION, [5] * 10)
    # Given a drainer that read 10 entries and died before its commit
    dead = Lease(redis_client, shard.lease_key, 50)
    assert dead.acquire()
    assert len(ShardReader(redis_client).read(shard, dead.token, 50, 100, ">")) == 10
    redis_client.delete(shard.lease_key)  # its lease ran out
    produce(IMPRESSION, [6] * 3)
    # When the next drain runs
    report = make_drainer().drain(shard)
    # Then the pending entries are counted first, then the new ones, each once
    assert per_ad(db) == {5: 10, 6: 3}
    assert report.applied == 13 and pending(redis_client, shard) == 0


def test_a_crash_between_commit_and_xack_does_not_count_twice(make_drainer, produce, db, redis_client, layout):
    shard = layout.shard(IMPRESSION, 0)
    produce(IMPRESSION, [3] * 50)
    # Given a drainer that committed and died before its XACK
    crashing = make_drainer()

    def die(*args, **kwargs):
        raise SystemExit("killed between commit and XACK")
    crashing.reader.ack = die
    with pytest.raises(SystemExit):
        crashing.drain(shard)
    assert total(db) == 50 and pending(redis_client, shard) == 50
    # When the next drainer reads the same entries again
    report = make_drainer().drain(shard)
    # Then it recognises them as counted, counts nothing twice, and acknowledges them
    assert total(db) == 50
    assert report.skipped == 50 and report.applied == 0 and pending(redis_client, shard) == 0


def test_a_drainer_whose_lease_expired_can_neither_read_nor_commit(
        make_drainer, produce, db, redis_client, layout, settings):
    """The hazard of DESIGN.md: D1 stalls past its lease, D2 drains on, D1 wakes up."""
    shard = layout.shard(IMPRESSION, 0)
    ledger = Ledger(db, ZoneInfo("UTC"))
    reader = ShardReader(redis_client)
    produce(IMPRESSION, [1] * 5)
    # D1 takes the lease and its fence, then stalls before reading
    d1 = Lease(redis_client, shard.lease_key, 10_000)
    assert d1.acquire()
    d1_token, _ = ledger.claim(shard.key)
    redis_client.delete(shard.lease_key)  # D1's lease expires during the stall
    # D2 drains everything
    make_drainer().drain(shard)
    produce(IMPRESSION, [2] * 5)
    # D1 wakes up: it cannot read new entries (which would be committed out of order) ...
    with pytest.raises(LeaseLost):
        reader.read(shard, d1.token, 10_000, 100, ">")
    # ... nor dead-letter them, nor commit what it might have read before
    with pytest.raises(LeaseLost):
        reader.dead_letter(shard, d1.token, [], 0)
    from tracker.errors import FencedOut
    with pytest.raises(FencedOut):
        ledger.commit(IMPRESSION, shard.key, d1_token, [((2**62, 0), 1, TS)], (2**62, 0))
    make_drainer().drain(shard)
    assert per_ad(db) == {1: 5, 2: 5}


def test_a_busy_shard_is_left_to_its_drainer(make_drainer, produce, redis_client, layout, db):
    shard = layout.shard(IMPRESSION, 0)
    produce(IMPRESSION, [1])
    other = Lease(redis_client, shard.lease_key, 10_000)
    assert other.acquire()
    report = make_drainer().drain(shard)
    assert report.busy and total(db) == 0
    other.release()
    assert make_drainer().drain(shard).applied == 1


def test_losing_the_lease_mid_drain_stops_without_committing(make_drainer, produce, redis_client, layout, db):
    shard = layout.shard(IMPRESSION, 0)
    produce(IMPRESSION, [1] * 10)
    drainer = make_drainer()
    real_read = drainer.reader.read

    def read_then_lose_lease(*args, **kwargs):
        entries = real_read(*args, **kwargs)
        redis_client.set(shard.lease_key, "someone-else")
        return entries
    drainer.reader.read = read_then_lose_lease
    report = drainer.drain(shard)
    # the commit itself is fenced by the database, not by Redis: the batch was read under the
    # lease, so committing it is correct; what must not happen is a further read
    assert report.lost_lease or report.applied == 10
    redis_client.delete(shard.lease_key)
    make_drainer().drain(shard)
    assert total(db) == 10 and pending(redis_client, shard) == 0


def test_malformed_entries_go_to_the_dead_letter_stream_and_the_rest_is_counted(
        make_drainer, produce, redis_client, layout, db):
    shard = layout.shard(IMPRESSION, 0)
    produce(IMPRESSION, [1, 2])
    bad = [redis_client.xadd(shard.key, fields) for fields in
           ({"ad_id": "12x"}, {"ad_id": "99999999999"}, {"foo": "bar"}, {"ad_id": "4", "ts": "later"})]
    produce(IMPRESSION, [3])
    report = make_drainer().drain(shard)
    assert per_ad(db) == {1: 1, 2: 1, 3: 1}
    assert report.dead == 4 and pending(redis_client, shard) == 0
    dead = redis_client.xrange(shard.dead_key)
    assert [d[1][b"origin_id"] for d in dead] == bad
    assert json.loads(dead[0][1][b"fields"]) == {"ad_id": "12x"}
    assert b"Invalid or missing ad_id" in dead[0][1][b"reason"]
    assert dead[0][1][b"stream"] == shard.key.encode()


def test_a_batch_of_only_malformed_entries_is_acknowledged(make_drainer, redis_client, layout, db):
    """The PHP system left such a batch pending forever."""
    shard = layout.shard(IMPRESSION, 0)
    ensure_groups(redis_client, layout)
    for _ in range(3):
        redis_client.xadd(shard.key, {"ad_id": "x"})
    make_drainer().drain(shard)
    assert pending(redis_client, shard) == 0 and redis_client.xlen(shard.dead_key) == 3


def test_entries_trimmed_after_their_commit_are_just_acknowledged(make_drainer, produce, redis_client, layout, db):
    shard = layout.shard(IMPRESSION, 0)
    produce(IMPRESSION, [1] * 4)
    crashing = make_drainer()
    crashing.reader.ack = lambda *a, **k: (_ for _ in ()).throw(SystemExit("crash before XACK"))
    with pytest.raises(SystemExit):
        crashing.drain(shard)
    redis_client.xtrim(shard.key, minid="99999999999999")  # trimmed, still pending
    report = make_drainer().drain(shard)
    assert total(db) == 4 and pending(redis_client, shard) == 0 and report.dead == 0


def test_a_lost_stream_and_group_are_recreated(make_drainer, produce, redis_client, layout, db):
    """An unpersisted Redis restarted: the next event recreates the stream without its group."""
    shard = layout.shard(IMPRESSION, 0)
    redis_client.delete(shard.key)
    redis_client.xadd(shard.key, {"ad_id": "8", "ts": str(TS)})
    report = make_drainer().drain(shard)  # finds no group, creates it at 0, reads on
    assert report.applied == 1 and per_ad(db) == {8: 1}


def test_shards_split_events_by_ad(redis_client, db, settings):
    layout = Layout(shards=3)
    ensure_groups(redis_client, layout)
    producer = Producer(redis_client, layout)
    for ad_id in range(1, 31):
        producer.add(IMPRESSION, ad_id, TS)
    assert [redis_client.xlen(s.key) for s in layout.shards(IMPRESSION)] == [10, 10, 10]
    drainer = Drainer(ShardReader(redis_client), Ledger(db, ZoneInfo("UTC")), settings)
    for shard in layout.shards(IMPRESSION):
        drainer.drain(shard)
    assert total(db) == 30


def test_the_consumer_is_always_the_same(redis_client, make_drainer, produce, layout):
    shard = layout.shard(IMPRESSION, 0)
    produce(IMPRESSION, [1])
    make_drainer().drain(shard)
    consumers = {c["name"] for c in redis_client.xinfo_consumers(shard.key, shard.group)}
    assert consumers == {DRAIN_CONSUMER.encode()}


def test_an_idle_drain_waits_for_new_entries_until_its_budget(make_drainer, produce, layout, redis_client):
    import threading
    import time
    shard = layout.shard(IMPRESSION, 0)
    produce(IMPRESSION, [1])
    drainer = make_drainer(drain_budget_ms=1500, drain_poll_ms=100)
    late = threading.Timer(0.5, lambda: produce(IMPRESSION, [2]))
    late.start()
    started = time.monotonic()
    report = drainer.drain(shard)
    assert 1.4 <= time.monotonic() - started < 5
    assert report.applied == 2
    assert parse_id(redis_client.xinfo_groups(shard.key)[0]["last-delivered-id"]) == report.offset


def test_store_pipelines_many_events_and_dedupes_by_event_id(redis_client, layout):
    from tracker.streams import NewEvent
    ensure_groups(redis_client, layout)
    producer = Producer(redis_client, Layout(shards=2), dedupe_window_ms=60_000)
    results = producer.store([NewEvent(IMPRESSION, 1, TS), NewEvent(CLICK, 2, TS, "e-1"),
                              NewEvent(CLICK, 2, TS, "e-1"), NewEvent(IMPRESSION, 3, TS, "e-2")])
    assert [r.new for r in results] == [True, True, False, True]
    assert results[1].entry_id == results[2].entry_id
    assert redis_client.xlen("clicks_stream") == 1  # ad 2 -> shard 0
    assert redis_client.xlen("impressions_stream:1") == 2  # ads 1 and 3 -> shard 1
    assert 0 < redis_client.pttl("{clicks_stream}:seen:e-1") <= 60_000
    retry = producer.store([NewEvent(CLICK, 2, TS, "e-1")])[0]  # the same event, retried later
    assert (retry.entry_id, retry.new) == (results[1].entry_id, False)


def test_a_stopping_worker_ends_its_drain_after_the_batch(make_drainer, produce, layout):
    import time
    shard = layout.shard(IMPRESSION, 0)
    produce(IMPRESSION, [1, 2])
    drainer = make_drainer(drain_budget_ms=30_000, drain_poll_ms=100)
    started = time.monotonic()
    report = drainer.drain(shard, stopping=lambda: True)
    assert report.applied == 2 and time.monotonic() - started < 10  # not the 30 s budget


def test_entries_deleted_before_they_were_counted_are_dead_lettered_not_acknowledged_in_silence(
        make_drainer, produce, redis_client, layout, db):
    """Something other than the tracker (an XDEL, the PHP producer's XTRIM MAXLEN) deleted pending
    entries above the committed offset: they are lost, and the dead-letter stream says so."""
    shard = layout.shard(IMPRESSION, 0)
    produce(IMPRESSION, [1] * 4)
    dead = Lease(redis_client, shard.lease_key, 50)
    assert dead.acquire()
    read = ShardReader(redis_client).read(shard, dead.token, 50, 100, ">")  # a drainer read them, then died
    redis_client.delete(shard.lease_key)
    redis_client.xdel(shard.key, read[0][0], read[1][0])
    report = make_drainer().drain(shard)
    assert total(db) == 2 and report.applied == 2 and report.dead == 2
    letters = redis_client.xrange(shard.dead_key)
    assert [d[1][b"origin_id"] for d in letters] == [read[0][0], read[1][0]]
    assert b"deleted from the stream before it was counted" in letters[0][1][b"reason"]
    assert pending(redis_client, shard) == 0
