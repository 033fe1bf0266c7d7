"""A drain failing because the database is unreachable: retried with exponential backoff by
Dramatiq, its entries left in Redis, dead-lettered when its retries run out, and caught up
exactly once the database is back.

Real parts throughout: `dramatiq tracker.tasks`, the Redis broker and streams, MariaDB behind
a TCP proxy the test cuts (connections refused and reset, as when the server is down).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections import Counter

import pytest

from tests.integration.conftest import pending, totals
from tests.processes import tracker_env, wait_until, worker
from tests.tcp_proxy import TcpProxy
from tracker.events import CLICK, IMPRESSION
from tracker.streams import DRAIN_CONSUMER, Layout, Producer, ensure_groups

pytestmark = pytest.mark.integration

MAX_RETRIES = 3
MIN_BACKOFF_MS = 200
RETRYING = re.compile(r"Retrying message '([^']+)' in (\d+) milliseconds")


def produce(client, producer, events: list[tuple], sent: Counter) -> None:
    for kind, ad_id in events:
        producer.add(kind, ad_id, 1_795_500_000)
        sent[kind.plural, ad_id] += 1


def retry_delays(log: str) -> dict[str, list[int]]:
    """Message id -> the backoff (ms) Dramatiq chose before each of its retries, in order."""
    delays: dict[str, list[int]] = {}
    for message_id, delay in RETRYING.findall(log):
        delays.setdefault(message_id, []).append(int(delay))
    return delays


def dead_lettered(client, namespace: str, queue: str = "tracker") -> list[dict]:
    return [json.loads(data) for data in client.hvals(f"{namespace}:{queue}.XQ.msgs")]


def test_a_drain_failing_on_the_database_is_retried_then_dead_lettered_and_nothing_is_lost(
        tmp_path, real_redis_url, real_redis, mysql_url, mysql_db, env_settings):
    target = urllib.parse.urlsplit(mysql_url)
    layout = Layout()
    ensure_groups(real_redis, layout)
    producer = Producer(real_redis, layout)
    sent: Counter = Counter()
    produce(real_redis, producer, [(IMPRESSION, i % 7 + 1) for i in range(300)] + [(CLICK, 3)] * 40, sent)
    # a drainer read 50 impressions and died before counting them: they are pending
    shard = layout.shard(IMPRESSION, 0)
    assert len(real_redis.xreadgroup(shard.group, DRAIN_CONSUMER, {shard.key: ">"}, count=50)[0][1]) == 50

    settings = {**env_settings, "drain_max_retries": MAX_RETRIES, "drain_min_backoff_ms": MIN_BACKOFF_MS,
                "drain_max_backoff_ms": 10_000}
    namespace = settings["broker_namespace"]
    with TcpProxy(target.hostname, target.port or 3306) as proxy:
        proxied = f"mysql://{target.username}@127.0.0.1:{proxy.port}{target.path}"
        proxy.cut()  # the database is down
        log_path = tmp_path / "worker.log"
        process = worker(tracker_env(real_redis_url, proxied, **settings), log_path)
        try:
            # When the drains fail until their retries run out
            wait_until(lambda: {m["args"][0] for m in dead_lettered(real_redis, namespace)} >= {"impression", "click"},
                       90, 0.25, "a dead-lettered drain of each kind")
            produce(real_redis, producer, [(IMPRESSION, 9)] * 25, sent)  # traffic goes on meanwhile

            # Then each was retried MAX_RETRIES times, with exponential backoff (jittered in [b/2, b])
            dead = dead_lettered(real_redis, namespace)
            wait_until(lambda: all(len(retry_delays(process.log()).get(m["message_id"], [])) >= MAX_RETRIES
                                   for m in dead), 15, 0.2,
                       "the worker's log lines")  # they travel through the worker's log pipe
            delays = retry_delays(process.log())
            for message in dead:
                chain = delays[message["message_id"]]
                assert len(chain) == MAX_RETRIES, chain
                for attempt, delay in enumerate(chain):
                    ceiling = MIN_BACKOFF_MS * 2 ** attempt
                    assert ceiling // 2 <= delay <= ceiling, (attempt, chain)
                # the message as last enqueued: its retries so far, and the traceback of the failure before
                assert message["actor_name"] == "drain" and message["options"]["retries"] == MAX_RETRIES
                assert "DatabaseUnavailable" in message["options"]["traceback"]
            print(f"dead-lettered drains: {len(dead)}; backoff chains (ms): "
                  f"{[delays[m['message_id']] for m in dead]}")

            # and nothing was counted or acknowledged: the entries wait in Redis
            assert totals(mysql_db) == {"impressions": {}, "clicks": {}}
            assert pending(real_redis, shard.key, shard.group) == 50
            assert real_redis.xlen(shard.key) == 325 and real_redis.xlen(shard.dead_key) == 0

            # When the database is back, later ticks catch up, exactly
            proxy.restore()
            expected = {kind: {ad: n for (k, ad), n in sent.items() if k == kind} for kind in ("impressions", "clicks")}
            wait_until(lambda: totals(mysql_db) == expected, 90, 0.25, "the counts to catch up")
            assert pending(real_redis, shard.key, shard.group) == 0
            counted = sum(sum(per_ad.values()) for per_ad in totals(mysql_db).values())
            print(f"sent={sum(sent.values())} counted={counted} lost=0 duplicated=0")
        finally:
            process.stop()
    # the only failures logged are the drains that met the unreachable database
    log = process.log()
    unexpected = [line for line in log.splitlines()
                  if "[ERROR]" in line and "Failed to process message drain(" not in line]
    assert not unexpected, unexpected
    assert log.count("\ntracker.errors.DatabaseUnavailable: ") == log.count("with unhandled exception.") > 0
