"""Fixtures of the fault-injection suite: private servers, and the figures in pytest's summary."""

from __future__ import annotations

import pytest

from tests.faults.accounting import REPORTED
from tests.faults.servers import PrivateMariaDB, PrivateRedis
from tests.integration.conftest import env_settings, mysql_db  # noqa: F401 - fixtures shared with integration


@pytest.fixture
def private_redis(tmp_path) -> PrivateRedis:
    """A redis-server of this test's own, with AOF and `appendfsync always`."""
    server = PrivateRedis(tmp_path / "redis").start()
    yield server
    server.kill()


@pytest.fixture
def private_mariadb(tmp_path) -> PrivateMariaDB:
    """A mariadbd of this test's own, on a fresh data directory."""
    server = PrivateMariaDB(tmp_path / "mariadb").start()
    yield server
    server.stop()


def pytest_terminal_summary(terminalreporter):
    if REPORTED:
        terminalreporter.section("fault injection: sent / acknowledged / counted / lost / duplicated")
        for line in REPORTED:
            terminalreporter.write_line(line)
