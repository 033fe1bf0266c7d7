"""Drain: events per second one process counts into MariaDB, exactly-once on, against a naive loop.

For each data set (`--events` events over each of `--ads` distinct ads, default 200,000 over
100 and over 10,000), the stream is filled once; every run then recreates the consumer group at
ID 0 and empties the tables, so that each run drains the very same entries:

    ours    tracker.drainer.Drainer with the settings of this environment (TRACKER_BATCH_SIZE,
            TRACKER_READS_PER_COMMIT ...): lease-gated reads, offset row locked, fence checked,
            one multi-row upsert per transaction, offset stored, XACK after the commit
    naive   XREADGROUP 1000, a Counter (the date computed per event), executemany upsert,
            commit, XACK; no lease, no offsets, no fence

Both run in this process, one after the other, round after round, against the same private
redis-server and MariaDB schema. After every run the counts are compared with what was written:
a run that miscounts voids the benchmark.
"""

from __future__ import annotations

import datetime
import random
import time
from collections import Counter

import peewee
import redis

from tracker.aggregate import Ledger
from tracker.config import Settings
from tracker.drainer import Drainer
from tracker.events import IMPRESSION, encode_fields
from tracker.models import connect, count_field, counts_model
from tracker.streams import Layout, ShardReader, ensure_group

from . import report
from .services import DEFAULT_MYSQL_URL, mysql_schema, private_redis, redis_version

#: Entries per XADD pipeline while filling the stream.
FILL_CHUNK = 5_000
#: The events' timestamps span this many seconds before now (1,000 events/s for 200,000).
SPAN_S = 200
#: What the naive loop reads at a time.
NAIVE_COUNT = 1000
NAIVE_UPSERT = ("INSERT INTO ad_daily_impressions (ad_id, date, impressions) VALUES (%s, %s, %s) "
                "ON DUPLICATE KEY UPDATE impressions = impressions + VALUES(impressions)")


def fill(client: redis.Redis, stream: str, events: int, ads: int, seed: int = 6) -> Counter:
    """XADD `events` impressions over `ads` ads; returns the expected count per ad."""
    rng = random.Random(seed)
    now = int(time.time())
    expected: Counter = Counter()
    client.delete(stream)
    for start in range(0, events, FILL_CHUNK):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(events, start + FILL_CHUNK)):
            ad_id = rng.randrange(1, ads + 1)
            expected[ad_id] += 1
            pipe.xadd(stream, encode_fields(ad_id, now - SPAN_S + i * SPAN_S // events))
        pipe.execute()
    return expected


def reset(client: redis.Redis, db: peewee.Database, stream: str, group: str) -> None:
    """A fresh consumer group at ID 0 (nothing read, nothing pending) and empty tables."""
    try:
        client.xgroup_destroy(stream, group)
    except redis.ResponseError:
        pass
    client.xgroup_create(stream, group, id="0")
    db.execute_sql("TRUNCATE TABLE ad_daily_impressions")
    db.execute_sql("DELETE FROM stream_offsets")


def counted(db: peewee.Database) -> Counter:
    model, column = counts_model(IMPRESSION), count_field(IMPRESSION)
    rows = model.select(model.ad_id, peewee.fn.SUM(column)).group_by(model.ad_id).bind(db).tuples()
    return Counter({ad_id: int(n) for ad_id, n in rows})


def drain_ours(client: redis.Redis, db: peewee.Database, settings: Settings) -> int:
    drainer = Drainer(ShardReader(client), Ledger(db, settings.tz), settings)
    result = drainer.drain(Layout(settings.namespace, 1).shard(IMPRESSION, 0))
    return result.applied


def drain_naive(client: redis.Redis, db: peewee.Database, settings: Settings) -> int:
    """The obvious loop: at-least-once, one executemany per read, the date per event."""
    stream, group, tz = IMPRESSION.stream, IMPRESSION.group, settings.tz
    connection = db.connection()
    applied = 0
    while True:
        reply = client.xreadgroup(group, "naive", {stream: ">"}, count=NAIVE_COUNT)
        if not reply or not reply[0][1]:
            return applied
        entries = reply[0][1]
        counts: Counter = Counter()
        for _, fields in entries:
            day = datetime.datetime.fromtimestamp(int(fields[b"ts"]), tz).date()
            counts[int(fields[b"ad_id"]), day] += 1
        with connection.cursor() as cursor:
            cursor.executemany(NAIVE_UPSERT, [(ad_id, day, n) for (ad_id, day), n in counts.items()])
        connection.commit()
        client.xack(stream, group, *[entry_id for entry_id, _ in entries])
        applied += len(entries)


CONTENDERS = {"ours": drain_ours, "naive": drain_naive}


def bench_settings() -> Settings:
    """This environment's drain settings, with a budget that drains everything in one call."""
    return Settings.from_env().replace(drain_budget_ms=3_600_000, drain_poll_ms=0, lease_ttl_ms=60_000)


def run(args) -> None:
    settings = bench_settings()
    report.header("drain", {
        "data": f"{args.events:,} impressions over each of {', '.join(f'{a:,}' for a in args.ads)} distinct ads, "
                f"timestamps over {SPAN_S}s; {args.runs} interleaved rounds",
        "ours": f"Drainer, exactly-once: batch size {settings.batch_size}, "
                f"{settings.reads_per_commit} reads per commit (TRACKER_BATCH_SIZE, TRACKER_READS_PER_COMMIT)",
        "naive": f"XREADGROUP {NAIVE_COUNT}, Counter, executemany upsert, commit, XACK; no offsets",
    })
    targets = []
    with private_redis(appendonly=False) as redis_url, mysql_schema(args.mysql_url or DEFAULT_MYSQL_URL) as db_url:
        print(f"redis:    private redis-server {redis_version(redis_url)}; MariaDB schema {db_url.rsplit('/', 1)[1]}")
        client = redis.Redis.from_url(redis_url)
        db = connect(db_url)
        for ads in args.ads:
            targets += measure(client, db, settings, args, ads)
        db.close()
    report.verdicts(targets)


#: Events per second per process, by distinct ads in the data set.
TARGETS = {100: 200_000, 10_000: 100_000}


def measure(client: redis.Redis, db: peewee.Database, settings: Settings, args, ads: int) -> list[report.Target]:
    expected = fill(client, IMPRESSION.stream, args.events, ads)
    ensure_group(client, Layout().shard(IMPRESSION, 0))
    series = {name: report.Series(f"{name}, {ads:,} ads", "ev/s") for name in CONTENDERS}
    for round_no in range(1, args.runs + 1):
        for name, drain in CONTENDERS.items():
            reset(client, db, IMPRESSION.stream, IMPRESSION.group)
            started = time.perf_counter()
            applied = drain(client, db, settings)
            elapsed = time.perf_counter() - started
            got = counted(db)
            if applied != args.events or got != expected:
                raise SystemExit(f"{name} drained {applied:,} of {args.events:,} events and counted "
                                 f"{sum(got.values()):,}: the benchmark is void")
            series[name].add(args.events / elapsed)
            print(f"  {ads:>6,} ads  round {round_no}  {name:<6} {args.events / elapsed:>10,.0f} events/s "
                  f"({elapsed:.2f} s, counts verified)", flush=True)
    report.table(list(series.values()))
    ours, naive = series["ours"].median, series["naive"].median
    print(f"ratio:    ours / naive = {ours / naive:.2f} over {ads:,} ads")
    found = [report.Target(f"drain ours / naive, {ads:,} ads", ours / naive, 1.0, unit="x")]
    if ads in TARGETS:
        found.insert(0, report.Target(f"drain events/s per process, {ads:,} ads", ours, TARGETS[ads]))
    return found
