"""(d) Poison entries mixed into the streams while workers drain (and twice die mid-batch): the
valid events are counted, every poison entry lands in its stream's dead-letter stream, once, and
nothing stays pending."""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest

from tests.faults.accounting import Figures, Ledger, counted, report, wait_counted
from tests.faults.load import kill_mid_batch, random_events
from tests.integration.conftest import pending
from tests.processes import tracker_env, wait_until, worker
from tracker.streams import Layout, Producer, ensure_groups

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 20_000
BURSTS = 100
KILL_AT = (30, 60)
#: Fields no drain can count: PHP's `(int)` cases, out-of-range values, junk, missing fields.
POISON = [
    {"ad_id": "12x", "ts": "1795500000"}, {"ad_id": "99999999999"}, {"foo": "bar"}, {"ad_id": "4", "ts": "later"},
    {"ad_id": "-3"}, {"ad_id": "0"}, {"ad_id": "1e3"}, {"ad_id": " 7"}, {"ad_id": "7", "ts": "12"},
    {"ad_id": b"\xff\xfe"}, {"ad_id": "\uff11\uff12"}, {"ad_id": "", "ts": ""}, {"ad_id": "2147483648"},
    {"ad_id": "5", "ts": "99999999999"}, {"AD_ID": "5"},
]


def test_poison_entries_go_to_the_dead_letter_streams_and_the_rest_is_counted(
        tmp_path, real_redis_url, real_redis, mysql_url, mysql_db, env_settings):
    layout = Layout()
    ensure_groups(real_redis, layout)
    env = tracker_env(real_redis_url, mysql_url, **{**env_settings, "batch_size": 200})
    current = worker(env, tmp_path / "worker.log", processes=1, threads=2)
    ledger = Ledger()
    poisoned: dict[str, list[bytes]] = {shard.key: [] for shard in layout.shards()}
    producer = Producer(real_redis, layout)
    rng = random.Random(31)
    try:
        for burst in range(BURSTS):
            if burst in KILL_AT:  # a worker dies with a batch in flight, poison and all
                kill_mid_batch(current, real_redis)
                current = worker(env, tmp_path / "worker.log", processes=1, threads=2)
            events = random_events(rng, EVENTS // BURSTS, ads=300)
            plan = [("event", e) for e in events] + [("poison", (rng.choice(layout.shards()), rng.choice(POISON)))
                                                     for _ in range(rng.randint(1, 6))]
            rng.shuffle(plan)
            pipe = real_redis.pipeline(transaction=False)
            for what, item in plan:
                if what == "event":
                    producer.add(item[0], item[1], int(time.time()), pipeline=pipe)
                else:
                    pipe.xadd(item[0].key, item[1])
            ledger.attempt(len(events))
            for (what, item), entry_id in zip(plan, pipe.execute()):
                if what == "event":
                    ledger.ack(item[0].plural, item[1])
                else:
                    poisoned[item[0].key].append(entry_id)
            time.sleep(0.05)
        wait_counted(ledger, mysql_db, 120)
        wait_until(lambda: all(pending(real_redis, s.key, s.group) == 0 for s in layout.shards()), 60, 0.2,
                   "every entry to be acknowledged")
    finally:
        current.stop()
    dead = {shard.key: Counter(fields[b"origin_id"] for _, fields in real_redis.xrange(shard.dead_key))
            for shard in layout.shards()}
    poison_total = sum(len(ids) for ids in poisoned.values())
    report("(d) poison entries", Figures.of(ledger, counted(mysql_db)),
           f"{poison_total} poison entries, {sum(sum(c.values()) for c in dead.values())} dead-lettered, "
           f"{len(KILL_AT)} SIGKILLs")
    for stream, ids in poisoned.items():
        assert dead[stream] == Counter(ids), f"{stream}: each poison entry dead-lettered exactly once, nothing else"
