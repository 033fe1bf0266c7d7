"""Events through HTTP, Redis, the real worker command and MariaDB: the totals must match exactly."""

from __future__ import annotations

import json
import random
import threading
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.conftest import pending, totals
from tests.processes import free_port, tracker_env, wait_until, web, worker

pytestmark = pytest.mark.integration

EVENTS = 6_000
ADS = 40


def send(port: int, kind: str, ad_id: int, style: int) -> int:
    """One event through one of the accepted request shapes; returns the HTTP status."""
    legacy = {"impressions": "/track_impression.php", "clicks": "/track_click.php"}[kind]
    clean = f"/v1/{kind}"
    base = f"http://127.0.0.1:{port}"
    if style == 0:
        request = urllib.request.Request(f"{base}{legacy}?ad_id={ad_id}")
    elif style == 1:
        request = urllib.request.Request(f"{base}{legacy}", json.dumps({"ad_id": ad_id}).encode(),
                                         {"Content-Type": "application/json"})
    elif style == 2:
        request = urllib.request.Request(f"{base}{clean}", f"ad_id={ad_id}".encode(),
                                         {"Content-Type": "application/x-www-form-urlencoded"})
    else:
        request = urllib.request.Request(f"{base}{clean}?ad_id={ad_id}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.loads(response.read())
            assert body["status"] == "success" and body["ad_id"] == ad_id
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def test_every_accepted_event_is_counted_exactly_once(tmp_path, real_redis_url, mysql_url, mysql_db,
                                                      real_redis, env_settings):
    env = tracker_env(real_redis_url, mysql_url, **env_settings)
    port = free_port()
    server = web(env, tmp_path / "web.log", port)
    drainer = worker(env, tmp_path / "worker.log")
    rng = random.Random(7)
    plan = [(rng.choice(["impressions", "impressions", "impressions", "clicks"]), rng.randint(1, ADS),
             rng.randint(0, 3)) for _ in range(EVENTS)]
    accepted: Counter = Counter()
    lock = threading.Lock()

    def one(item):
        kind, ad_id, style = item
        status = send(port, kind, ad_id, style)
        if status == 200:
            with lock:
                accepted[kind, ad_id] += 1
        return status

    try:
        with ThreadPoolExecutor(16) as pool:
            statuses = Counter(pool.map(one, plan))
        assert statuses == {200: EVENTS}

        expected = {kind: {ad: n for (k, ad), n in accepted.items() if k == kind} for kind in ("impressions", "clicks")}
        wait_until(lambda: totals(mysql_db) == expected, 60, 0.25, "the counts to match what was accepted")
        assert pending(real_redis, "impressions_stream", "impression_group") == 0
        assert pending(real_redis, "clicks_stream", "click_group") == 0
        print(f"sent={EVENTS} acknowledged={sum(accepted.values())} "
              f"counted={sum(sum(v.values()) for v in totals(mysql_db).values())} lost=0 duplicated=0")
    finally:
        drainer.stop()
        server.stop()
    assert "Traceback" not in drainer.log(), drainer.log()[-3000:]
