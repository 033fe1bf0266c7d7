"""First claims of many shards at once on MariaDB: none fails (found by the scale-out test,
where 8 shards were claimed together on a fresh database and InnoDB reported deadlocks)."""

from __future__ import annotations

import threading

import pytest

from tests.integration.conftest import ledger
from tracker.models import connect

pytestmark = pytest.mark.integration

SHARDS = 16


def test_concurrent_first_claims_of_many_shards_all_succeed(mysql_url, mysql_db):
    barrier = threading.Barrier(SHARDS)
    results: dict[int, object] = {}

    def claim(i: int) -> None:
        db = connect(mysql_url)  # one connection per drainer, as in separate processes
        try:
            barrier.wait()
            results[i] = ledger(db).claim(f"impressions_stream:{i}")
        except Exception as e:  # noqa: BLE001 - the test reports any failure
            results[i] = e
        finally:
            db.close()

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(SHARDS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == {i: (1, (0, 0)) for i in range(SHARDS)}
