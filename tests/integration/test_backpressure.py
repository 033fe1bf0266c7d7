"""A stalled Redis: requests fail fast with 503 instead of queueing, and the server recovers.

A real `tracker serve` with its default settings (8 threads, 1 s Redis timeout, 1 s breaker)
in front of a private redis-server stopped with SIGSTOP: it accepts connections and answers
nothing, the worst kind of slow. Without the breaker, 100 concurrent requests on 8 threads
queue behind the timed-out ones: the last 503 came after ~13 s.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.private_redis import PrivateRedis
from tests.processes import free_port, tracker_env, wait_until, web

pytestmark = pytest.mark.integration

CONCURRENT = 100
#: Longest any request may take to get its answer while Redis is stalled (s): one Redis timeout
#: (1 s), plus generous room for a machine shared with other test runs. Queueing would need ~13 s.
BOUND_S = 6


def track(port: int, ad_id: int) -> tuple[int, float, dict, dict]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/impressions?ad_id={ad_id}", timeout=60) as r:
            status, headers, body = r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e:
        status, headers, body = e.code, dict(e.headers), json.loads(e.read())
    return status, time.monotonic() - started, headers, body


@pytest.fixture
def stalled_setup(tmp_path):
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    port = free_port()
    process = web(tracker_env(server.url, f"sqlite:///{tmp_path / 'tracker.db'}"), tmp_path / "web.log", port)
    yield server, port
    process.stop()
    server.stop()
    assert "Traceback" not in process.log(), process.log()[-3000:]


def test_a_stalled_redis_gets_fast_503s_and_the_server_recovers(stalled_setup):
    server, port = stalled_setup
    stored = [track(port, 1)]
    assert stored[0][0] == 200

    server.pause()
    started = time.monotonic()
    with ThreadPoolExecutor(CONCURRENT) as pool:
        stalled = list(pool.map(lambda i: track(port, i + 1), range(CONCURRENT)))
    wall = time.monotonic() - started
    latencies = sorted(latency for _, latency, _, _ in stalled)
    statuses = Counter(status for status, _, _, _ in stalled)
    print(f"stalled: {dict(statuses)} in {wall:.2f}s; latency p50={latencies[CONCURRENT // 2]:.2f}s "
          f"max={latencies[-1]:.2f}s")
    assert statuses == {503: CONCURRENT}
    assert all(headers.get("Retry-After") == "1" for _, _, headers, _ in stalled)
    assert latencies[-1] < BOUND_S

    server.resume()
    recovered_at = time.monotonic()

    def recovered():
        stored.append(track(port, 2))
        return stored[-1][0] == 200
    wait_until(recovered, 15, 0.2, "ingest to recover")
    recovery = time.monotonic() - recovered_at
    stored += [track(port, 3) for _ in range(20)]
    assert [status for status, _, _, _ in stored[-20:]] == [200] * 20
    print(f"recovered {recovery:.2f}s after SIGCONT")

    # every 200 is stored; a 503 whose command timed out may have been applied when Redis woke up
    client = server.client()
    ok = [body for status, _, _, body in stored if status == 200]
    for body in ok:
        assert client.xrange("impressions_stream", body["stream_id"], body["stream_id"])
    print(f"stream length {client.xlen('impressions_stream')}: {len(ok)} answered 200, "
          f"{len(stored) - len(ok) + CONCURRENT} answered 503")
