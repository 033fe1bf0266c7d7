"""Dead letters: listed, requeued exactly once, purged; against fakeredis and the real Redis."""

import json
from zoneinfo import ZoneInfo

import pytest

from tracker.aggregate import Ledger
from tracker.cli import main
from tracker.deadletters import DeadLetters
from tracker.drainer import Drainer
from tracker.events import CLICK, IMPRESSION
from tracker.models import AdDailyImpressions, connect, create_tables
from tracker.streams import Layout, ShardReader, ensure_groups

TS = 1_795_500_000


@pytest.fixture
def layout():
    return Layout(shards=2)


@pytest.fixture
def db(sqlite_url):
    database = connect(sqlite_url)
    create_tables(database)
    return database


@pytest.fixture
def drain_all(redis_client, db, settings, layout):
    drainer = Drainer(ShardReader(redis_client), Ledger(db, ZoneInfo("UTC")), settings)

    def run():
        return sum(drainer.drain(shard).dead for shard in layout.shards())
    return run


@pytest.fixture
def dead(redis_client, layout):
    ensure_groups(redis_client, layout)
    return DeadLetters(redis_client, layout)


def add(client, stream, **fields):
    return client.xadd(stream, fields).decode()


def counted(db):
    return {r.ad_id: r.impressions for r in AdDailyImpressions.select().bind(db)}


def test_list_shows_every_shards_dead_letters_oldest_first(redis_client, dead, drain_all, layout):
    s0, s1 = layout.shards(IMPRESSION)
    first = add(redis_client, s0.key, ad_id="12x", ts=str(TS))
    second = add(redis_client, s1.key, ad_id="-3")
    third = add(redis_client, s0.key, nothing="here")
    add(redis_client, layout.shard(CLICK, 0).key, ad_id="1.5")
    assert drain_all() == 4

    letters = dead.select(dead.shards(IMPRESSION))
    assert [(d.stream, d.origin_id) for d in letters] == [(s0.key, first), (s0.key, third), (s1.key, second)]
    assert letters[0].fields == {"ad_id": "12x", "ts": str(TS)} and "ad_id" in letters[0].reason
    assert len(dead.select(dead.shards())) == 4
    assert [d.origin_id for d in dead.select(dead.shards(IMPRESSION), limit=1)] == [first]
    assert [d.origin_id for d in dead.select(dead.shards(stream=s1.key))] == [second]
    assert dead.counts(dead.shards(IMPRESSION)) == {s0.key: 2, s1.key: 1}
    with pytest.raises(ValueError, match="no shard"):
        dead.shards(stream="impressions_stream:9")


def test_requeue_moves_an_entry_back_exactly_once(redis_client, dead, drain_all, layout, db):
    shard = layout.shard(IMPRESSION, 0)
    origin = add(redis_client, shard.key, ad_id="4", ts="not-a-time")
    drain_all()
    letter = dead.select([shard])[0]
    # two operators requeue the same dead letter
    other = DeadLetters(redis_client, layout)
    moved = dead.requeue([letter])
    again = other.requeue([letter])
    assert len(moved) == 1 and again == []
    assert redis_client.xlen(shard.dead_key) == 0
    # it is back at the end of its stream, with its original fields, once
    entries = redis_client.xrange(shard.key)
    assert [e[0].decode() for e in entries] == [origin, moved[0][1]]
    assert entries[-1][1] == {b"ad_id": b"4", b"ts": b"not-a-time"}


def test_a_requeued_entry_that_fails_again_is_dead_lettered_again_and_requeue_all_ends(
        redis_client, dead, drain_all, layout):
    shard = layout.shard(IMPRESSION, 0)
    for _ in range(3):
        add(redis_client, shard.key, ad_id="x")
    drain_all()
    assert len(dead.requeue(dead.select([shard]))) == 3
    assert drain_all() == 3  # still malformed: back in the dead-letter stream, with new IDs
    assert redis_client.xlen(shard.dead_key) == 3


def test_a_requeued_entry_is_counted_once_its_cause_is_fixed(redis_client, dead, drain_all, layout, db):
    shard = layout.shard(IMPRESSION, 0)
    ensure_groups(redis_client, layout)
    db.execute_sql("CREATE TRIGGER refuse BEFORE INSERT ON ad_daily_impressions WHEN NEW.ad_id = 6 "
                   "BEGIN SELECT RAISE(ABORT, 'no such ad'); END")
    add(redis_client, shard.key, ad_id="6", ts=str(TS))
    add(redis_client, shard.key, ad_id="8", ts=str(TS))
    drain_all()
    assert counted(db) == {8: 1} and "no such ad" in dead.select([shard])[0].reason
    db.execute_sql("DROP TRIGGER refuse")  # the operator fixes the schema

    dead.requeue(dead.select([shard]))
    drain_all()
    drain_all()
    assert counted(db) == {6: 1, 8: 1}
    assert redis_client.xlen(shard.dead_key) == 0


def test_an_entry_without_ts_keeps_the_day_of_its_original_id(redis_client, dead, drain_all, layout):
    shard = layout.shard(IMPRESSION, 0)
    redis_client.xadd(shard.key, {"ad_id": "0"}, id="1795500000123-0")
    drain_all()
    moved = dead.requeue(dead.select([shard]))
    assert redis_client.xrange(shard.key, moved[0][1], moved[0][1])[0][1] == {b"ad_id": b"0", b"ts": b"1795500000"}


def test_fields_that_are_not_utf8_survive_the_round_trip(redis_client, dead, drain_all, layout):
    shard = layout.shard(IMPRESSION, 0)
    redis_client.xadd(shard.key, {b"ad_id": b"\xff\xfe7"})
    drain_all()
    moved = dead.requeue(dead.select([shard]))
    assert redis_client.xrange(shard.key, moved[0][1], moved[0][1])[0][1][b"ad_id"] == b"\xff\xfe7"


def test_purge_deletes_what_it_is_given(redis_client, dead, drain_all, layout):
    shard = layout.shard(IMPRESSION, 0)
    for _ in range(3):
        add(redis_client, shard.key, ad_id="x")
    drain_all()
    letters = dead.select([shard])
    assert dead.purge(dead.select([shard], ids=[letters[1].id])) == 1
    assert [d.id for d in dead.select([shard])] == [letters[0].id, letters[2].id]
    assert dead.purge(dead.select([shard])) == 2 and redis_client.xlen(shard.dead_key) == 0
    assert dead.purge(letters) == 0


def test_an_id_in_two_shards_dead_letters_must_be_disambiguated(redis_client, dead, layout):
    s0, s1 = layout.shards(IMPRESSION)
    for shard in (s0, s1):
        redis_client.xadd(shard.dead_key, {"origin_id": "1-0", "stream": shard.key, "reason": "r",
                                           "fields": "{}", "dead_at_ms": "1"}, id="5-0")
    with pytest.raises(ValueError, match="several"):
        dead.select([s0, s1], ids=["5-0"])
    assert [d.stream for d in dead.select([s1], ids=["5-0"])] == [s1.key]


@pytest.mark.integration
def test_the_command_lists_requeues_and_purges(real_redis, real_redis_url, monkeypatch, capsys):
    monkeypatch.setenv("REDIS_URL", real_redis_url)
    shard = Layout().shard(IMPRESSION, 0)
    ensure_groups(real_redis, Layout())
    ids = []
    for ad in ("x", "y"):
        ids.append(real_redis.xadd(shard.dead_key, {"origin_id": "1-0", "stream": shard.key, "reason": "bad ad_id",
                                                    "fields": json.dumps({"ad_id": ad, "ts": str(TS)}),
                                                    "dead_at_ms": "1795500000000"}).decode())

    assert main(["dead-letters", "list", "--kind", "impressions", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [d["id"] for d in listed] == ids and listed[0]["fields"] == {"ad_id": "x", "ts": str(TS)}

    with pytest.raises(SystemExit, match="--all"):  # neither IDs nor --all: refused
        main(["dead-letters", "requeue"])
    assert main(["dead-letters", "requeue", ids[0]]) == 0
    assert f"requeued {shard.key} {ids[0]}" in capsys.readouterr().out
    assert real_redis.xrange(shard.key)[-1][1] == {b"ad_id": b"x", b"ts": str(TS).encode()}
    assert main(["dead-letters", "requeue", ids[0]]) == 1  # gone: not requeued twice
    assert main(["dead-letters", "purge", "--all", "--stream", shard.key]) == 0
    assert "1 purged" in capsys.readouterr().err
    assert real_redis.xlen(shard.dead_key) == 0 and real_redis.xlen(shard.key) == 1
    main(["dead-letters", "list"])
    assert "impressions_stream: 0" in capsys.readouterr().out
