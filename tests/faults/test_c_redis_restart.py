"""(c) The event Redis (AOF, `appendfsync always`) restarted under HTTP load: every 200 is counted once.

What this proves is a Redis *process* crash (SIGKILL) and a clean restart: a killed process
leaves its writes in the kernel's page cache, so it passes with any `appendfsync`. Surviving a
host crash or a power loss is what `always` adds on top; that rests on Redis's documented fsync
semantics and cannot be shown on one machine without cutting its power.

Clients retry 503s, as they are told to, with the same `event_id`: a 503 does not prove that the
event was not stored (the second test shows how), so only the event id keeps a retry from
counting an event twice.
"""

from __future__ import annotations

import time

import pytest
import redis

from tests.faults.accounting import Figures, Ledger, counted, report, wait_counted
from tests.faults.load import HttpClient, HttpLoad, idempotent_request
from tests.faults.proxy import ReplyDropper
from tests.processes import free_port, tracker_env, wait_until, web, worker
from tracker.streams import Layout, ensure_groups

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 6_000
SEND_S = 20


def test_redis_restarted_under_http_load(tmp_path, private_redis, mysql_url, mysql_db, env_settings):
    client = redis.Redis.from_url(private_redis.url)
    ensure_groups(client, Layout())
    env = tracker_env(private_redis.url, mysql_url, **env_settings)
    port = free_port()
    server = web(env, tmp_path / "web.log", port)
    current = worker(env, tmp_path / "worker.log", processes=1, threads=2)
    ledger = Ledger()
    load = HttpLoad(port, ledger, EVENTS, SEND_S, clients=4, request_for=idempotent_request).start()
    try:
        time.sleep(5)
        private_redis.kill()  # a process crash: what Redis wrote to the AOF is all there is
        time.sleep(2)
        private_redis.start()
        time.sleep(5)
        private_redis.stop()  # a clean shutdown
        time.sleep(1)
        private_redis.start()
        load.finish()
        wait_counted(ledger, mysql_db, 120)
    finally:
        current.stop()
        server.stop()
        client.close()
    report("(c) Redis restarted", Figures.of(ledger, counted(mysql_db)),
           f"a crash and a clean restart, {load.retries} requests retried")
    assert load.retries > 0, "the restarts must have refused some requests"


def test_a_503_may_have_stored_the_event_and_a_retry_with_its_event_id_is_stored_once(tmp_path, private_redis):
    """Redis runs the XADD but its answer is lost (it stalled past the web server's timeout, or
    the network dropped): the web server answers 503, yet the event is stored. The client's retry,
    carrying the same event id, must not store it again."""
    proxy = ReplyDropper(private_redis.port)
    env = tracker_env(proxy.url, f"sqlite:///{tmp_path / 'tracker.db'}", redis_timeout_ms=300)
    port = free_port()
    server = web(env, tmp_path / "web.log", port)
    client = redis.Redis.from_url(private_redis.url)
    http = HttpClient(port)
    try:
        # a first click readies the pooled connection and the dedupe script
        warm, _, _ = http.request("GET", "/track_click.php?ad_id=8&event_id=warm-up-0000000001")
        proxy.arm(b"\r\nXADD\r\n", b"\r\nEVALSHA\r\n")
        refused, _, _ = http.request("GET", "/track_click.php?ad_id=8&event_id=retry-me-0000000001")
        # The refused click is stored all the same
        wait_until(lambda: client.xlen("clicks_stream") == 2, 10, 0.05, "the unanswered XADD to be stored")
        # The client retries, as a client told Retry-After does; while the web server's breaker is
        # open (TRACKER_REDIS_BREAKER_MS after the timeout) it answers 503 without asking Redis.
        answers = []

        def retry_succeeds():
            status, _, reply = http.request("GET", "/track_click.php?ad_id=8&event_id=retry-me-0000000001")
            answers.append((status, reply))
            return status == 200
        wait_until(retry_succeeds, 15, 0.25, "a retry to be answered 200")
        retried, body = answers[-1]
        stored = client.xrange("clicks_stream")
    finally:
        http.close()
        server.stop()
        client.close()
        proxy.close()
    assert (warm, refused, retried) == (200, 503, 200) and proxy.dropped == 1
    assert len(stored) == 2, f"the warm-up and one retried click; stored {len(stored)} entries"
    assert stored[1][0].decode() in body.decode()  # the retry is told where the first store went
