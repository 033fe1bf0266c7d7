"""Integration fixtures: the real Redis (its own db number) and a fresh MariaDB schema per test."""

from __future__ import annotations

import secrets
from zoneinfo import ZoneInfo

import peewee
import pytest
import redis

from tracker.aggregate import Ledger
from tracker.events import CLICK, IMPRESSION
from tracker.models import connect, count_field, counts_model, create_tables

pytestmark = pytest.mark.integration


@pytest.fixture
def mysql_db(mysql_url) -> peewee.Database:
    db = connect(mysql_url)
    create_tables(db)
    yield db
    db.close()


@pytest.fixture
def env_settings(real_redis_url, mysql_url) -> dict:
    """Fast settings for the worker under test: short leases and ticks; a private broker namespace."""
    return {"broker_namespace": f"dramatiq-test-{secrets.token_hex(3)}", "lease_ttl_ms": 2000,
            "tick_interval_ms": 250, "drain_budget_ms": 2000, "drain_min_backoff_ms": 200,
            "drain_max_backoff_ms": 2000, "log_level": "INFO"}


def per_ad(db: peewee.Database, kind) -> dict[int, int]:
    model, column = counts_model(kind), count_field(kind)
    rows = model.select(model.ad_id, peewee.fn.SUM(column)).group_by(model.ad_id).bind(db).tuples()
    return {ad_id: int(n) for ad_id, n in rows}


def totals(db: peewee.Database) -> dict:
    db.close()  # a fresh connection sees the latest commits whatever the isolation level
    return {kind.plural: per_ad(db, kind) for kind in (IMPRESSION, CLICK)}


def pending(client: redis.Redis, stream: str, group: str) -> int:
    try:
        return client.xpending(stream, group)["pending"]
    except redis.ResponseError:
        return 0


def ledger(db) -> Ledger:
    return Ledger(db, ZoneInfo("UTC"))
