"""(e) Two drainers racing on one shard, their lease forced to expire mid-batch again and again.

Real Redis and MariaDB, two threads draining the impressions shard in a loop. At random points
of a batch (after a read, before and after the commit, before the XACK) a drainer's lease is made
to expire and the drainer pauses, so that the other one takes the shard over in the middle of
the first one's batch, reads the same pending entries, and commits first or second.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from zoneinfo import ZoneInfo

import pytest

from tests.faults.accounting import Figures, Ledger, counted, report, wait_counted
from tests.faults.load import XaddLoad
from tests.integration.conftest import pending
from tracker.aggregate import Ledger as CountsLedger
from tracker.drainer import Drainer
from tracker.errors import FencedOut
from tracker.events import CLICK, IMPRESSION
from tracker.streams import Layout, ShardReader, ensure_groups

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 20_000
PRODUCE_S = 10
#: Chance, at each point of a batch, that the lease is forced to expire there.
EXPIRE_CHANCE = 0.15


class LeaseBreaker:
    """Makes a drainer's lease expire at random points of its batches, then pauses it."""

    def __init__(self, client, shard, seed: int, stats: Counter, lock: threading.Lock):
        self.client, self.shard = client, shard
        self.rng = random.Random(seed)
        self.stats, self.lock = stats, lock
        self.active = True

    def maybe_expire(self, where: str) -> None:
        if self.active and self.rng.random() < EXPIRE_CHANCE:
            self.client.pexpire(self.shard.lease_key, 1)
            with self.lock:
                self.stats[f"expired {where}"] += 1
            time.sleep(self.rng.uniform(0.002, 0.04))  # the stall during which the other one takes over

    def wrap(self, drainer: Drainer) -> Drainer:
        read, commit, ack = drainer.reader.read, drainer.ledger.commit, drainer.reader.ack

        def read_then(*args, **kwargs):
            entries = read(*args, **kwargs)
            if entries:
                self.maybe_expire("after a read")
            return entries

        def commit_between(*args, **kwargs):
            self.maybe_expire("before a commit")
            try:
                result = commit(*args, **kwargs)
            except FencedOut:
                with self.lock:
                    self.stats["commits fenced out"] += 1
                raise
            self.maybe_expire("after a commit")
            return result

        def ack_after(*args, **kwargs):
            self.maybe_expire("before an XACK")
            return ack(*args, **kwargs)
        drainer.reader.read, drainer.ledger.commit, drainer.reader.ack = read_then, commit_between, ack_after
        return drainer


def test_two_drainers_race_with_leases_expiring_mid_batch(real_redis, mysql_db, settings):
    layout = Layout()
    ensure_groups(real_redis, layout)
    shard = layout.shard(IMPRESSION, 0)
    racing = settings.replace(lease_ttl_ms=300, batch_size=100, reads_per_commit=2, drain_budget_ms=500,
                              drain_poll_ms=0)
    stats: Counter = Counter()
    lock = threading.Lock()
    breakers = [LeaseBreaker(real_redis, shard, seed, stats, lock) for seed in (1, 2)]
    drainers = [b.wrap(Drainer(ShardReader(real_redis), CountsLedger(mysql_db, ZoneInfo("UTC")), racing))
                for b in breakers]
    stop = threading.Event()
    errors: list[BaseException] = []

    def drain_loop(drainer: Drainer) -> None:
        try:
            while not stop.is_set():
                outcome = drainer.drain(shard)
                with lock:
                    stats["handed over mid-drain" if outcome.lost_lease else
                          "found the shard busy" if outcome.busy else "drains"] += 1
                if outcome.busy or not outcome.entries:
                    time.sleep(0.002)  # do not spin on a shared machine
        except BaseException as e:
            errors.append(e)
    threads = [threading.Thread(target=drain_loop, args=(d,), daemon=True) for d in drainers]
    ledger = Ledger()
    load = XaddLoad(real_redis, ledger, EVENTS, PRODUCE_S, seed=41)
    load.start()
    for thread in threads:
        thread.start()
    try:
        load.finish()
        time.sleep(2)  # racing on the backlog a little longer
    finally:
        for breaker in breakers:
            breaker.active = False
        stop.set()
        for thread in threads:
            thread.join(30)
    assert not errors, errors
    # The race is over: drain what is left (the racers' last batches, and the clicks) normally
    calm = Drainer(ShardReader(real_redis), CountsLedger(mysql_db, ZoneInfo("UTC")), settings)
    time.sleep(racing.lease_ttl_ms / 1000)
    for target in (shard, layout.shard(CLICK, 0)):
        calm.drain(target)
    wait_counted(ledger, mysql_db, 30)
    expired = sum(n for what, n in stats.items() if what.startswith("expired"))
    report("(e) drainers racing", Figures.of(ledger, counted(mysql_db)),
           f"{expired} leases forced to expire, {stats['handed over mid-drain']} handovers, "
           f"{stats['commits fenced out']} commits fenced out")
    assert expired >= 20 and stats["handed over mid-drain"] >= 10 and stats["commits fenced out"] >= 1
    assert pending(real_redis, shard.key, shard.group) == 0
