"""Fixtures shared by every test.

Backends come in two flavours:
- fast fakes for logic: fakeredis (with Lua) and an SQLite file per test;
- the real services: Redis on a dedicated database number (never 0), flushed before and after
  each test, and a MariaDB schema created for the test and dropped after it.

`redis_client` and `database` are parametrized over both, so the same contract tests run
against the fake and the real backend. A real service that is missing skips its tests
locally, and fails them when TRACKER_REQUIRE_SERVICES=1 (set by ./dev test and CI).
"""

from __future__ import annotations

import os
import secrets
import socket
import urllib.parse
from pathlib import Path

import fakeredis
import peewee
import pytest
import redis

from tracker.config import Settings
from tracker.models import connect, create_tables

#: The real Redis the integration tests use: a database number of their own.
TEST_REDIS_URL = os.environ.get("TRACKER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
#: The MariaDB server; each test gets a schema of its own on it.
TEST_MYSQL_URL = os.environ.get("TRACKER_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/")
REQUIRE_SERVICES = os.environ.get("TRACKER_REQUIRE_SERVICES") == "1" or bool(os.environ.get("CI"))

# The code under test reads the environment in one place; keep the developer's own settings out.
for _name in list(os.environ):
    if _name.startswith("TRACKER_") and not _name.startswith(("TRACKER_TEST_", "TRACKER_REQUIRE")) or \
            _name in ("REDIS_URL", "REDIS_HOST", "REDIS_PORT", "DATABASE_URL", "DB_HOST", "DB_USER", "DB_PASS",
                      "DB_NAME"):
        del os.environ[_name]


def service_missing(what: str, error: Exception):
    message = f"{what} is not reachable ({error}); ./dev test starts it (scripts/services.sh)"
    if REQUIRE_SERVICES:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _reachable(url: str, default_port: int) -> Exception | None:
    parts = urllib.parse.urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2).close()
    except OSError as e:
        return e
    return None


# -- settings --------------------------------------------------------------------------------

@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Defaults for tests: a private data directory, a drain that returns once caught up, and
    small batches (reads of 1000, one per commit), so that a few thousand events span many."""
    return Settings(data_dir=tmp_path / "var", drain_budget_ms=60_000, drain_poll_ms=0, lease_ttl_ms=5_000,
                    batch_size=1000, reads_per_commit=1)


# -- Redis -------------------------------------------------------------------------------------

@pytest.fixture
def fake_redis() -> redis.Redis:
    return fakeredis.FakeRedis()


@pytest.fixture
def real_redis_url() -> str:
    error = _reachable(TEST_REDIS_URL, 6379)
    if error:
        service_missing("Redis", error)
    client = redis.Redis.from_url(TEST_REDIS_URL)
    assert client.connection_pool.connection_kwargs.get("db", 0) != 0, "tests never use Redis database 0"
    client.flushdb()
    yield TEST_REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture
def real_redis(real_redis_url) -> redis.Redis:
    client = redis.Redis.from_url(real_redis_url)
    yield client
    client.close()


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.integration)])
def redis_client(request) -> redis.Redis:
    """The same tests against fakeredis and the real Redis."""
    if request.param == "fake":
        return request.getfixturevalue("fake_redis")
    return request.getfixturevalue("real_redis")


# -- databases -------------------------------------------------------------------------------

@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tracker.db'}"


@pytest.fixture
def mysql_url() -> str:
    """A MariaDB schema of this test's own, dropped afterwards."""
    error = _reachable(TEST_MYSQL_URL, 3306)
    if error:
        service_missing("MariaDB", error)
    schema = f"tracker_test_{secrets.token_hex(4)}"
    server = connect(TEST_MYSQL_URL.rstrip("/") + "/mysql")
    server.execute_sql(f"CREATE DATABASE `{schema}` CHARACTER SET utf8mb4")
    yield TEST_MYSQL_URL.rstrip("/") + f"/{schema}"
    server.execute_sql(f"DROP DATABASE IF EXISTS `{schema}`")
    server.close()


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.integration)])
def database_url(request) -> str:
    """The same tests against SQLite and MariaDB."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "mysql_url")


@pytest.fixture
def database(database_url) -> peewee.Database:
    db = connect(database_url)
    create_tables(db)
    yield db
    db.close()
