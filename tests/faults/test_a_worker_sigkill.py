"""(a) Workers SIGKILLed at random moments, as soon as they hold a batch, during a 100,000-event run."""

from __future__ import annotations

import random
import time

import pytest

from tests.faults.accounting import Figures, Ledger, counted, report, wait_counted
from tests.faults.load import XaddLoad, kill_mid_batch
from tests.integration.conftest import pending
from tests.processes import tracker_env, worker
from tracker.streams import Layout, ensure_groups

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 100_000
KILLS = 12
PRODUCE_S = 25


def test_sigkill_workers_at_random_moments(tmp_path, real_redis_url, real_redis, mysql_url, mysql_db,
                                           env_settings):
    env = tracker_env(real_redis_url, mysql_url, **{**env_settings, "lease_ttl_ms": 1000,
                                                    "drain_budget_ms": 1500, "batch_size": 500})
    ensure_groups(real_redis, Layout())
    ledger = Ledger()
    load = XaddLoad(real_redis, ledger, EVENTS, PRODUCE_S, seed=11)
    load.start()
    rng = random.Random(12)
    current = worker(env, tmp_path / "worker.log", processes=2, threads=2)
    left_pending = []
    try:
        while len(left_pending) < KILLS:
            time.sleep(rng.uniform(0.2, 1.5))  # a random moment, then the next batch in flight
            left_pending.append(kill_mid_batch(current, real_redis))
            current = worker(env, tmp_path / "worker.log", processes=2, threads=2)
        load.finish()
        wait_counted(ledger, mysql_db, 180)
    finally:
        current.stop()
        load.join(1)
    mid_batch = sum(1 for n in left_pending if n)
    report("(a) SIGKILL workers", Figures.of(ledger, counted(mysql_db)),
           f"{len(left_pending)} kills, {mid_batch} with a batch in flight")
    assert ledger.sent >= EVENTS
    assert mid_batch >= KILLS // 2, f"most kills must land between a read and its acknowledgement: {left_pending}"
    assert pending(real_redis, "impressions_stream", "impression_group") == 0
    assert pending(real_redis, "clicks_stream", "click_group") == 0
