"""Slow backends: requests fail fast with 503 instead of queueing, and the server recovers.

A real `tracker serve` with its default settings (8 threads, 1 s Redis timeout, 1 s breaker):
- in front of a private redis-server stopped with SIGSTOP: it accepts connections and answers
  nothing, the worst kind of slow. Without the breaker, 100 concurrent requests on 8 threads
  queued behind the timed-out ones: the last 503 came after ~13 s;
- with its database hanging (a TCP proxy that stops forwarding): stats requests hold at most
  half the threads, so ingest keeps answering. Without the bulkhead, 16 stats requests held
  all 8 threads and an impression waited more than 10 s.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.private_redis import PrivateRedis
from tests.processes import free_port, tracker_env, wait_until, web
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

CONCURRENT = 100
#: Longest any request may take to get its answer while Redis is stalled (s): one Redis timeout
#: (1 s), plus generous room for a machine shared with other test runs. Queueing would need ~13 s.
BOUND_S = 6


def track(port: int, ad_id: int, path: str = "/v1/impressions?ad_id=") -> tuple[int, float, dict, dict]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}{ad_id}", timeout=60) as r:
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


def test_a_hung_database_never_takes_ingests_threads(tmp_path, real_redis_url, mysql_url, mysql_db):
    target = urllib.parse.urlsplit(mysql_url)
    with TcpProxy(target.hostname, target.port or 3306) as proxy:
        database = f"mysql://{target.username}@127.0.0.1:{proxy.port}{target.path}"
        port = free_port()
        process = web(tracker_env(real_redis_url, database), tmp_path / "web.log", port)
        try:
            assert track(port, 1, "/v1/stats?ad_id=")[0] == 200
            proxy.stall()  # the database hangs: queries get no answer
            with ThreadPoolExecutor(16) as pool:
                stats = [pool.submit(track, port, 1, "/v1/stats?ad_id=") for _ in range(16)]
                time.sleep(1)  # they are all in
                ingest = [track(port, ad_id) for ad_id in range(1, 11)]
                proxy.flow()
                answers = Counter(future.result()[0] for future in stats)
        finally:
            process.stop()
    ingest_latency = max(latency for _, latency, _, _ in ingest)
    print(f"database hung: stats answers {dict(answers)}; 10 impressions meanwhile, slowest {ingest_latency:.2f}s")
    assert [status for status, _, _, _ in ingest] == [200] * 10
    assert ingest_latency < BOUND_S
    assert answers == {200: 4, 503: 12}  # half the 8 threads for stats; the rest refused at once
