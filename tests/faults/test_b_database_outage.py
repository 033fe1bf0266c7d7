"""(b) MariaDB killed under load, kept down for 30 s, then started again."""

from __future__ import annotations

import time

import pytest

from tests.faults.accounting import Figures, Ledger, counted, report, wait_counted
from tests.faults.load import XaddLoad
from tests.processes import tracker_env, worker
from tracker.models import connect, create_tables
from tracker.streams import Layout, ensure_groups

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 30_000
PRODUCE_S = 45
DOWN_AT_S = 6
DOWN_FOR_S = 30


def backlog(client) -> int:
    """Entries not yet acknowledged by the drains: pending plus not yet delivered."""
    total = 0
    for stream in ("impressions_stream", "clicks_stream"):
        for group in client.xinfo_groups(stream):
            total += group["pending"] + (group.get("lag") or 0)
    return total


def test_database_down_for_30_seconds_under_load(tmp_path, real_redis_url, real_redis, private_mariadb, env_settings):
    url = private_mariadb.url("tracker_fault")
    private_mariadb.create_schema("tracker_fault")
    db = connect(url)
    create_tables(db)
    ensure_groups(real_redis, Layout())
    env = tracker_env(real_redis_url, url, **env_settings)
    ledger = Ledger()
    load = XaddLoad(real_redis, ledger, EVENTS, PRODUCE_S, seed=21)
    current = worker(env, tmp_path / "worker.log", processes=1, threads=2)
    load.start()
    try:
        time.sleep(DOWN_AT_S)
        private_mariadb.kill()  # a crash: commits in flight either made it or did not
        db.close()
        time.sleep(DOWN_FOR_S)
        waiting = backlog(real_redis)
        private_mariadb.start()
        load.finish()
        wait_counted(ledger, db, 120)
    finally:
        current.stop()
        load.join(1)
    figures = Figures.of(ledger, counted(db))
    db.close()
    report("(b) MariaDB down 30 s", figures, f"{waiting} entries waiting in Redis when it came back")
    assert waiting > 1000, "the outage must have held events back"
