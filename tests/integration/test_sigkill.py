"""Workers killed with SIGKILL mid-drain, again and again: nothing lost, nothing counted twice."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest

from tests.integration.conftest import pending, totals
from tests.processes import tracker_env, wait_until, worker
from tracker.events import CLICK, IMPRESSION
from tracker.streams import Layout, Producer, ensure_groups

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 30_000
KILLS = 6


def produce_steadily(client, events: int, seconds: float, sent: Counter, done: threading.Event) -> None:
    """XADD `events` events over about `seconds`, in pipelined bursts, recording what was stored."""
    layout = Layout()
    producer = Producer(client, layout)
    rng = random.Random(3)
    bursts = 100
    for _ in range(bursts):
        batch = [(rng.choice((IMPRESSION, IMPRESSION, CLICK)), rng.randint(1, 500)) for _ in range(events // bursts)]
        pipe = client.pipeline(transaction=False)
        for kind, ad_id in batch:
            producer.add(kind, ad_id, int(time.time()), pipeline=pipe)
        pipe.execute()
        for kind, ad_id in batch:
            sent[kind.plural, ad_id] += 1
        time.sleep(seconds / bursts)
    done.set()


def pending_total(client) -> int:
    return pending(client, "impressions_stream", "impression_group") + pending(client, "clicks_stream", "click_group")


def kill_mid_batch(process, client) -> int:
    """SIGKILL `process` as soon as it holds read-but-unacknowledged entries (or after 3 s).

    Returns how many entries it left pending: work read, maybe committed, never acknowledged.
    """
    deadline = time.monotonic() + 3
    while pending_total(client) == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    process.kill()  # no cleanup runs: leases, flags and pending entries stay behind
    return pending_total(client)


def test_sigkill_during_drains_loses_and_duplicates_nothing(tmp_path, real_redis_url, real_redis, mysql_url,
                                                             mysql_db, env_settings):
    env = tracker_env(real_redis_url, mysql_url, **{**env_settings, "lease_ttl_ms": 1000, "drain_budget_ms": 1500,
                                                    "batch_size": 500})
    ensure_groups(real_redis, Layout())
    sent: Counter = Counter()
    done = threading.Event()
    producer = threading.Thread(target=produce_steadily, args=(real_redis, EVENTS, 12, sent, done))
    producer.start()
    rng = random.Random(11)
    current = worker(env, tmp_path / "worker.log", processes=2, threads=2)
    left_pending = []
    try:
        while len(left_pending) < KILLS:
            time.sleep(rng.uniform(0.8, 2.0))
            left_pending.append(kill_mid_batch(current, real_redis))
            current = worker(env, tmp_path / "worker.log", processes=2, threads=2)
        producer.join()
        expected = {kind: {ad: n for (k, ad), n in sent.items() if k == kind} for kind in ("impressions", "clicks")}

        def settled():
            return totals(mysql_db) == expected
        wait_until(settled, 90, 0.5, "every event to be counted after the kills")
    finally:
        current.stop()
        producer.join()
    counted = totals(mysql_db)
    lost = sum(max(0, n - counted[kind].get(ad, 0)) for kind in expected for ad, n in expected[kind].items())
    duplicated = sum(max(0, n - expected[kind].get(ad, 0)) for kind in counted for ad, n in counted[kind].items())
    kills = len(left_pending)
    mid_batch = sum(1 for n in left_pending if n)
    print(f"kills={kills} mid_batch={mid_batch} left_pending={left_pending} sent={sum(sent.values())} counted={sum(sum(v.values()) for v in counted.values())} "
          f"lost={lost} duplicated={duplicated}")
    assert lost == 0 and duplicated == 0
    assert mid_batch >= KILLS // 2, "most kills must land between a read and its acknowledgement"
    assert pending(real_redis, "impressions_stream", "impression_group") == 0
    assert pending(real_redis, "clicks_stream", "click_group") == 0
