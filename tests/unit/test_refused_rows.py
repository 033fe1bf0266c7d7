"""Events the database itself refuses: dead-lettered with its reason, never stalling the shard.

Runs against SQLite (a trigger refuses ad 666) and MariaDB (a foreign key to a table of ads
that lacks 666; or a legacy SMALLINT column that 40000 does not fit), on fakeredis and Redis.
"""

import json
from zoneinfo import ZoneInfo

import peewee
import pytest

from tracker.aggregate import Ledger
from tracker.drainer import Drainer
from tracker.errors import RowRejected
from tracker.events import IMPRESSION
from tracker.models import AdDailyImpressions, is_mysql
from tracker.streams import Layout, Producer, ShardReader, ensure_groups

TS = 1_795_500_000
REFUSED = 666


def refuse_ad(db: peewee.Database, ad_id: int, known_ads) -> None:
    """Make the database refuse rows of `ad_id`, as a legacy schema with a table of ads would."""
    if is_mysql(db):
        db.execute_sql("CREATE TABLE ads (id INT PRIMARY KEY) ENGINE=InnoDB")
        db.execute_sql("INSERT INTO ads (id) VALUES " + ",".join(f"({a})" for a in set(known_ads) - {ad_id}))
        db.execute_sql("ALTER TABLE ad_daily_impressions ADD CONSTRAINT fk_ad FOREIGN KEY (ad_id) REFERENCES ads (id)")
    else:
        db.execute_sql(f"CREATE TRIGGER refuse_ad BEFORE INSERT ON ad_daily_impressions WHEN NEW.ad_id = {ad_id} "
                       "BEGIN SELECT RAISE(ABORT, 'ad is not in the ads table'); END")


def counts(db) -> dict[int, int]:
    db.close()
    return {r.ad_id: r.impressions for r in AdDailyImpressions.select().bind(db)}


@pytest.fixture
def layout():
    return Layout()


@pytest.fixture
def drainer(redis_client, database, settings):
    return Drainer(ShardReader(redis_client), Ledger(database, ZoneInfo("UTC")), settings.replace(batch_size=500))


def test_a_refused_event_is_dead_lettered_with_the_reason_and_the_batch_counted(
        redis_client, database, drainer, layout):
    shard = layout.shard(IMPRESSION, 0)
    ensure_groups(redis_client, layout)
    ads = [(i % 20) + 1 for i in range(1200)]
    ads[321] = ads[777] = ads[1199] = REFUSED
    refuse_ad(database, REFUSED, ads)
    producer = Producer(redis_client, layout)
    ids = [producer.add(IMPRESSION, ad_id, TS) for ad_id in ads]

    report = drainer.drain(shard)

    # every other event is counted, exactly once
    expected = {}
    for ad_id in ads:
        if ad_id != REFUSED:
            expected[ad_id] = expected.get(ad_id, 0) + 1
    assert counts(database) == expected
    assert report.dead == 3 and report.applied == 1197
    # the refused ones are in the dead-letter stream, with their ID, fields and the database's reason
    dead = redis_client.xrange(shard.dead_key)
    assert [d[1][b"origin_id"].decode() for d in dead] == [ids[321], ids[777], ids[1199]]
    assert json.loads(dead[0][1][b"fields"]) == {"ad_id": str(REFUSED), "ts": str(TS)}
    reason = dead[0][1][b"reason"].decode()
    assert "refused" in reason and ("foreign key" in reason or "ads table" in reason), reason
    # nothing is left pending, and the offset is at the end: nothing is read again
    assert redis_client.xpending(shard.key, shard.group)["pending"] == 0
    assert drainer.ledger.committed(shard.key) == tuple(int(p) for p in ids[-1].split("-"))
    assert drainer.drain(shard).entries == 0


def test_the_shard_keeps_flowing_after_a_refused_event(redis_client, database, drainer, layout):
    shard = layout.shard(IMPRESSION, 0)
    ensure_groups(redis_client, layout)
    refuse_ad(database, REFUSED, [1, 2, REFUSED])
    producer = Producer(redis_client, layout)
    producer.add(IMPRESSION, REFUSED, TS)
    drainer.drain(shard)
    producer.add(IMPRESSION, 1, TS)
    producer.add(IMPRESSION, 2, TS)
    drainer.drain(shard)
    assert counts(database) == {1: 1, 2: 1}
    assert redis_client.xlen(shard.dead_key) == 1


@pytest.mark.integration
def test_a_value_out_of_a_legacy_columns_range_is_a_refused_row(mysql_url):
    """A PHP-era table with a narrower column: MariaDB's strict mode refuses the row (DataError)."""
    from tracker.models import connect, create_tables
    db = connect(mysql_url)
    create_tables(db)
    db.execute_sql("ALTER TABLE ad_daily_impressions MODIFY ad_id SMALLINT NOT NULL")
    ledger = Ledger(db, ZoneInfo("UTC"))
    token, _ = ledger.claim("s")
    with pytest.raises(RowRejected):
        ledger.commit(IMPRESSION, "s", token, [((1, 0), 40_000, TS)], (1, 0))
    assert ledger.commit(IMPRESSION, "s", token, [((1, 0), 4, TS)], (1, 0)).applied == 1
    db.close()
